"""What the LLM concluded about a session's movements, as the decision and storage see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .usage import Usage

# ok: a validated answer. llm_invalid: the answer broke its schema even after one repair.
# llm_unavailable: the provider failed (non-retryable, or retries exhausted).
# llm_offline: no LLM is configured; the decision is made without one and must say so.
# frames_unavailable: the service could not load the keyframes (a frame not kept by the frame
# store), so the judge was not asked: the service's failure, which never passes anyone.
Outcome = Literal["ok", "llm_invalid", "llm_unavailable", "llm_offline", "frames_unavailable"]
OUTCOMES: tuple[str, ...] = ("ok", "llm_invalid", "llm_unavailable", "llm_offline", "frames_unavailable")


@dataclass(frozen=True)
class ActionVerdict:
    """The model's verdict on one challenge step.

    ``performed``/``in_window``/``in_order`` are None when the model could not tell.
    ``frame_id`` is the keyframe it relied on, ``frame_index`` that frame's index in the
    session's frame list.
    """

    action: str
    performed: bool | None
    in_window: bool | None
    in_order: bool | None
    confidence: float
    frame_id: str | None
    frame_index: int | None
    note: str


@dataclass(frozen=True)
class SpoofSign:
    present: bool
    note: str


@dataclass
class Judgment:
    """The movement judgment handed to the decision and stored with the session.

    Only ``outcome == "ok"`` carries verdicts; every other outcome has empty ``actions``
    and ``spoof_signs`` and says why in ``error``. ``raw_text`` keeps the model's last answer
    (and ``repaired_from`` the first one when a repair was asked for) for audit; ``templates``
    maps each template used to the sha256 of its file; ``keyframes`` describes the images sent.
    """

    outcome: Outcome
    provider: str
    model: str
    actions: list[ActionVerdict] = field(default_factory=list)
    spoof_signs: dict[str, SpoofSign] = field(default_factory=dict)
    confidence: float | None = None
    usage: list[Usage] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    keyframes: list[dict[str, Any]] = field(default_factory=list)
    raw_text: str | None = None
    repaired_from: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def spoof_suspected(self) -> bool:
        """Return True when the model flagged any spoof sign (False without a verdict).

        A method, as ``kyc_llm.decision.JudgmentLike`` reads it."""
        return any(sign.present for sign in self.spoof_signs.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "provider": self.provider,
            "model": self.model,
            "actions": [asdict(a) for a in self.actions],
            "spoof_signs": {k: asdict(s) for k, s in self.spoof_signs.items()},
            "confidence": self.confidence,
            "usage": [u.as_dict() for u in self.usage],
            "templates": dict(self.templates),
            "keyframes": list(self.keyframes),
            "raw_text": self.raw_text,
            "repaired_from": self.repaired_from,
            "error": self.error,
        }
