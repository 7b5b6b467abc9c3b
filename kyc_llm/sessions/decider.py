"""Running a session's decision in bounded time, storing it, and what follows a decision.

``run`` claims the session (atomically, so two workers never decide it twice), hands the work
to a small thread pool and waits at most ``decision_timeout_s``. If the work takes longer the
request returns and the thread finishes and stores the outcome. While it runs, the process
re-stamps its claim every ``HEARTBEAT_S``; a claim not re-stamped for ``STALE_AFTER_S`` was
left by a killed process, and the next ``complete`` (or the sweep) decides again. The claim's
stamp fences the save: a decider whose claim was taken over stores nothing. A failure while
deciding becomes a stored ``review`` with ``INTERNAL_ERROR``, a failure after the decision was
stored a high alert: never a stuck session.

After a decision: alerts, the failure count towards a lockout, and the retention policy
(frames deleted unless the session went to review, by default).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable, Sequence

import numpy as np

from ..camera import CameraReport
from ..config import Config
from ..decision import INTERNAL_ERROR, REASONS
from ..vision.intake import load_frame
from .alerts import alert, decision_alerts
from .analysis import observation_from_record
from .framestore import FrameStore, FrameStoreError
from .limits import RateLimiter
from .results import guidance_for
from .store import DecisionRecord, FrameRecord, SessionRecord, Store
from .workflow import Workflow

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 30.0
HEARTBEAT_S = 5.0  # a running decision's process re-stamps its claim this often
STALE_AFTER_S = 30.0  # a claim not re-stamped for this long: its decider died with its process


class StoredFrames(Sequence[tuple[float, np.ndarray]]):
    """A session's frames as ``(t, bgr)``, decoded from the frame store only when indexed.

    The judge needs a handful of keyframes out of a hundred frames; loading all of them from
    S3 would cost more than the whole decision. Raises ``FrameStoreError`` for a frame that is
    no longer kept.
    """

    def __init__(self, records: list[FrameRecord], store: FrameStore) -> None:
        self._records = records
        self._store = store
        self.times = [rec.t for rec in records]  # read by the keyframe selection: no decoding

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i):  # an index or a slice: one body for Sequence's two overloads
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        rec = self._records[i]
        if rec.stored_key is None:
            raise FrameStoreError(f"frame {rec.seq} is not kept")
        return rec.t, load_frame(self._store.get(rec.stored_key))


class Decider:
    def __init__(self, config: Config, store: Store, frames: FrameStore, workflow: Workflow,
                 limiter: RateLimiter, clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.frames = frames
        self.workflow = workflow
        self.limiter = limiter
        self.clock = clock
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")
        # Claims this process holds: session id -> the stamp the database has for it. One entry
        # per session: were a claim taken over inside this process (its heartbeat failing for
        # STALE_AFTER_S), the first save would win and the database's fence drop the other.
        self._claims: dict[str, float] = {}
        self._claims_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()
        self.heartbeat_s = HEARTBEAT_S

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:  # created on first use: after gunicorn forks, never before
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.config.decision_workers, thread_name_prefix="decide")
            return self._pool

    def close(self) -> None:
        self._closing.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)

    def run(self, session_id: str) -> bool:
        """Decide the session unless another caller is already doing it.

        Returns True when this call's decision finished within the bound (stored, or dropped
        because its claim was taken over); False when another caller holds the claim or the
        decision is still running.
        """
        now = self.clock()
        if not self._claim(session_id, now, by="client"):
            return False
        future = self._executor().submit(self._decide_safely, session_id, now)
        try:
            future.result(timeout=self.config.decision_timeout_s)
            return True
        except FutureTimeout:
            log.warning("session %s: decision still running after %.0f s", session_id,
                        self.config.decision_timeout_s)
            self.store.add_alert(alert("decision_slow", "the decision took longer than its bound",
                                       self.clock(), session_id=session_id))
            return False

    # -- claims ------------------------------------------------------------------------------
    def _claim(self, session_id: str, now: float, by: str) -> bool:
        if not self.store.claim_decision(session_id, now, now - STALE_AFTER_S, by=by):
            return False
        with self._claims_lock:
            self._claims[session_id] = now
            if self._heartbeat is None:  # started on first use: after gunicorn forks
                self._heartbeat = threading.Thread(target=self._beat, name="decide-heartbeat", daemon=True)
                self._heartbeat.start()
        return True

    def _beat(self) -> None:
        while not self._closing.wait(self.heartbeat_s):
            with self._claims_lock:
                for session_id, stamp in list(self._claims.items()):
                    now = self.clock()
                    if now <= stamp:
                        continue
                    try:
                        kept = self.store.refresh_claim(session_id, stamp, now)
                    except Exception:  # the next beat tries again; the claim may go stale meanwhile
                        log.exception("session %s: claim not re-stamped", session_id)
                        continue
                    if kept:
                        self._claims[session_id] = now
                    else:  # taken over: this decider's result will be dropped
                        del self._claims[session_id]

    def _save(self, record: DecisionRecord, actions: list[dict[str, Any]]) -> bool:
        """Store a decision under this process's claim; False when the claim was lost."""
        with self._claims_lock:  # the heartbeat must not change the stamp mid-save
            stamp = self._claims.get(record.session_id)
            return stamp is not None and self.store.save_decision(record, actions, stamp)

    # -- deciding ------------------------------------------------------------------------------
    def _decide_safely(self, session_id: str, started: float) -> None:
        try:
            try:
                decided = self._decide(session_id, started)
            except Exception as exc:  # the outcome must be stored whatever failed
                log.exception("session %s: decision failed (%s)", session_id, type(exc).__name__)
                try:
                    self._store_internal_error(session_id, started, exc)
                except Exception:  # the storage itself failing: the claim goes stale, the sweep retries
                    log.exception("session %s: the failed decision could not be stored either; it is "
                                  "decided again once its claim is %.0f s old", session_id, STALE_AFTER_S)
                    raise
                return
            if decided is None:
                return
            try:
                self._after_decision(*decided)
            except Exception as exc:  # the decision is stored; what follows it must not vanish
                log.exception("session %s: decided, but what follows failed (%s)", session_id, type(exc).__name__)
                session, _, _, now, _ = decided
                self.store.add_alert(alert("decision_error", f"after the decision: {type(exc).__name__}", now,
                                           session_id=session_id, client_key=session.client_key))
        finally:
            with self._claims_lock:
                self._claims.pop(session_id, None)

    def _store_internal_error(self, session_id: str, started: float, exc: Exception) -> None:
        session = self.store.get_session(session_id)
        now = self.clock()
        reason = REASONS[INTERNAL_ERROR]
        if not self._save(DecisionRecord(
                session_id, reason.outcome, guidance_for(reason.outcome, [INTERNAL_ERROR]), [INTERNAL_ERROR],
                reason.explanation, False, {}, None, [], now, (now - started) * 1000.0), []):
            return  # the claim was taken over: the later decider stores its outcome
        self.store.add_alert(alert(reason.alert, f"decision failed: {type(exc).__name__}", now,
                                   session_id=session_id, client_key=session.client_key if session else None))

    def _decide(self, session_id: str, started: float) -> tuple[SessionRecord, Any, str, float, int] | None:
        """Evaluate and store the decision. Returns what ``_after_decision`` needs, or None
        when there was nothing to decide or the claim was taken over (nothing stored)."""
        session = self.store.get_session(session_id)
        challenge = self.store.get_challenge(session_id)
        if session is None or challenge is None:
            return None
        records = self.store.frames(session_id, with_landmarks=True)
        observations = [observation_from_record(r.summary, r.landmarks) for r in records]
        reported = self.store.camera_report(session_id)
        camera = CameraReport(**reported) if reported is not None else None
        outcome = self.workflow.evaluate(challenge.steps, observations, StoredFrames(records, self.frames), camera)
        now = self.clock()
        if outcome.llm_call is not None:  # a call made is recorded (and paid for) either way
            self.store.add_llm_call(session_id, outcome.llm_call)
        guidance = guidance_for(outcome.decision, outcome.reasons)
        if not self._save(DecisionRecord(
                session_id, outcome.decision, guidance, outcome.reasons, outcome.rationale, outcome.llm_used,
                outcome.evidence, outcome.judgment, _keyframes(outcome.evidence, records), now,
                (now - started) * 1000.0), outcome.evidence.get("actions", [])):
            log.warning("session %s: its claim was taken over; this decision (%s) is dropped", session_id,
                        outcome.decision)
            return None
        log.info("session %s decided %s (%s) in %.0f ms", session_id, outcome.decision,
                 ",".join(outcome.reasons) or "-", (now - started) * 1000.0)
        return session, outcome, guidance, now, sum(rec.stored_key is None for rec in records)

    def _after_decision(self, session: SessionRecord, outcome: Any, guidance: str, now: float,
                        unkept: int) -> None:
        """Alerts, the lockout count and the retention policy, once the decision is stored.
        ``unkept``: how many of the session's frames the frame store could not keep."""
        for a in decision_alerts(session.id, session.client_key, outcome.decision, guidance,
                                 outcome.reasons, outcome.judgment, now):
            self.store.add_alert(a)
        if unkept and "FRAMES_UNAVAILABLE" not in outcome.reasons:
            # Decided on the measurements the database holds, but these frames' pictures are
            # gone: an operator reviewing or auditing the session cannot see them. (When the
            # judge needed them, the frames_unavailable alert says so already.)
            self.store.add_alert(alert("frames_not_kept", f"{unkept} of {session.n_frames} frames could not be "
                                       "stored (the frame store failed); the decision stands on their "
                                       "measurements", now, session_id=session.id, client_key=session.client_key))
        if outcome.decision == "fail":
            self._after_failure(session, now)
        self._apply_retention(session.id, outcome.decision)

    def _after_failure(self, session: SessionRecord, now: float) -> None:
        until = self.limiter.lockout_until(session.client_key, now)
        if until is not None and until > now:
            self.store.add_alert(alert("client_locked_out", f"client locked out for {until - now:.0f} s "
                                       f"after {self.config.max_failures} failed sessions", now,
                                       session_id=session.id, client_key=session.client_key))

    def _apply_retention(self, session_id: str, decision: str) -> None:
        mode = self.config.frame_retention
        if mode == "all" or (mode == "review" and decision == "review"):
            return
        self._purge(session_id)

    def _purge(self, session_id: str) -> None:
        try:
            self.frames.delete_session(session_id)
        except FrameStoreError as exc:  # retried by the next sweep: the row stays unpurged
            log.warning("session %s: frames not deleted: %s", session_id, exc.message)
            return
        self.store.mark_frames_purged(session_id, self.clock())

    def sweep(self, now: float) -> None:
        """Expire abandoned sessions, finish decisions whose decider died (the process was
        killed mid-decision and the client has gone), and delete frames the policy no longer
        keeps. Throttled (called as sessions are created); restarted decisions run on the
        decision pool."""
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        unstarted_before = now - self.config.start_within_s  # its capture never started
        for session_id in self.store.expired_open_sessions(now, unstarted_before):
            self.store.expire(session_id, now, unstarted_before)
        for session_id in self.store.stale_decisions(now - STALE_AFTER_S):
            if self._claim(session_id, now, by="system"):
                log.warning("session %s: its decider stopped; deciding it again", session_id)
                self._executor().submit(self._decide_safely, session_id, now)
        review_before = now - self.config.review_retention_days * 86400.0
        mode = self.config.frame_retention
        for session_id in self.store.sessions_to_purge(now, review_before, keep_review=(mode == "review"),
                                                       keep_all=(mode == "all")):
            self._purge(session_id)

    def replay_seen(self, session: SessionRecord, seq: int, now: float) -> None:
        """Record a byte-identical frame (a still image injected as a camera, or a replay): one
        open alert per session, however many replays follow (each is refused and audited by
        its 409; a flood of alerts would bury the others)."""
        self.store.add_alert(alert("replayed_frame", f"frame {seq} repeats an earlier frame byte for byte",
                                   now, session_id=session.id, client_key=session.client_key), unless_open=True)


def _keyframes(evidence: dict[str, Any], records: list[FrameRecord]) -> list[dict[str, Any]]:
    """The frames the evidence points at: the neutral baseline and each action's peak."""
    out: list[dict[str, Any]] = []

    def add(index: Any, label: str) -> None:
        if isinstance(index, int) and 0 <= index < len(records):
            out.append({"index": index, "seq": records[index].seq, "t": round(records[index].t, 3),
                        "label": label})

    add(evidence.get("baseline_index"), "baseline")
    for i, a in enumerate(evidence.get("actions", [])):
        add(a.get("peak_index"), f"step {i + 1}: {a.get('action')}")
    return out
