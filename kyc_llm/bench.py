"""Benchmark of the per-frame path on a real clip.

    python -m kyc_llm.bench [--clip FILE] [--frames N] [--json FILE]
    python -m kyc_llm.bench --llm [...]   (the judgment request: see kyc_llm/llm/bench.py)

In one process: (a) the bare MediaPipe FaceMesh graph call on decoded RGB frames, and (b)
the whole per-frame analysis the server runs for an upload as the page sends it (JPEG decode
and validation, colour conversion, landmarks as an array, pose, ratios, quality, texture, and
with every fourth frame's next upload the lossless PNG patch of that frame decoded, checked
against the frame's JPEG (decoded again, as the server reloads it) and measured). Prints median, mean and
p95 milliseconds per frame for each, the ratio b/a of the medians, and the frames per second
one core sustains for (b): 1000 / its mean, as a patch makes every fourth frame dearer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from .llm.bench import main as llm_main
from .upload import PageEmulator, send_patch
from .vision.facemesh import FaceMesh
from .vision.pipeline import SessionAnalyzer
from .vision.thresholds import load_thresholds

DEFAULT_CLIP = Path(__file__).resolve().parent.parent.parent / "shared/data/clips/live/sadtalker_hdtf_katiehill.mp4"
WARMUP = 5


def read_clip(path: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` decoded frames of a video. Raises ``SystemExit`` when unreadable."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if len(frames) <= WARMUP:
        raise SystemExit(f"error: cannot read enough frames from {path}")
    return frames


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(ms)), "mean_ms": float(np.mean(ms)), "p95_ms": float(np.percentile(ms, 95))}


def run(clip: Path, limit: int) -> dict[str, Any]:
    frames = read_clip(clip, limit)
    rgbs = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    page = PageEmulator()
    bare: list[float] = []
    whole: list[float] = []
    # (a) and (b) alternate frame by frame, each on its own graph, so both see the same
    # machine: timed in two separate phases, a shared VM's drift moved the ratio by 0.2.
    with FaceMesh() as mesh_a, FaceMesh() as mesh_b:
        analyzer = SessionAnalyzer(mesh_b, load_thresholds())
        for i, (rgb, bgr) in enumerate(zip(rgbs, frames)):
            jpeg, late = page.next_upload(bgr)  # the page's work: not timed
            t0 = time.perf_counter()
            mesh_a.detect(rgb)
            t1 = time.perf_counter()
            obs = analyzer.add(jpeg, i / 25.0)
            if late is not None:
                send_patch(analyzer, late)
            t2 = time.perf_counter()
            page.answered(obs)
            if i >= WARMUP:
                bare.append((t1 - t0) * 1000)
                whole.append((t2 - t1) * 1000)
    a, b = _stats(bare), _stats(whole)
    h, w = frames[0].shape[:2]
    return {
        "clip": str(clip), "frames": len(whole), "size": f"{w}x{h}",
        "facemesh": a, "whole_frame": b,
        "ratio": b["median_ms"] / a["median_ms"],
        "fps_per_core": 1000.0 / b["mean_ms"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--llm" in argv:
        argv.remove("--llm")
        return llm_main(argv)
    parser = argparse.ArgumentParser(prog="python -m kyc_llm.bench", description=__doc__.split("\n")[0],
                                     epilog="With --llm, it times the judgment request instead "
                                            "(python -m kyc_llm.bench --llm --help).")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="a real face clip (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=200,
                        help="frames to time, at most the clip's own (default 200)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be 1 or more")
    if not args.clip.is_file():
        print(f"error: clip {args.clip} not found", file=sys.stderr)
        return 2
    r = run(args.clip, args.frames)
    print(f"clip: {r['clip']} ({r['size']}, {r['frames']} frames timed)")
    for label, key in (("(a) FaceMesh graph alone: ", "facemesh"), ("(b) whole frame analysis: ", "whole_frame")):
        f = r[key]
        print(f"{label} median {f['median_ms']:.2f} ms, mean {f['mean_ms']:.2f} ms, p95 {f['p95_ms']:.2f} ms")
    print(f"ratio b/a (medians): {r['ratio']:.2f}")
    print(f"frames per second per core (b, 1000 / mean): {r['fps_per_core']:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
