"""The decision: pass, fail or review, with reason codes and a short rationale.

The vision evidence is always an input; the LLM judgment joins as one more input when there
is one (``judgment=None`` is the decision on the vision evidence alone; with no LLM set up,
the service and the evaluation command pass the offline judge's ``llm_offline``). Rules:

- fail on clear attack evidence: no usable face (frames lost inside a tracked turn count as
  the subject's: ``VisionEvidence.turn_lost_frames``), several faces, an action missing or out
  of order, or a planarity, screen, print or stillness signal at or above ``fail_score``;
- review when something is borderline: an action unclear, a signal in the review band (a
  weak signal, the temporal cue, counts only when an independent signal is in the review
  band too: on its own it is recorded for the operator, nothing more), too many poor
  frames, a known virtual camera (or fail, by policy), or (with an LLM) disagreement on any
  action the vision checks verified (performed, in its window, in order), a judge less
  confident than the policy's floor, an invalid answer, or spoof signs; and whenever the
  service could not give the judge its keyframes;
- pass only when nothing above applies (and, with an LLM, it agrees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, Sequence

from .vision.evidence import VisionEvidence
from .vision.thresholds import Thresholds


@dataclass(frozen=True)
class Reason:
    """Everything the service does with one reason code.

    ``outcome`` is what the code forces (fail or review), unless ``policy_outcome`` names the
    ``Policy`` field that decides it instead. ``retryable``: a review for this code alone is
    something the user can fix by trying again (``sessions.results``), not a case for a
    person (a fail is never retried, so only review codes carry it). ``alert``: the operator
    alert cause it raises (``sessions.alerts``), if any.
    """

    outcome: str  # fail | review
    explanation: str
    retryable: bool = False
    alert: str | None = None
    policy_outcome: str | None = None

    def outcome_under(self, policy: "Policy") -> str:
        return getattr(policy, self.policy_outcome) if self.policy_outcome else self.outcome


INTERNAL_ERROR = "INTERNAL_ERROR"

# Every reason code of the service: tests/test_reasons.py fails on a code used anywhere in
# kyc_llm/ without a row here, and on an alert cause with no severity.
REASONS: dict[str, Reason] = {
    "NO_FACE": Reason("fail", "no single usable face in enough of the frames"),
    "MULTIPLE_FACES": Reason("fail", "more than one face in view"),
    "ACTION_MISSING": Reason("fail", "a requested action was not performed in its time window"),
    "ACTION_ORDER": Reason("fail", "the actions were not performed in the requested order"),
    "PLANAR_MOTION": Reason("fail", "the face moved like a flat sheet (photo or screen), not a head",
                            alert="presentation_attack"),
    "SCREEN_ARTEFACTS": Reason("fail", "display pixel-grid artefacts on the face", alert="presentation_attack"),
    "PRINT_ARTEFACTS": Reason("fail", "the face lacks the colour of live skin (printed photo)",
                              alert="presentation_attack"),
    "FROZEN_FACE": Reason("fail", "the face stays still between frames like a photo, not a live person",
                          alert="presentation_attack"),
    # Temporal cues are weak evidence (see thresholds.toml): a human looks, nobody is failed.
    "DEEPFAKE_SUSPECTED": Reason("review", "face geometry or motion is unstable in ways a real face is not",
                                 alert="deepfake_suspected"),
    "ACTION_UNCLEAR": Reason("review", "an action could not be verified with confidence", retryable=True),
    "LOW_QUALITY": Reason("review", "too many frames were dark, blurred, small or off-centre", retryable=True),
    "SCREEN_UNCHECKED": Reason("review", "too few lossless texture patches to check for a screen"),
    "PATCH_MISMATCH": Reason("review", "a lossless texture patch did not match its frame (a tampered upload)",
                             alert="tampered_upload"),
    "SIGNAL_BORDERLINE": Reason("review", "an attack signal is borderline"),
    "LLM_DISAGREES": Reason("review", "the LLM judge and the vision checks disagree", alert="llm_disagreement"),
    "LLM_UNSURE": Reason("review", "the LLM judge was not confident in its verdict"),
    "LLM_SPOOF_SUSPECTED": Reason("review", "the LLM judge saw signs of a screen, print, mask or synthetic face",
                                  alert="llm_spoof_suspected"),
    # The LLM's and the frame store's failures are alerted from the judgment's outcome, which
    # is there under any policy (sessions.alerts), not from these codes, which a policy may omit.
    "LLM_INVALID": Reason("review", "the LLM judge gave no valid answer"),
    "LLM_UNAVAILABLE": Reason("review", "the LLM judge could not be reached"),
    "FRAMES_UNAVAILABLE": Reason("review", "frames the LLM judge needed could not be loaded from storage"),
    # Review by default, fail where configured (KYC_VIRTUAL_CAMERA).
    "VIRTUAL_CAMERA": Reason("review",
                             "the browser reported a known virtual camera (a video feed can be injected)",
                             alert="injection_suspected", policy_outcome="virtual_camera"),
    # Stored by sessions.decider when computing the decision failed: a person decides.
    INTERNAL_ERROR: Reason("review", "the decision could not be computed", alert="decision_error"),
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

    @classmethod
    def from_config(cls, config: Any) -> "Policy":
        """The policy a ``kyc_llm.config.Config`` sets: each field is the Config field of that name."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


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
    outcomes = {REASONS[r].outcome_under(policy) for r in reasons}
    decision = "fail" if "fail" in outcomes else "review" if "review" in outcomes else "pass"
    if reasons:
        rationale = "; ".join(REASONS[r].explanation for r in reasons)
    else:
        rationale = "every action was verified and no attack signal was found"
    if not llm_used:
        rationale += " (decided without the LLM judge)"
    return Decision(decision, reasons, rationale, llm_used, details)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
