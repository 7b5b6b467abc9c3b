"""The decision: pass, fail or review, with reason codes and a short rationale.

The vision evidence is always an input; the LLM judgment joins as one more input when there
is one (``judgment=None`` is the CV-only decision the evaluation command measures). Rules:

- fail on clear attack evidence: no usable face (frames lost inside a tracked turn count as
  the subject's: ``VisionEvidence.turn_lost_frames``), several faces, an action missing or out
  of order, or a planarity, screen, print or stillness signal at or above ``fail_score``;
- review when something is borderline: an action unclear, a signal in the review band, too
  many poor frames (a weak signal, the temporal cue, counts only when an independent signal
  is in the review band too: on its own it is recorded for the operator, nothing more), or (with an LLM) disagreement on any action the vision checks verified
  (performed, in its window, in order), a judge less confident than the policy's floor, an
  invalid answer, or spoof signs; and
  whenever the service could not give the judge its keyframes;
- pass only when nothing above applies (and, with an LLM, it agrees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

from .vision.evidence import VisionEvidence
from .vision.thresholds import Thresholds

# Reason codes, each with the outcome it forces and a human explanation.
REASONS: dict[str, tuple[str, str]] = {
    "NO_FACE": ("fail", "no single usable face in enough of the frames"),
    "MULTIPLE_FACES": ("fail", "more than one face in view"),
    "ACTION_MISSING": ("fail", "a requested action was not performed in its time window"),
    "ACTION_ORDER": ("fail", "the actions were not performed in the requested order"),
    "PLANAR_MOTION": ("fail", "the face moved like a flat sheet (photo or screen), not a head"),
    "SCREEN_ARTEFACTS": ("fail", "display pixel-grid artefacts on the face"),
    "PRINT_ARTEFACTS": ("fail", "the face lacks the colour of live skin (printed photo)"),
    "FROZEN_FACE": ("fail", "the face stays still between frames like a photo, not a live person"),
    # Temporal cues are weak evidence (see thresholds.toml): a human looks, nobody is failed.
    "DEEPFAKE_SUSPECTED": ("review", "face geometry or motion is unstable in ways a real face is not"),
    "ACTION_UNCLEAR": ("review", "an action could not be verified with confidence"),
    "LOW_QUALITY": ("review", "too many frames were dark, blurred, small or off-centre"),
    "SCREEN_UNCHECKED": ("review", "too few lossless texture patches to check for a screen"),
    "PATCH_MISMATCH": ("review", "a lossless texture patch did not match its frame (a tampered upload)"),
    "SIGNAL_BORDERLINE": ("review", "an attack signal is borderline"),
    "LLM_DISAGREES": ("review", "the LLM judge and the vision checks disagree"),
    "LLM_UNSURE": ("review", "the LLM judge was not confident in its verdict"),
    "LLM_SPOOF_SUSPECTED": ("review", "the LLM judge saw signs of a screen, print, mask or synthetic face"),
    "LLM_INVALID": ("review", "the LLM judge gave no valid answer"),
    "LLM_UNAVAILABLE": ("review", "the LLM judge could not be reached"),
    "FRAMES_UNAVAILABLE": ("review", "frames the LLM judge needed could not be loaded from storage"),
    # The outcome is the policy's (review by default, fail where configured): see decide.
    "VIRTUAL_CAMERA": ("review", "the browser reported a known virtual camera (a video feed can be injected)"),
}

# Weak cues: they fire on honest video too (a handheld camera's jitter and motion blur), so
# they never decide alone; they add their reason only beside a strong signal in the review band.
WEAK_SIGNALS = frozenset({"temporal"})

_SIGNAL_REASONS = {
    "planarity": "PLANAR_MOTION",
    "screen": "SCREEN_ARTEFACTS",
    "print": "PRINT_ARTEFACTS",
    "stillness": "FROZEN_FACE",
    "temporal": "DEEPFAKE_SUSPECTED",
}


class ActionVerdictLike(Protocol):
    action: str
    performed: bool | None
    in_window: bool | None
    in_order: bool | None
    confidence: float


class JudgmentLike(Protocol):
    """What the decision reads from the LLM judgment (kyc_llm.llm.judgment.Judgment)."""

    outcome: str  # ok | llm_invalid | llm_unavailable | llm_offline | frames_unavailable
    actions: Sequence[ActionVerdictLike]
    confidence: float | None

    def spoof_suspected(self) -> bool: ...


@dataclass(frozen=True)
class Policy:
    """How the LLM joins the decision (configuration, not code)."""

    require_llm: bool = False  # an unavailable or invalid LLM answer sends the session to review
    min_judge_confidence: float = 0.5  # a judge less sure than this (overall or on an action): review
    virtual_camera: str = "review"  # what a known virtual camera makes of the session: review | fail


@dataclass
class Decision:
    decision: str  # pass | fail | review
    reasons: list[str]
    rationale: str
    llm_used: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def vision_reasons(ev: VisionEvidence, th: Thresholds) -> tuple[list[str], dict[str, Any]]:
    """Reason codes from the vision evidence alone, and the facts behind them."""
    q = th.quality
    reasons: list[str] = []
    details: dict[str, Any] = {}
    n = max(ev.n_frames, 1)
    # Frames lost inside a tracked turn (the head went past FaceMesh's range and came back
    # turned) show the subject, not an empty or covered camera: they count with the faces.
    if (ev.face_frames + ev.turn_lost_frames) / n < q.min_face_frames_share:
        reasons.append("NO_FACE")
    if ev.multi_face_frames / n > q.max_multi_face_share:
        reasons.append("MULTIPLE_FACES")
    if "NO_FACE" not in reasons:
        for a in ev.actions:
            if not a.in_order:
                reasons.append("ACTION_ORDER")
            elif a.verdict == "not_performed":
                reasons.append("ACTION_MISSING")
            elif a.verdict == "unclear":
                reasons.append("ACTION_UNCLEAR")
        a = th.attacks
        corroborated = any(s.available and s.score >= a.review_score
                           for n, s in ev.signals.items() if n not in WEAK_SIGNALS)
        for name, sig in ev.signals.items():
            if not sig.available:
                if name == "screen" and ev.face_frames:
                    reasons.append("SCREEN_UNCHECKED")  # a check that could not run is no pass
                continue
            if sig.score < a.review_score:
                continue
            if name in WEAK_SIGNALS and not corroborated:
                details.setdefault("uncorroborated_signals", []).append(name)
            elif sig.score >= a.fail_score:
                reasons.append(_SIGNAL_REASONS[name])
            else:
                reasons.append("SIGNAL_BORDERLINE")
                details.setdefault("borderline_signals", []).append(name)
        if ev.quality.get("low_quality_share", 0.0) > q.max_low_quality_share:
            reasons.append("LOW_QUALITY")
    if ev.patch_mismatches:  # only a client other than the page sends such a patch
        reasons.append("PATCH_MISMATCH")
    return _unique(reasons), details


def llm_reasons(ev: VisionEvidence, judgment: JudgmentLike, policy: Policy) -> tuple[list[str], bool]:
    """Reason codes the LLM judgment adds, and whether the LLM took part in the decision."""
    if judgment.outcome == "frames_unavailable":  # the service's failure: never a pass, whatever the policy
        return ["FRAMES_UNAVAILABLE"], False
    if judgment.outcome != "ok":
        # Offline (no credentials) counts as unavailable: a policy that requires the LLM
        # never lets a session pass on the vision checks alone.
        code = "LLM_INVALID" if judgment.outcome == "llm_invalid" else "LLM_UNAVAILABLE"
        return ([code] if policy.require_llm else []), False
    reasons = []
    # The judgment's verdicts follow the challenge order (its schema pins them to the steps).
    # Agreeing means the same three facts the vision checks establish: performed, inside its
    # time window, in the requested order; "could not tell" (None) is no agreement.
    verdicts = list(judgment.actions)
    for i, a in enumerate(ev.actions):
        if a.verdict != "performed":
            continue  # the vision checks already fail or review it; the LLM cannot rescue it
        v = verdicts[i] if i < len(verdicts) else None
        if v is None or not (v.performed is True and v.in_window is True and v.in_order is True):
            reasons.append("LLM_DISAGREES")
        elif v.confidence < policy.min_judge_confidence:
            reasons.append("LLM_UNSURE")
    if judgment.confidence is not None and judgment.confidence < policy.min_judge_confidence:
        reasons.append("LLM_UNSURE")
    if judgment.spoof_suspected():
        reasons.append("LLM_SPOOF_SUSPECTED")
    return _unique(reasons), True


def decide(ev: VisionEvidence, th: Thresholds, judgment: JudgmentLike | None = None,
           policy: Policy = Policy(), virtual_camera: str | None = None) -> Decision:
    """Fuse the vision evidence (and the LLM judgment, if any) into one decision.
    ``virtual_camera`` is the known virtual-camera label the page's camera report matched."""
    reasons, details = vision_reasons(ev, th)
    llm_used = False
    if judgment is not None:
        extra, llm_used = llm_reasons(ev, judgment, policy)
        reasons = _unique(reasons + extra)
        details["llm_outcome"] = judgment.outcome
    if virtual_camera is not None:
        reasons = _unique(reasons + ["VIRTUAL_CAMERA"])
        details["virtual_camera"] = virtual_camera
    outcomes = {policy.virtual_camera if r == "VIRTUAL_CAMERA" else REASONS[r][0] for r in reasons}
    decision = "fail" if "fail" in outcomes else "review" if "review" in outcomes else "pass"
    if reasons:
        rationale = "; ".join(REASONS[r][1] for r in reasons)
    else:
        rationale = "every action was verified and no attack signal was found"
    if not llm_used:
        rationale += " (decided without the LLM judge)"
    return Decision(decision, reasons, rationale, llm_used, details)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
