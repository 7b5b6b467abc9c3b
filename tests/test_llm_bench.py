"""The LLM benchmark on one short real session (skipped without ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kyc_llm.llm.bench import main


def test_bench_on_one_real_session(shared_data: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    spec = json.loads((shared_data / "sessions" / "live-fsanet_pose-turns.json").read_text())
    spec.update(video=str((shared_data / "clips/live/fsanet_pose_demo.mp4").resolve()),
                end_s=2.0, fps=5, challenge=[{"action": "turn_left", "start_s": 0.4, "end_s": 1.8}])
    (sessions / "one.json").write_text(json.dumps(spec))
    out_json = tmp_path / "rows.json"

    assert main(["--sessions", str(sessions), "--delay-ms", "50", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "LLM judgment benchmark: 1 sessions" in out
    assert "images per request" in out and "last frame -> judgment, minus the delay" in out
    assert "outcomes: ok 1" in out
    (row,) = json.loads(out_json.read_text())
    assert 2 <= row["images"] <= 8 and 0 < row["image_tokens"] <= 3000
    assert row["input_tokens_estimate"] > row["image_tokens"]
    assert 0 <= row["judge_ms"] <= row["last_frame_to_judgment_ms"]


def test_bench_without_sessions_exits_2(tmp_path: Path) -> None:
    assert main(["--sessions", str(tmp_path / "absent")]) == 2
