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
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..camera import CameraReport
from ..challenge import Step
from ..config import Config
from ..errors import FrameError
from ..upload import PATCH_EVERY
from ..vision.intake import Patch, load_frame_unscaled, load_patch
from ..vision.observation import FrameObservation
from ..vision.pipeline import attach_patch
from ..vision.thresholds import Thresholds
from .analysis import FrameAnalyzers, frame_feedback, observation_from_record, observation_record, progress
from .decider import Decider
from .errors import (
    BadRequest,
    FrameRejected,
    NoFrames,
    PayloadTooLarge,
    SessionClosed,
    SessionExpired,
    SessionNotFound,
    TokenInvalid,
    TokenMissing,
)
from .framestore import MAX_SEQ, FrameStore, FrameStoreError, frame_key
from .limits import RateLimiter
from .results import user_result
from .store import OPEN_STATUSES, ChallengeRecord, FrameRecord, SessionRecord, Store
from .workflow import Workflow

log = logging.getLogger(__name__)

_AWAITING_PATCH_BYTES = 32 << 20  # a worker's frames awaiting their patch: ~800 JPEGs of 40 KB


@dataclass(frozen=True)
class Upload:
    """One frame as the client sent it: its sequence number, client time (s) and JPEG bytes."""

    seq: int
    t: float | None
    data: bytes


@dataclass(frozen=True)
class PatchUpload:
    """A lossless PNG texture patch of the frame ``seq`` (sent in this request or before),
    with its top-left corner in that frame's pixels."""

    seq: int
    data: bytes
    x: int
    y: int


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
        # The JPEGs of this process's latest frames that await their texture patch (their
        # patch comes with the page's next request, usually to the same worker): found here,
        # they need no read from the frame store, and a failing store does not stop the check.
        self._awaiting_patch: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._awaiting_bytes = 0
        self._awaiting_lock = threading.Lock()

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
    def add_frames(self, session: SessionRecord, uploads: Sequence[Upload],
                   patches: Sequence[PatchUpload] = ()) -> dict[str, Any]:
        """Validate, analyse and store a batch of frames, then attach the texture patches of
        frames of this batch or earlier ones; all or nothing up to the analysis.

        Returns the per-frame feedback (with where the face is in each frame, for its patch),
        what became of each patch and the challenge progress. Raises ``SessionExpired``,
        ``SessionClosed``, ``PayloadTooLarge``, ``FrameRejected`` or ``FrameError`` before any
        frame of the batch is stored; a concurrent upload that wins a race can still make a
        later frame of the batch fail with ``FrameRejected``.
        """
        cfg = self.config
        self._require_open(session)
        now = self.clock()
        if not uploads and not patches:
            raise BadRequest("the request holds no frame and no patch", code="no_frames")
        if len(uploads) > cfg.max_batch or len(patches) > cfg.max_batch:
            raise PayloadTooLarge(f"at most {cfg.max_batch} frames and {cfg.max_batch} patches per request",
                                  code="too_many_in_batch")
        if session.n_frames + len(uploads) > cfg.max_frames:
            raise FrameRejected(f"at most {cfg.max_frames} frames per session", code="too_many_frames")
        digests = [hashlib.sha256(up.data).hexdigest() for up in uploads]
        times = self._check_batch(session, uploads, digests, now) if uploads else []
        seqs = {up.seq for up in uploads}
        if len({p.seq for p in patches}) != len(patches):
            raise BadRequest("two patches for the same frame in one request")
        for p in patches:
            if len(p.data) > cfg.max_frame_bytes:
                raise PayloadTooLarge(f"the patch of frame {p.seq} is larger than {cfg.max_frame_bytes} bytes",
                                      code="frame_too_large")
            # The page cuts patches of every PATCH_EVERY-th frame only: a client choosing its
            # frames could pick those where a screen's stripes are faintest.
            if p.seq % PATCH_EVERY:
                raise BadRequest(f"texture patch for frame {p.seq}: patches are taken of every "
                                 f"{PATCH_EVERY}th frame (upload.patch_every)", code="patch_not_due")
            if p.seq not in seqs and p.seq > session.last_seq:
                raise BadRequest(f"texture patch for frame {p.seq}, which has not been uploaded",
                                 code="patch_without_frame")
        images = []
        for up in uploads:
            try:
                images.append(load_frame_unscaled(up.data))
            except FrameError as exc:
                raise FrameError(f"frame {up.seq}: {exc.message}") from None
        image_of = dict(zip((up.seq for up in uploads), images))
        loaded = [self._load_patch(session, p, image_of.get(p.seq)) for p in patches]
        steps = self._steps(session.id)
        results, observed = [], {}
        for up, t, full, digest in zip(uploads, times, images, digests):
            obs = self.analyzers.analyze(full, t)
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
            observed[up.seq] = obs
            if obs.has_face and up.seq % PATCH_EVERY == 0:
                self._await_patch(session.id, up.seq, up.data)
            feedback = frame_feedback(obs, self.thresholds.quality)
            results.append({"seq": up.seq, "t": round(t, 3), "feedback": feedback})
        patch_results = [{"seq": seq, "outcome": self._attach_patch(session, seq, patch, full, observed.get(seq, obs))}
                         for seq, patch, full, obs in loaded]
        body: dict[str, Any] = {"accepted": len(results), "last_seq": session.last_seq, "frames": results}
        if patch_results:
            body["patches"] = patch_results
        if results:
            body["feedback"] = results[-1]["feedback"]
        last_t = times[-1] if times else session.last_t or 0.0
        body.update({
            "progress": progress(steps, last_t, session.capture_s),
            "capture_complete": last_t >= session.capture_s,
            "expires_in_s": round(max(0.0, session.expires_at - now), 1),
        })
        return body

    def _load_patch(self, session: SessionRecord, upload: PatchUpload, full: np.ndarray | None
                    ) -> tuple[int, Patch, np.ndarray | None, FrameObservation | None]:
        """Find one patch's frame and decode the patch, before anything of the request is
        stored: ``full`` is the frame when it is in this request; a frame sent before comes
        from the database and (its JPEG) this process's recent frames or the frame store (any
        worker or host may have taken it), or is None when the store no longer holds it.
        Returns (seq, patch, frame or None, the frame's stored observation or None). Raises
        ``BadRequest`` for a frame that was never stored, ``FrameError`` for a bad patch or one
        outside its frame."""
        seq = upload.seq
        obs, record = None, None
        if full is None:  # the database first: it is cheaper than decoding the PNG
            record = self.store.frame(session.id, seq, with_landmarks=True)
            if record is None:
                raise BadRequest(f"texture patch for frame {seq}, which was not stored", code="patch_without_frame")
        try:
            patch = load_patch(upload.data, upload.x, upload.y)
        except FrameError as exc:
            raise FrameError(f"frame {seq}, texture patch: {exc.message}") from None
        if record is not None:
            obs = observation_from_record(record.summary, record.landmarks)
            with self._awaiting_lock:
                data = self._awaiting_patch.get((session.id, seq))
            try:
                if data is None and record.stored_key is not None:
                    data = self.frames.get(record.stored_key)
                if data is not None:
                    full = load_frame_unscaled(data)
            except (FrameStoreError, FrameError) as exc:
                log.warning("session %s frame %d: patch not checked: %s", session.id, seq, exc.message)
        if full is not None and not patch.fits(full.shape[1], full.shape[0]):
            raise FrameError(f"frame {seq}, texture patch: it lies outside its frame")
        return seq, patch, full, obs

    def _await_patch(self, session_id: str, seq: int, data: bytes) -> None:
        with self._awaiting_lock:
            self._awaiting_patch[(session_id, seq)] = data
            self._awaiting_bytes += len(data)
            while self._awaiting_bytes > _AWAITING_PATCH_BYTES:
                _, old = self._awaiting_patch.popitem(last=False)
                self._awaiting_bytes -= len(old)

    def _patch_done(self, session_id: str, seq: int) -> None:
        with self._awaiting_lock:
            data = self._awaiting_patch.pop((session_id, seq), None)
            self._awaiting_bytes -= len(data or b"")

    def _forget_awaiting(self, session_id: str) -> None:
        """Drop a closed session's frames from memory (the retention policy rules the rest)."""
        with self._awaiting_lock:
            for key in [k for k in self._awaiting_patch if k[0] == session_id]:
                self._awaiting_bytes -= len(self._awaiting_patch.pop(key))

    def _attach_patch(self, session: SessionRecord, seq: int, patch: Patch, full: np.ndarray | None,
                      obs: FrameObservation | None) -> str:
        """Attach one patch to its frame's observation and store the new texture. Returns the
        ``attach_patch`` outcome, ``duplicate`` when a concurrent request stored this frame's
        patch first, or ``frame_unavailable`` when the frame store no longer holds the frame's
        JPEG (nothing to check the patch against)."""
        if full is None or obs is None:
            return "frame_unavailable"
        outcome = attach_patch(obs, full, patch, self.thresholds)
        if outcome in ("checked", "mismatch"):
            summary, _ = observation_record(obs)
            if not self.store.set_frame_summary(session.id, seq, summary):
                current = self.store.get_session(session.id)
                if current is None or current.status not in OPEN_STATUSES:
                    raise SessionClosed("the session closed before the texture patch was stored")
                outcome = "duplicate"
        if outcome != "off_face":
            self._patch_done(session.id, seq)
        return outcome

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

    def _check_batch(self, session: SessionRecord, uploads: Sequence[Upload], digests: list[str],
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
            if len(up.data) > cfg.max_frame_bytes:
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
    def complete(self, session: SessionRecord, camera: CameraReport | None = None) -> tuple[dict[str, Any], bool]:
        """Decide the session (bounded in time), with the page's report of its camera if it
        sent one (kept while the session is open; the first report counts). Returns (status
        body, finished).

        ``finished`` is False when the decision is still running after the configured bound:
        the caller answers 202 and the client polls ``status``. Raises ``SessionExpired`` or
        ``NoFrames``; completing a decided session again returns its stored result.
        """
        if session.status == "expired":
            raise SessionExpired("the session has expired; start a new one")
        if session.status in OPEN_STATUSES and session.n_frames == 0:
            raise NoFrames("no frame was uploaded; nothing to decide")
        if camera is not None and session.status in OPEN_STATUSES:
            self.store.set_camera_report(session.id, camera.as_dict(), self.clock())
        if session.status in OPEN_STATUSES or session.status == "deciding":
            self._forget_awaiting(session.id)
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
