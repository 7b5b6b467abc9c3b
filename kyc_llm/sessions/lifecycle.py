"""The session lifecycle: create, authorise, accept frames, complete, report.

States: created -> capturing (first frame) -> deciding -> decided, or -> expired. Every rule
a client can break raises a typed error from ``errors``; every state change is written with
an audit entry by the store. Time comes from an injected clock (``time.time`` in production).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..challenge import Step
from ..config import Config
from ..errors import FrameError
from ..vision.intake import load_frame_unscaled, load_patch
from ..vision.thresholds import Thresholds
from .analysis import FrameAnalyzers, frame_feedback, observation_record, progress
from .decider import Decider
from .errors import (BadRequest, FrameRejected, NoFrames, PayloadTooLarge, SessionClosed, SessionExpired,
                     SessionNotFound, TokenInvalid, TokenMissing)
from .framestore import MAX_SEQ, FrameStore, FrameStoreError, frame_key
from .limits import RateLimiter
from .results import user_result
from .store import OPEN_STATUSES, ChallengeRecord, FrameRecord, SessionRecord, Store
from .workflow import Workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One frame as the client sent it: its sequence number, client time (s), JPEG bytes and,
    on some frames, a lossless PNG texture patch with its top-left corner in frame pixels."""

    seq: int
    t: float | None
    data: bytes
    patch: bytes | None = None
    patch_x: int = 0
    patch_y: int = 0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def client_key(address: str) -> str:
    """A pseudonymous, stable key for a client address (the address itself is not stored)."""
    return hashlib.sha256(b"kyc-client:" + address.encode("utf-8")).hexdigest()[:32]


class SessionService:
    """What the API does, without HTTP: each public method is one endpoint's work."""

    def __init__(self, config: Config, store: Store, frames: FrameStore, analyzers: FrameAnalyzers,
                 workflow: Workflow, thresholds: Thresholds, decider: Decider, limiter: RateLimiter,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.frames = frames
        self.analyzers = analyzers
        self.workflow = workflow
        self.thresholds = thresholds
        self.decider = decider
        self.limiter = limiter
        self.clock = clock
        self._steps_cache: dict[str, tuple[Step, ...]] = {}
        self._steps_lock = threading.Lock()

    # -- create ------------------------------------------------------------------------------
    def create(self, client: str) -> tuple[SessionRecord, ChallengeRecord, str]:
        """Issue a session with a fresh challenge. Returns (session, challenge, token).

        Raises ``RateLimited`` when the client is locked out or creates sessions too fast.
        """
        now = self.clock()
        self.limiter.check_create(client, now)
        self.decider.sweep(now)
        issued = self.workflow.issue_challenge()
        token = secrets.token_urlsafe(32)
        session = SessionRecord(
            id=uuid.uuid4().hex, token_hash=hash_token(token), client_key=client, status="created",
            created_at=now, expires_at=now + self.config.session_ttl_s, capture_s=issued.capture_s,
            fps_hint=self.config.fps_hint, llm_mode="offline" if self.workflow.offline else "live")
        challenge = ChallengeRecord(session.id, issued.steps, issued.wording, issued.source,
                                    issued.fallback_reason)
        self.store.create_session(session, challenge, now)
        if issued.call is not None:
            self.store.add_llm_call(session.id, issued.call)
        log.info("session %s created (%d steps, wording %s)", session.id, len(issued.steps), issued.source)
        return session, challenge, token

    # -- authorise ---------------------------------------------------------------------------
    def authorize(self, session_id: str, token: str | None) -> SessionRecord:
        """The session if ``token`` is its token. Raises ``TokenMissing``, ``SessionNotFound``,
        ``TokenInvalid``; an open session past its expiry, or one whose capture did not start
        within ``start_within_s`` of its challenge, is marked expired on the way."""
        if not token:
            raise TokenMissing("this endpoint needs the session token (Authorization: Bearer <token>)")
        session = self.store.get_session(session_id) if _looks_like_id(session_id) else None
        if session is None:
            raise SessionNotFound("no such session")
        if not hmac.compare_digest(session.token_hash, hash_token(token)):
            raise TokenInvalid("the token does not belong to this session")
        now = self.clock()
        unstarted_before = now - self.config.start_within_s
        if ((session.status in OPEN_STATUSES and session.expires_at <= now)
                or (session.status == "created" and session.created_at < unstarted_before)):
            self.store.expire(session.id, now, unstarted_before)
            session = self.store.get_session(session.id) or session
        return session

    # -- frames ------------------------------------------------------------------------------
    def add_frames(self, session: SessionRecord, uploads: list[Upload]) -> dict[str, Any]:
        """Validate, analyse and store a batch of frames, all or nothing up to the analysis.

        Returns the per-frame feedback and the challenge progress. Raises ``SessionExpired``,
        ``SessionClosed``, ``PayloadTooLarge``, ``FrameRejected`` or ``FrameError`` before any
        frame of the batch is stored; a concurrent upload that wins a race can still make a
        later frame of the batch fail with ``FrameRejected``.
        """
        cfg = self.config
        self._require_open(session)
        now = self.clock()
        if not uploads:
            raise BadRequest("the request holds no frame", code="no_frames")
        if len(uploads) > cfg.max_batch:
            raise PayloadTooLarge(f"at most {cfg.max_batch} frames per request", code="too_many_in_batch")
        if session.n_frames + len(uploads) > cfg.max_frames:
            raise FrameRejected(f"at most {cfg.max_frames} frames per session", code="too_many_frames")
        digests = [hashlib.sha256(up.data).hexdigest() for up in uploads]
        times = self._check_batch(session, uploads, digests, now)
        images, patches = [], []
        for up in uploads:
            try:
                full = load_frame_unscaled(up.data)
            except FrameError as exc:
                raise FrameError(f"frame {up.seq}: {exc.message}") from None
            try:
                patch = load_patch(up.patch, up.patch_x, up.patch_y) if up.patch is not None else None
                if patch is not None and not patch.fits(full.shape[1], full.shape[0]):
                    raise FrameError("it lies outside its frame")
            except FrameError as exc:
                raise FrameError(f"frame {up.seq}, texture patch: {exc.message}") from None
            images.append(full)
            patches.append(patch)
        steps = self._steps(session.id)
        results = []
        for up, t, full, patch, digest in zip(uploads, times, images, patches, digests):
            obs = self.analyzers.analyze(full, t, patch)
            summary, landmarks = observation_record(obs)
            try:
                key: str | None = self.frames.put(frame_key(session.id, up.seq, digest), up.data)
            except FrameStoreError as exc:
                log.warning("session %s frame %d not kept: %s", session.id, up.seq, exc.message)
                key = None
            record = FrameRecord(session.id, up.seq, t, up.t, now, digest, len(up.data), obs.width,
                                 obs.height, obs.n_faces, summary, landmarks, key)
            try:
                session = self.store.add_frame(record, cfg.max_frames)
            except SessionClosed:
                self._forget_after_purge(session.id)
                raise
            feedback = frame_feedback(obs, self.thresholds.quality)
            results.append({"seq": up.seq, "t": round(t, 3), "feedback": feedback})
        last_t = times[-1]
        return {
            "accepted": len(results), "last_seq": session.last_seq, "frames": results,
            "feedback": results[-1]["feedback"],
            "progress": progress(steps, last_t, session.capture_s),
            "capture_complete": last_t >= session.capture_s,
            "expires_in_s": round(max(0.0, session.expires_at - now), 1),
        }

    def _forget_after_purge(self, session_id: str) -> None:
        """Delete a closed session's frames again if the retention policy already did: a frame
        stored while its session was being decided would otherwise outlive the rest."""
        current = self.store.get_session(session_id)
        if current is None or current.frames_purged_at is None:
            return
        try:
            self.frames.delete_session(session_id)
        except FrameStoreError as exc:
            log.warning("session %s: late frame not deleted: %s", session_id, exc.message)

    def _require_open(self, session: SessionRecord) -> None:
        if session.status == "expired":
            raise SessionExpired("the session has expired; start a new one")
        if session.status not in OPEN_STATUSES:
            raise SessionClosed(f"the session is {session.status}")

    def _steps(self, session_id: str) -> tuple[Step, ...]:
        """The session's challenge steps (immutable once issued, so cached per process)."""
        steps = self._steps_cache.get(session_id)
        if steps is None:
            challenge = self.store.get_challenge(session_id)
            assert challenge is not None  # written in the same transaction as the session
            steps = challenge.steps
            with self._steps_lock:
                if len(self._steps_cache) >= 4096:
                    self._steps_cache.pop(next(iter(self._steps_cache)))
                self._steps_cache[session_id] = steps
        return steps

    def _check_batch(self, session: SessionRecord, uploads: list[Upload], digests: list[str],
                     now: float) -> list[float]:
        """Sequence, size, replay and clock checks. Returns the session time of each frame."""
        cfg = self.config
        first = session.first_frame_at if session.first_frame_at is not None else now
        elapsed = now - first
        last_seq, last_t = session.last_seq, session.last_t
        seen: set[str] = set()
        times: list[float] = []
        for up, digest in zip(uploads, digests):
            if up.seq > MAX_SEQ:
                raise BadRequest(f"frame {up.seq}: sequence numbers go up to {MAX_SEQ}", code="seq_out_of_range")
            if up.seq <= last_seq:
                raise FrameRejected(f"frame {up.seq} is out of sequence (last was {last_seq})",
                                    code="out_of_sequence")
            if len(up.data) > cfg.max_frame_bytes or len(up.patch or b"") > cfg.max_frame_bytes:
                raise PayloadTooLarge(f"frame {up.seq} is larger than {cfg.max_frame_bytes} bytes",
                                      code="frame_too_large")
            if digest in seen or self.store.has_frame_hash(session.id, digest):
                self.decider.replay_seen(session, up.seq, now)
                raise FrameRejected(f"frame {up.seq} repeats an earlier frame byte for byte",
                                    code="replayed_frame")
            seen.add(digest)
            t = elapsed if up.t is None else up.t
            if not math.isfinite(t) or t < 0:
                raise FrameRejected(f"frame {up.seq}: time must be a non-negative number", code="bad_timestamp")
            if last_t is not None and t < last_t:
                raise FrameRejected(f"frame {up.seq}: time goes backwards", code="bad_timestamp")
            if t > elapsed + cfg.clock_tolerance_s:
                raise FrameRejected(f"frame {up.seq}: time {t:.6g} s is ahead of the server clock",
                                    code="bad_timestamp")
            if t < elapsed - cfg.max_upload_lag_s:
                raise FrameRejected(f"frame {up.seq}: time {t:.6g} s is too far behind the server clock",
                                    code="bad_timestamp")
            last_seq, last_t = up.seq, t
            times.append(t)
        return times

    # -- complete and report -----------------------------------------------------------------
    def complete(self, session: SessionRecord) -> tuple[dict[str, Any], bool]:
        """Decide the session (bounded in time). Returns (status body, finished).

        ``finished`` is False when the decision is still running after the configured bound:
        the caller answers 202 and the client polls ``status``. Raises ``SessionExpired`` or
        ``NoFrames``; completing a decided session again returns its stored result.
        """
        if session.status == "expired":
            raise SessionExpired("the session has expired; start a new one")
        if session.status in OPEN_STATUSES and session.n_frames == 0:
            raise NoFrames("no frame was uploaded; nothing to decide")
        if session.status in OPEN_STATUSES or session.status == "deciding":
            self.decider.run(session.id)
            session = self.store.get_session(session.id) or session
        body = self.status(session)
        return body, session.status == "decided"

    def status(self, session: SessionRecord) -> dict[str, Any]:
        """What the client may see: state, counts, expiry and, once decided, the user result."""
        now = self.clock()
        body: dict[str, Any] = {
            "id": session.id, "status": session.status, "frames_received": session.n_frames,
            # An open session's time left; none once expired early (its capture never started).
            "expires_in_s": round(max(0.0, session.expires_at - now), 1) if session.status != "expired" else 0.0,
            "llm_mode": session.llm_mode, "result": None,
        }
        if session.status == "decided" and session.decision is not None:
            body["result"] = user_result(session.decision, session.guidance, session.llm_mode)
        return body


def _looks_like_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
