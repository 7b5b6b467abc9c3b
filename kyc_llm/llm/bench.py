"""Benchmark of the LLM judgment request on the shared sessions.

    python -m kyc_llm.bench --llm [--sessions DIR] [--delay-ms 200] [--limit N] [--json FILE]

For every session: the frames are sampled at the session's rate and fed to the vision
pipeline as the page uploads them (JPEG plus lossless patches: ``kyc_llm.upload``); then the judgment request is built at the default budget (3,000
image tokens, at most 8 images) and answered by the mock provider after a fixed delay.
Prints the images and estimated input tokens per request (median and max) and the time
from the last frame to the judgment minus the delay (median and max). Settings are the
defaults, not the environment's, so figures compare across machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SpecError
from ..prompts import Templates, load_templates
from ..sessionspec import SessionSpec, find_specs, load_spec, sample_frames
from ..upload import PageEmulator
from ..vision.facemesh import FaceMesh
from ..vision.pipeline import SessionAnalyzer
from ..vision.thresholds import Thresholds, load_thresholds
from .judge import judge_movements
from .providers import MockProvider
from .schemas import SPOOF_KINDS
from .settings import LLMSettings
from .usage import image_tokens

DEFAULT_SESSIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "sessions"


def _answer(spec: SessionSpec) -> str:
    """A schema-valid answer that commits to nothing: the validation path, not a verdict."""
    return json.dumps({
        "actions": [
            {"action": s.action, "performed": None, "in_window": None, "in_order": None,
             "confidence": 0.5, "frame": None, "note": "benchmark"}
            for s in spec.challenge
        ],
        "spoof_signs": {k: {"present": False, "note": ""} for k in SPOOF_KINDS},
        "confidence": 0.5,
    })


def run_session(spec: SessionSpec, settings: LLMSettings, templates: Templates, delay_s: float,
                thresholds: Thresholds) -> dict[str, Any]:
    """Return one session's figures. Raises ``SpecError`` when its video cannot be read."""
    frames = list(sample_frames(spec))
    if not frames:
        raise SpecError(f"{spec.id}: no frames")
    provider = MockProvider(settings, delay_s=delay_s).enqueue(_answer(spec))
    page = PageEmulator()  # frames reach the pipeline as the page uploads them
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, thresholds)
        for t, bgr in frames[:-1]:
            page.upload(analyzer, bgr, t)
        started = time.perf_counter()
        page.upload(analyzer, frames[-1][1], frames[-1][0])
        page.finish(analyzer)
        evidence = analyzer.evidence(spec.challenge)
        judged = time.perf_counter()
        judgment = judge_movements(provider, spec.challenge, frames, evidence, settings, templates)
        done = time.perf_counter()
    usage = judgment.usage[0]
    return {
        "id": spec.id,
        "outcome": judgment.outcome,
        "images": len(usage.images),
        "image_tokens": sum(image_tokens(w, h) for w, h in usage.images),
        "input_tokens_estimate": usage.input_tokens,
        "sizes": [list(s) for s in usage.images],
        "last_frame_to_judgment_ms": (done - started - delay_s) * 1000,
        "judge_ms": (done - judged - delay_s) * 1000,
    }


def _line(label: str, values: list[float], unit: str = "", digits: int = 0) -> str:
    return (f"  {label:<46} median {np.median(values):8.{digits}f}{unit}"
            f"   max {max(values):8.{digits}f}{unit}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 2 when no session could be read."""
    parser = argparse.ArgumentParser(prog="python -m kyc_llm.bench --llm",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=Path, default=DEFAULT_SESSIONS,
                        help="folder of session specs (default: %(default)s)")
    parser.add_argument("--delay-ms", type=float, default=200.0,
                        help="the mock provider's answer delay (default 200)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N sessions")
    parser.add_argument("--json", metavar="FILE", help="write per-session figures as JSON")
    # Accepted so kyc_llm.bench can forward its argv whole.
    parser.add_argument("--llm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.sessions.is_dir():
        print(f"error: sessions folder {args.sessions} not found", file=sys.stderr)
        return 2

    settings = LLMSettings.from_env({})
    templates = load_templates(settings.prompts_dir)
    thresholds = load_thresholds()
    paths = find_specs([args.sessions])[: args.limit or None]
    rows, skipped = [], []
    for path in paths:
        try:
            rows.append(run_session(load_spec(path), settings, templates,
                                    args.delay_ms / 1000, thresholds))
        except SpecError as exc:
            skipped.append(exc.message)
    if not rows:
        print("error: no session could be read: " + "; ".join(skipped[:3]), file=sys.stderr)
        return 2

    outcomes = {o: sum(r["outcome"] == o for r in rows) for o in sorted({r["outcome"] for r in rows})}
    print(f"LLM judgment benchmark: {len(rows)} sessions from {args.sessions}"
          + (f" ({len(skipped)} skipped)" if skipped else ""))
    print(f"request at the default budget ({settings.image_token_budget} image tokens, "
          f"at most {settings.max_images} images):")
    print(_line("images per request", [r["images"] for r in rows]))
    print(_line("image tokens (width*height/750)", [r["image_tokens"] for r in rows]))
    print(_line("estimated input tokens (images + text/4)",
                [r["input_tokens_estimate"] for r in rows]))
    print(f"mock provider answering after {args.delay_ms:g} ms:")
    print(_line("last frame -> judgment, minus the delay",
                [r["last_frame_to_judgment_ms"] for r in rows], " ms", 1))
    print(_line("of which the judge (keyframes, prompt, checks)",
                [r["judge_ms"] for r in rows], " ms", 1))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
