"""The load command end to end, small: gunicorn as in production, one client, one session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_one_client_completes_a_session_against_gunicorn(shared_data: Path, tmp_path: Path) -> None:
    from kyc_llm.loadtest import main

    out = tmp_path / "load.json"
    main(["--clients", "1", "--duration", "2", "--llm-delay-ms", "50",
          "--spec", str(shared_data / "sessions" / "live-lp_d3-turnleft-mouth.json"), "--json", str(out)])
    figures = json.loads(out.read_text())
    level = figures["levels"][0]
    assert level["errors"] == 0, level["first_errors"]  # the latency bound is the command's to judge
    assert level["workers_replaced"] == 0
    assert level["sessions"] >= 1 and level["decisions"] == {"pass": level["sessions"]}
    assert level["frames"] >= 34 and level["upload_ms"]["p50"] > 0
    by_thread = level["server_cpu_ms_per_frame_by_thread"]
    assert by_thread["graph"] > 0 and by_thread["python"] > 0  # the workers' threads were read
    assert 0 < figures["per_frame_ms"] < 1000 and figures["ceiling_fps"] > 0
    before, after = level["per_frame_ms_before_after"]  # the level's ceiling: their mean
    assert before > 0 and after > 0 and abs(level["per_frame_ms"] - (before + after) / 2) <= 0.01


def test_client_counts_take_lists_and_ranges_and_refuse_the_rest() -> None:
    from kyc_llm.loadtest import client_counts

    assert client_counts("20-24") == [20, 21, 22, 23, 24]
    assert client_counts("4, 8,12") == [4, 8, 12]
    assert client_counts("18,20-22") == [18, 20, 21, 22]
    for bad in ("", "a", "20-", "-3", "²", "24-20", "18,24-20", "3,2", "1,1", "18-20,20",
                "0", "65", "60-70", "1-999999999"):
        with pytest.raises(ValueError):
            client_counts(bad)
