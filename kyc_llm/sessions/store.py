"""The storage interface: the records the service keeps and the operations on them.

The lifecycle talks only to ``Store``; ``SQLiteStore`` (one file, WAL) is the implementation
today. A PostgreSQL store would implement the same methods and be picked by
``kyc_llm.sessions.open_store`` from the configured URL. Times are Unix seconds (float) passed in by the caller, so the store
never reads a clock and tests control time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..challenge import Step

# Session states. created: issued, no frame yet; capturing: frames arriving; deciding: the
# judgment runs; decided: final; expired: never completed within its lifetime.
STATUSES = ("created", "capturing", "deciding", "decided", "expired")
OPEN_STATUSES = ("created", "capturing")
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass
class SessionRecord:
    id: str
    token_hash: str
    client_key: str
    status: str
    created_at: float
    expires_at: float
    capture_s: float
    fps_hint: float
    llm_mode: str  # "live" or "offline": whether a real LLM was configured at creation
    first_frame_at: float | None = None
    last_seq: int = -1
    last_t: float | None = None
    n_frames: int = 0
    deciding_since: float | None = None
    decided_at: float | None = None
    decision: str | None = None  # pass | fail | review
    guidance: str | None = None  # what the user is told: pass | fail | retry | review
    reasons: list[str] = field(default_factory=list)
    frames_purged_at: float | None = None

    def public(self) -> dict[str, Any]:
        """Fields an operator listing shows (no token hash, no client key)."""
        d = asdict(self)
        d.pop("token_hash")
        d.pop("client_key")
        return d


@dataclass
class ChallengeRecord:
    session_id: str
    steps: tuple[Step, ...]
    wording: list[str]  # one instruction per step, in order
    source: str  # "llm", "local" or "fixed"
    fallback_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.as_dict() for s in self.steps], "wording": list(self.wording),
            "source": self.source, "fallback_reason": self.fallback_reason,
        }


@dataclass
class FrameRecord:
    session_id: str
    seq: int
    t: float  # session time used for analysis (client time, bounded by server time)
    client_t: float | None
    received_at: float
    sha256: str
    size: int
    width: int
    height: int
    n_faces: int
    summary: dict[str, Any]  # FrameObservation.summary(): numbers only
    landmarks: bytes | None = None  # float32 (478, 3), deleted with the frame by retention
    stored_key: str | None = None  # key in the frame store while the JPEG is kept


@dataclass
class DecisionRecord:
    session_id: str
    decision: str
    guidance: str
    reasons: list[str]
    rationale: str
    llm_used: bool
    evidence: dict[str, Any]  # VisionEvidence.as_dict()
    judgment: dict[str, Any] | None  # Judgment.as_dict(), None when the LLM was not asked
    keyframes: list[dict[str, Any]]  # {"index", "seq", "t", "label"}
    decided_at: float
    duration_ms: float


@dataclass(frozen=True)
class LlmCallRecord:
    """One LLM call as stored; made before the session exists (its challenge wording), so
    the session id is given beside it when stored."""

    kind: str  # "challenge" or "judgment"
    outcome: str
    model: str | None
    template_hashes: dict[str, str]
    usage: dict[str, Any]
    raw_text: str | None
    created_at: float


@dataclass
class AlertRecord:
    severity: str
    cause: str
    message: str
    created_at: float
    session_id: str | None = None
    client_key: str | None = None
    id: int | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("client_key")
        return d


class Store(Protocol):
    """What the lifecycle needs from storage. Every method is atomic on its own."""

    def create_session(self, session: SessionRecord, challenge: ChallengeRecord, at: float) -> None: ...
    def get_session(self, session_id: str) -> SessionRecord | None: ...
    def get_challenge(self, session_id: str) -> ChallengeRecord | None: ...
    def has_frame_hash(self, session_id: str, sha256: str) -> bool: ...
    def add_frame(self, frame: FrameRecord, max_frames: int) -> SessionRecord: ...
    def frames(self, session_id: str, with_landmarks: bool = False) -> list[FrameRecord]: ...
    def frame(self, session_id: str, seq: int, with_landmarks: bool = False) -> FrameRecord | None: ...
    def set_frame_summary(self, session_id: str, seq: int, summary: dict[str, Any]) -> bool: ...
    def set_camera_report(self, session_id: str, report: dict[str, Any], at: float) -> bool: ...
    def camera_report(self, session_id: str) -> dict[str, Any] | None: ...
    def expire(self, session_id: str, at: float, unstarted_before: float | None = None) -> bool: ...
    def claim_decision(self, session_id: str, at: float, stale_before: float, by: str = "client") -> bool: ...
    def refresh_claim(self, session_id: str, stamp: float, now: float) -> bool: ...
    def save_decision(self, record: DecisionRecord, actions: list[dict[str, Any]], claimed_at: float) -> bool: ...
    def get_decision(self, session_id: str) -> DecisionRecord | None: ...
    def action_evidence(self, session_id: str) -> list[dict[str, Any]]: ...
    def add_llm_call(self, session_id: str, call: LlmCallRecord) -> None: ...
    def llm_calls(self, session_id: str) -> list[LlmCallRecord]: ...
    def mark_frames_purged(self, session_id: str, at: float) -> None: ...
    def sessions_to_purge(self, now: float, review_before: float, keep_review: bool,
                          keep_all: bool) -> list[str]: ...
    def expired_open_sessions(self, now: float, unstarted_before: float | None = None) -> list[str]: ...
    def stale_decisions(self, stale_before: float) -> list[str]: ...
    def list_sessions(self, *, status: str | None = None, decision: str | None = None,
                      since: float | None = None, until: float | None = None,
                      limit: int = 50, offset: int = 0) -> list[SessionRecord]: ...
    def failures_since(self, client_key: str, since: float) -> list[float]: ...
    def sessions_created_since(self, client_key: str, since: float) -> int: ...
    # unless_open: nothing stored (None) while an alert of that cause is open for that session.
    def add_alert(self, alert: AlertRecord, *, unless_open: bool = False) -> int | None: ...
    def list_alerts(self, *, severity: str | None = None, acknowledged: bool | None = None,
                    session_id: str | None = None, cause: str | None = None,
                    limit: int = 100) -> list[AlertRecord]: ...
    def ack_alert(self, alert_id: int, by: str, at: float) -> AlertRecord | None: ...
    def audit(self, session_id: str | None, actor: str, event: str, detail: dict[str, Any],
              at: float) -> None: ...
    def audit_log(self, session_id: str) -> list[dict[str, Any]]: ...
    def stats(self, since: float | None = None) -> dict[str, Any]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
