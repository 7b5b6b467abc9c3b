"""The evaluation command: a CI-sized subset of the practice set, metrics against the targets."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from kyc_llm import evaluate
from kyc_llm.errors import ConfigError
from kyc_llm.vision.thresholds import DEFAULT_PATH, load_thresholds


@pytest.fixture(autouse=True)
def _service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation reads the service's KYC_* settings: none of the developer's leak in."""
    import os

    for name in [k for k in os.environ if k.startswith("KYC_")]:
        monkeypatch.delenv(name)

# Two of each kind the targets name, the hardest where there is a choice (a borderless print
# tilted to fake the turns, swapped turn directions, a borderless screen replay).
SUBSET = [
    "live-katiehill-turns", "live-lp_d18-smile-blink", "live-eyeblink-blink1",
    "attack-katiehill-swapped-turns", "attack-lp_d9-swapped-smile-blink",
    "attack-fullframe_tilt_elon-left-right-up", "attack-print_tilt_mark-turns-lookup",
    "attack-fullscreen_katiehill-turns", "attack-screen_replay_lp_d9-smile-blink",
    "attack-no_face_covered_lens_a-blink-smile",
]


def test_subset_meets_the_targets(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    paths = [str(shared_data / "sessions" / f"{s}.json") for s in SUBSET]
    assert evaluate.main([*paths, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert m["n"] == len(SUBSET) and m["errors"] == 0
    assert m["bpcer"] <= 0.05
    assert m["apcer"]["wrong_actions"] == 0 and m["apcer"]["print"] == 0 and m["apcer"]["no_face"] == 0
    assert m["apcer"]["screen_replay"] <= 0.10
    rows = {r["id"]: r for r in report["sessions"]}
    assert set(rows) == set(SUBSET)
    assert all({"id", "truth", "attack", "decision", "reasons"} <= set(r) for r in rows.values())
    assert "SCREEN_ARTEFACTS" in rows["attack-fullscreen_katiehill-turns"]["reasons"]
    printed = capsys.readouterr().out
    assert "BPCER: 0.0% of 3 live" in printed and "APCER worst:" in printed


def test_by_source_and_per_person_figures_and_another_rate(shared_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(shared_data / "sessions" / f"{s}.json") for s in
             ("live-katiehill-turns", "attack-katiehill-swapped-turns", "attack-fullframe_tilt_elon-left-right-up")]
    out = tmp_path / "eval.json"
    assert evaluate.main([*paths, "--by-source", "--fps", "8", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "by source:" in printed and "by person:" in printed
    # The live clip and its replay are one source and one person; the print was rendered here.
    assert "OpenTalker/SadTalker" in printed and "BPCER 0.0% of 1, APCER wrong_actions 0.0% of 1" in printed
    assert re.search(r"synthetic +APCER print 0.0% of 1", printed)
    assert re.search(r"ghost_elon_musk +APCER print 0.0% of 1", printed)
    assert "live actions performed: turn_left 1/1, turn_right 1/1" in printed
    rows = {r["id"]: r for r in json.loads(out.read_text())["sessions"]}
    assert rows["live-katiehill-turns"]["person"] == rows["attack-katiehill-swapped-turns"]["person"]
    assert rows["live-katiehill-turns"]["patches"] >= 3
    assert evaluate.main([*paths, "--fps", "0.5"]) == 2


def test_unreadable_sessions_are_reported_not_fatal(shared_data: Path, tmp_path: Path) -> None:
    good = shared_data / "sessions" / "live-lp_d18-blink.json"
    (tmp_path / "broken.json").write_text("{not json")
    missing_video = json.loads(good.read_text()) | {"id": "missing-video", "video": "nope.mp4"}
    (tmp_path / "missing.json").write_text(json.dumps(missing_video))
    # A copy elsewhere: its relative video path must be made absolute to stay readable.
    (tmp_path / "good.json").write_text(good.read_text().replace("../clips", str(shared_data / "clips")))
    out = tmp_path / "eval.json"
    assert evaluate.main([str(tmp_path), "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    by_id = {r["id"]: r for r in report["sessions"]}
    assert by_id["broken"]["decision"] == "error" and "cannot read spec" in by_id["broken"]["error"]
    assert by_id["missing-video"]["decision"] == "error" and "not found" in by_id["missing-video"]["error"]
    assert by_id["live-lp_d18-blink"]["decision"] == "pass"
    assert report["metrics"]["n"] == 1 and report["metrics"]["errors"] == 2


def test_thresholds_file_is_validated(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text()
    bad = tmp_path / "t.toml"
    bad.write_text(text.replace("turn_deg = 12.0", "turn_deg = 12.0\nturn_degrees = 3"))
    with pytest.raises(ConfigError, match="unknown key.*turn_degrees"):
        load_thresholds(bad)
    bad.write_text(text.replace("turn_deg = 12.0", 'turn_deg = "twelve"'))
    with pytest.raises(ConfigError, match="turn_deg must be a number"):
        load_thresholds(bad)
    bad.write_text(text.replace("baseline_min_frames = 3 ", "baseline_min_frames = 2.5 "))
    with pytest.raises(ConfigError, match="baseline_min_frames"):
        load_thresholds(bad)
    for good, broken, message in [
        ("fail_score = 0.8 ", "fail_score = nan ", "finite"),
        ("turn_deg = 12.0", "turn_deg = -inf", "finite"),
        ("review_score = 0.5 ", "review_score = 0.9 ", "review_score must be below fail_score"),
        ("min_face_share = 0.5 ", "min_face_share = 5.0 ", "at most 1"),
        ("baseline_min_frames = 3 ", "baseline_min_frames = 0 ", "at least 1"),
    ]:
        assert good in text
        bad.write_text(text.replace(good, broken))
        with pytest.raises(ConfigError, match=message):
            load_thresholds(bad)
    assert evaluate.main(["--thresholds", str(tmp_path / "absent.toml"), str(tmp_path)]) == 2
    assert evaluate.main(["--jpeg-quality", "50", str(tmp_path)]) == 2  # outside the calibrated 70-95


@pytest.mark.parametrize(
    "change, message",
    [
        ({"end_s": float("inf")}, "finite"),
        ({"end_s": 1e7}, "at most"),
        ({"challenge": [{"action": "blink", "start_s": 50, "end_s": 60}]}, "after the session"),
        ({"challenge": [{"action": "wink", "start_s": 0.5, "end_s": 1.0}]}, "unknown action"),
        ({"truth": "maybe"}, "truth must be"),
    ],
    ids=["infinite", "huge", "window-after-end", "unknown-action", "bad-truth"],
)
def test_bad_specs_are_refused_with_a_reason(tmp_path: Path, change: dict, message: str) -> None:
    from kyc_llm.errors import SpecError
    from kyc_llm.sessionspec import load_spec

    spec = {"id": "x", "video": "v.mp4", "start_s": 0.0, "end_s": 3.0, "fps": 10,
            "challenge": [{"action": "blink", "start_s": 0.5, "end_s": 2.0}], "truth": "live", "attack": None}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec | change).replace("Infinity", "1e999"))
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_video_shorter_than_the_session_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    spec = json.loads((shared_data / "sessions" / "live-lp_d0-smile-blink.json").read_text())
    spec |= {"id": "too-long", "video": str(shared_data / "clips/live/lp_d0.mp4"), "end_s": 9.0}
    (tmp_path / "long.json").write_text(json.dumps(spec))
    result = evaluate.run_session(tmp_path / "long.json", load_thresholds())
    assert result.decision == "error" and "ends at" in result.error


def test_the_service_policy_applies_with_the_llm_offline(shared_data: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import kyc_llm.sessions.workflow
    from kyc_llm.config import Config
    from kyc_llm.decision import Policy, decide

    seen: list[tuple[Policy, str]] = []

    def recording(ev, th, judgment=None, policy=Policy(), virtual_camera=None):
        seen.append((policy, judgment.outcome))
        return decide(ev, th, judgment, policy, virtual_camera)

    monkeypatch.setattr(kyc_llm.sessions.workflow, "decide", recording)  # where the workflow looks it up
    live = str(shared_data / "sessions" / "live-lp_d18-blink.json")
    out = tmp_path / "eval.json"
    assert evaluate.main([live, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["sessions"][0]["decision"] == "pass"  # the default adds nothing
    assert capsys.readouterr().out.startswith(
        "policy: require_llm=False, min_judge_confidence=0.5, virtual_camera=review")

    # The service's policy, as its workflow builds it from KYC_*: without the LLM it passes nobody.
    monkeypatch.setenv("KYC_REQUIRE_LLM", "1")
    monkeypatch.setenv("KYC_MIN_JUDGE_CONFIDENCE", "0.7")
    monkeypatch.setenv("KYC_VIRTUAL_CAMERA", "fail")
    assert evaluate.main([live, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["sessions"][0]["decision"], report["sessions"][0]["reasons"]) == ("review", ["LLM_UNAVAILABLE"])
    expected = Policy(require_llm=True, min_judge_confidence=0.7, virtual_camera="fail")
    assert report["policy"] == dataclasses.asdict(expected) and Policy.from_config(Config.from_env()) == expected
    assert seen == [(Policy(), "llm_offline"), (expected, "llm_offline")]
    assert capsys.readouterr().out.splitlines()[0] == (
        "policy: require_llm=True, min_judge_confidence=0.7, virtual_camera=fail (the service's, from KYC_*), "
        "the LLM judge offline")


@pytest.mark.parametrize("name, value", [("KYC_REQUIRE_LLM", "maybe"), ("KYC_VIRTUAL_CAMERA", "block"),
                                         ("KYC_REQUIRE_LLMM", "1")])
def test_a_bad_service_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert evaluate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and name in err and len(err.strip().splitlines()) == 1
