"""Decision rules on hand-built evidence: which reasons force which outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from kyc_llm.decision import Policy, decide
from kyc_llm.vision.evidence import ActionEvidence, Signal, VisionEvidence
from kyc_llm.vision.thresholds import load_thresholds

TH = load_thresholds()


def evidence(verdicts: tuple[str, ...] = ("performed", "performed"), face_frames: int = 40,
             multi: int = 0, **scores: float) -> VisionEvidence:
    actions = [ActionEvidence(a, i, i + 1.0, v, "m") for i, (a, v) in enumerate(zip(("blink", "smile"), verdicts))]
    signals = {n: Signal(n, scores.get(n, 0.0)) for n in ("planarity", "screen", "print", "stillness", "temporal")}
    return VisionEvidence(40, face_frames, multi, 0, actions, signals, {"low_quality_share": 0.0})


@dataclass
class Verdict:
    action: str
    performed: bool | None
    in_window: bool | None = True
    in_order: bool | None = True
    confidence: float = 0.9


@dataclass
class FakeJudgment:
    outcome: str = "ok"
    actions: list[Verdict] = field(default_factory=lambda: [Verdict("blink", True), Verdict("smile", True)])
    spoof: bool = False
    confidence: float | None = 0.9

    def spoof_suspected(self) -> bool:
        return self.spoof


def test_clean_evidence_passes_without_the_llm_and_says_so() -> None:
    d = decide(evidence(), TH)
    assert (d.decision, d.reasons, d.llm_used) == ("pass", [], False)
    assert "without the LLM" in d.rationale


def test_missing_action_fails() -> None:
    d = decide(evidence(("performed", "not_performed")), TH)
    assert (d.decision, d.reasons) == ("fail", ["ACTION_MISSING"])


def test_unclear_action_goes_to_review() -> None:
    assert decide(evidence(("unclear", "performed")), TH).decision == "review"


def test_no_face_fails_and_hides_action_reasons() -> None:
    d = decide(evidence(("not_performed", "not_performed"), face_frames=5), TH)
    assert (d.decision, d.reasons) == ("fail", ["NO_FACE"])


def test_multiple_faces_fail() -> None:
    assert "MULTIPLE_FACES" in decide(evidence(multi=20), TH).reasons


def test_attack_signals_fail_or_review_by_score() -> None:
    assert decide(evidence(screen=0.95), TH).reasons == ["SCREEN_ARTEFACTS"]
    assert decide(evidence(planarity=1.0), TH).decision == "fail"
    borderline = decide(evidence(screen=0.6), TH)
    assert (borderline.decision, borderline.reasons) == ("review", ["SIGNAL_BORDERLINE"])
    assert borderline.details["borderline_signals"] == ["screen"]


def test_a_weak_signal_alone_never_decides() -> None:
    # A handheld camera's jitter puts the temporal cue in its review band, or above fail_score.
    for score in (0.6, 1.0):
        d = decide(evidence(temporal=score), TH)
        assert (d.decision, d.reasons) == ("pass", [])
        assert d.details["uncorroborated_signals"] == ["temporal"]


def test_a_weak_signal_joins_a_strong_one_in_the_review_band() -> None:
    d = decide(evidence(temporal=1.0, stillness=0.6), TH)
    assert (d.decision, d.reasons) == ("review", ["SIGNAL_BORDERLINE", "DEEPFAKE_SUSPECTED"])
    assert d.details["borderline_signals"] == ["stillness"]
    assert "uncorroborated_signals" not in d.details
    # A strong signal under the review band corroborates nothing.
    assert decide(evidence(temporal=1.0, stillness=0.4), TH).decision == "pass"


def test_unavailable_signal_is_ignored() -> None:
    ev = evidence()
    ev.signals["planarity"] = Signal("planarity", 1.0, available=False)
    assert decide(ev, TH).decision == "pass"


def test_llm_agreement_passes_with_the_llm() -> None:
    d = decide(evidence(), TH, FakeJudgment())
    assert (d.decision, d.llm_used) == ("pass", True)
    assert "without the LLM" not in d.rationale


def test_llm_disagreement_goes_to_review() -> None:
    j = FakeJudgment(actions=[Verdict("blink", True), Verdict("smile", False)])
    assert decide(evidence(), TH, j).reasons == ["LLM_DISAGREES"]


def test_llm_must_agree_on_window_and_order_too() -> None:
    for broken in (dict(in_window=False), dict(in_order=False), dict(in_window=None), dict(performed=None)):
        verdict = Verdict(**{"action": "smile", "performed": True, **broken})
        d = decide(evidence(), TH, FakeJudgment(actions=[Verdict("blink", True), verdict]))
        assert (d.decision, d.reasons) == ("review", ["LLM_DISAGREES"]), broken


def test_an_unsure_llm_goes_to_review_at_the_policy_floor() -> None:
    unsure_action = FakeJudgment(actions=[Verdict("blink", True, confidence=0.05), Verdict("smile", True)])
    assert decide(evidence(), TH, unsure_action).reasons == ["LLM_UNSURE"]
    assert decide(evidence(), TH, FakeJudgment(confidence=0.3)).reasons == ["LLM_UNSURE"]
    lenient = Policy(min_judge_confidence=0.01)
    assert decide(evidence(), TH, unsure_action, lenient).decision == "pass"
    assert decide(evidence(), TH, FakeJudgment(confidence=None)).decision == "pass"
    at_floor = FakeJudgment(actions=[Verdict("blink", True, confidence=0.5), Verdict("smile", True)], confidence=0.5)
    assert decide(evidence(), TH, at_floor).decision == "pass"  # below the floor is unsure, not at it


def test_keyframes_the_store_could_not_give_go_to_review_whatever_the_policy() -> None:
    d = decide(evidence(), TH, FakeJudgment(outcome="frames_unavailable", actions=[]))
    assert (d.decision, d.reasons, d.llm_used) == ("review", ["FRAMES_UNAVAILABLE"], False)
    assert decide(evidence(("performed", "not_performed")), TH,
                  FakeJudgment(outcome="frames_unavailable", actions=[])).decision == "fail"


def test_llm_spoof_signs_go_to_review() -> None:
    assert decide(evidence(), TH, FakeJudgment(spoof=True)).reasons == ["LLM_SPOOF_SUSPECTED"]


def test_llm_never_rescues_a_cv_failure() -> None:
    assert decide(evidence(("performed", "not_performed")), TH, FakeJudgment()).decision == "fail"


def test_invalid_or_unavailable_llm_by_policy() -> None:
    for outcome, code in (("llm_invalid", "LLM_INVALID"), ("llm_unavailable", "LLM_UNAVAILABLE")):
        lenient = decide(evidence(), TH, FakeJudgment(outcome=outcome))
        assert (lenient.decision, lenient.llm_used) == ("pass", False)
        strict = decide(evidence(), TH, FakeJudgment(outcome=outcome), Policy(require_llm=True))
        assert (strict.decision, strict.reasons) == ("review", [code])


def test_offline_llm_is_recorded_as_not_used() -> None:
    d = decide(evidence(), TH, FakeJudgment(outcome="llm_offline"))
    assert (d.decision, d.llm_used, d.details["llm_outcome"]) == ("pass", False, "llm_offline")
    assert "without the LLM" in d.rationale
    strict = decide(evidence(), TH, FakeJudgment(outcome="llm_offline"), Policy(require_llm=True))
    assert (strict.decision, strict.reasons) == ("review", ["LLM_UNAVAILABLE"])


def test_llm_verdicts_are_read_by_position_for_repeated_actions() -> None:
    ev = evidence()
    ev.actions[1].action = "blink"  # blink, blink
    j = FakeJudgment(actions=[Verdict("blink", True), Verdict("blink", False)])
    assert decide(ev, TH, j).reasons == ["LLM_DISAGREES"]
    assert decide(ev, TH, FakeJudgment(actions=[Verdict("blink", True)])).reasons == ["LLM_DISAGREES"]


def test_frames_lost_inside_a_tracked_turn_are_not_no_face() -> None:
    # 18 of 40 frames show the face; 14 more were lost while the head was turned past the
    # tracker's range (the turn steps name them): 32 of 40 show the subject, 22 without them.
    ev = evidence(face_frames=18)
    ev.actions[0].lost_frames = list(range(10, 24))
    ev.actions[1].lost_frames = list(range(20, 24))  # the same frames named twice count once
    assert ev.turn_lost_frames == 14 and ev.as_dict()["turn_lost_frames"] == 14
    assert "NO_FACE" not in decide(ev, TH).reasons
    ev.actions[0].lost_frames = []
    assert "NO_FACE" in decide(ev, TH).reasons
