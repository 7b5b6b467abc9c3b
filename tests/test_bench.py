"""The per-frame benchmark command, small: it runs on a real clip and writes its figures."""

from __future__ import annotations

import json
from pathlib import Path


def test_bench_times_both_paths_on_a_real_clip(shared_data: Path, tmp_path: Path) -> None:
    from kyc_llm.bench import main

    out = tmp_path / "bench.json"
    clip = shared_data / "clips" / "live" / "sadtalker_hdtf_katiehill.mp4"
    assert main(["--clip", str(clip), "--frames", "12", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["frames"] == 7  # 12 read, the first 5 warm up
    for path in ("facemesh", "whole_frame"):
        assert 0 < r[path]["median_ms"] <= r[path]["p95_ms"] and r[path]["mean_ms"] > 0
    assert r["ratio"] == r["whole_frame"]["median_ms"] / r["facemesh"]["median_ms"]
    assert r["fps_per_core"] == 1000.0 / r["whole_frame"]["mean_ms"]
