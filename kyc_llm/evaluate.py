"""Evaluation: run labelled sessions through the service's pipeline, print ISO/IEC 30107-3 figures.

    python -m kyc_llm.evaluate PATH [PATH ...] [--json FILE] [--jobs N] [--thresholds FILE]
                               [--fps N] [--by-source]

Each PATH is a session spec or a folder of them (format: ../shared/data/README.md). Frames
are sampled at the spec's fps between start_s and end_s, encoded as the webcam page uploads
them (JPEG, and a lossless texture patch every few frames: ``kyc_llm.upload``), measured by
``SessionAnalyzer`` and decided with their timestamps and the challenge by the service's own
``Workflow.evaluate`` as it runs without an LLM: the offline judge (``llm_offline``) and the
policy of ``Config.from_env()``, so ``KYC_REQUIRE_LLM``, ``KYC_MIN_JUDGE_CONFIDENCE`` and
``KYC_VIRTUAL_CAMERA`` apply as in the service (a bad ``KYC_*`` variable is refused, exit 2).
``--raw`` feeds the decoded frames instead. A session whose spec or video cannot be read is
reported as an error and left out of the metrics; the run goes on.

``--by-source`` prints the figures per source repository (the ``source_repo`` column of the
``MANIFEST.tsv`` beside the clips) and per person (the clip a session was cut from, or the
photo or clip a synthetic attack was rendered from), so a rule that holds for one source only
shows. ``--fps`` samples every session at another rate than its spec's.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import JPEG_QUALITY_RANGE, Config
from .decision import Policy
from .errors import KycError
from .llm.providers.mock import MockProvider
from .llm.settings import LLMSettings
from .prompts import Templates, load_templates
from .sessions.workflow import Workflow
from .sessionspec import ATTACKS, SessionSpec, find_specs, load_spec, sample_frames
from .upload import JPEG_QUALITY, PageEmulator
from .vision.facemesh import FaceMesh
from .vision.pipeline import SessionAnalyzer
from .vision.thresholds import Thresholds, load_thresholds


@dataclass
class SessionResult:
    id: str
    truth: str | None
    attack: str | None
    decision: str  # pass | fail | review | error
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    evidence: dict[str, Any] | None = None
    source: str = "unknown"  # the clip's source repository (MANIFEST.tsv)
    person: str = "unknown"  # the clip, or the media a synthetic attack was rendered from
    patches: int = 0  # usable lossless texture patches (the screen check needs a few)

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "truth": self.truth, "attack": self.attack,
                               "decision": self.decision, "reasons": self.reasons,
                               "source": self.source, "person": self.person, "patches": self.patches}
        if self.evidence:  # the features behind the decision, for calibration
            out["signals"] = {k: s["features"] | {"score": round(s["score"], 3)}
                              for k, s in self.evidence["signals"].items() if s["available"]}
            out["actions"] = [{k: a[k] for k in ("action", "verdict", "baseline_value", "peak_value", "onset_t")}
                              for a in self.evidence["actions"]]
        if self.error:
            out["error"] = self.error
        return out


@functools.lru_cache(maxsize=4)
def _templates(directory: Path) -> Templates:
    return load_templates(directory)


def offline_workflow(config: Config, thresholds: Thresholds) -> Workflow:
    """The service's ``Workflow`` for ``config`` with the judge the service has when no LLM is
    configured (the offline mock: nothing is sent). Raises ``ConfigError`` for bad LLM
    settings and ``TemplateError`` for a broken prompt template, as the service would."""
    settings = LLMSettings.from_env(config.llm_env)
    return Workflow(config, thresholds, _templates(settings.prompts_dir),
                    provider=MockProvider(settings, offline=True))


def policy_line(config: Config) -> str:
    """One line naming the decision policy the evaluation applies."""
    policy = Policy.from_config(config)
    values = ", ".join(f"{f.name}={getattr(policy, f.name)}" for f in dataclasses.fields(policy))
    return f"policy: {values} (the service's, from KYC_*), the LLM judge offline"


def run_session(path: Path, thresholds: Thresholds, jpeg_quality: int | None = JPEG_QUALITY,
                fps: float | None = None, config: Config | None = None) -> SessionResult:
    """Evaluate one spec file; every failure to read it becomes an ``error`` result.

    With ``jpeg_quality`` the frames are uploaded as the webcam page would send them (JPEG
    plus lossless patches); with None the decoded video frames are fed as they are. ``fps``
    samples the session at that rate instead of the spec's. ``config`` sets the policy the
    service's workflow decides by (default: the default ``Config``'s).
    """
    started = time.perf_counter()
    workflow = offline_workflow(config or Config(), thresholds)
    try:
        spec = load_spec(path)
    except KycError as exc:
        return SessionResult(path.stem, None, None, "error", error=exc.message)
    except Exception as exc:  # e.g. an unreadable folder entry: reported, never fatal
        return SessionResult(path.stem, None, None, "error", error=f"{type(exc).__name__}: {exc}")
    if fps is not None:
        spec = dataclasses.replace(spec, fps=fps)
    source, person = clip_origin(spec)
    try:
        with FaceMesh() as mesh:
            analyzer = SessionAnalyzer(mesh, thresholds)
            page = PageEmulator(jpeg_quality) if jpeg_quality else None
            for t, frame in sample_frames(spec):
                if page is None:
                    analyzer.add(frame, t)
                else:
                    page.upload(analyzer, frame, t)
            if page is not None:
                page.finish(analyzer)
            if not analyzer.observations:
                raise KycError(f"{spec.id}: no frames could be read from {spec.video}")
        # The frames are not kept: the offline judge asks for none.
        outcome = workflow.evaluate(spec.challenge, analyzer.observations, ())
    except KycError as exc:
        return SessionResult(spec.id, spec.truth, spec.attack, "error", error=exc.message,
                             source=source, person=person)
    except Exception as exc:  # one broken session never ends the run: report it and go on
        return SessionResult(spec.id, spec.truth, spec.attack, "error", error=f"{type(exc).__name__}: {exc}",
                             source=source, person=person)
    patches = int(outcome.evidence["signals"]["screen"]["features"]["lossless_patches"])  # as the check saw them
    return SessionResult(spec.id, spec.truth, spec.attack, outcome.decision, outcome.reasons,
                         seconds=time.perf_counter() - started, evidence=outcome.evidence,
                         source=source, person=person, patches=patches)


@functools.lru_cache(maxsize=8)
def _manifest(path: Path) -> dict[Path, dict[str, str]]:
    """The rows of one MANIFEST.tsv, by the clip's resolved path."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return {(path.parent / r["relative_path"]).resolve(): r for r in rows if r.get("relative_path")}


def clip_origin(spec: SessionSpec) -> tuple[str, str]:
    """(source repository, person) of a session's clip, from the MANIFEST.tsv found in one of
    the clip's parent folders; ("unknown", the clip's name) without one."""
    for folder in spec.video.parents:
        manifest = folder / "MANIFEST.tsv"
        if manifest.is_file():
            row = _manifest(manifest).get(spec.video)
            if row is None:
                break
            if row["source_repo"].startswith("(synthetic"):
                # Rendered here, from another clip or photo (the person is the one in it) or none.
                source_media = row["path_in_repo"]
                return "synthetic", Path(source_media).stem if source_media not in ("", "-") else spec.video.stem
            return row["source_repo"], spec.video.stem
    return "unknown", spec.video.stem


def metrics(results: Sequence[SessionResult]) -> dict[str, Any]:
    """BPCER, APCER per attack type, the worst APCER, review rate and counts (fractions 0-1)."""
    done = [r for r in results if r.decision != "error"]
    live = [r for r in done if r.truth == "live"]
    apcer: dict[str, float] = {}
    counts: dict[str, int] = {"live": len(live)}
    for attack in ATTACKS:
        of_type = [r for r in done if r.attack == attack]
        if of_type:
            apcer[attack] = sum(r.decision == "pass" for r in of_type) / len(of_type)
            counts[attack] = len(of_type)
    return {
        "bpcer": (sum(r.decision != "pass" for r in live) / len(live)) if live else None,
        "apcer": apcer,
        "apcer_max": max(apcer.values()) if apcer else None,
        "review_rate": (sum(r.decision == "review" for r in done) / len(done)) if done else None,
        "n": len(done),
        "errors": len(results) - len(done),
        "counts": counts,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _run_one(args: tuple[Path, str | None, int | None, float | None, Config]) -> SessionResult:
    path, thresholds_path, jpeg_quality, fps, config = args
    return run_session(path, load_thresholds(thresholds_path), jpeg_quality, fps, config)


def action_rates(results: Sequence[SessionResult]) -> dict[str, tuple[int, int]]:
    """Per action: (steps judged performed, steps) over the live sessions."""
    rates: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        if r.truth != "live" or not r.evidence:
            continue
        for a in r.evidence["actions"]:
            rates[a["action"]][0] += a["verdict"] == "performed"
            rates[a["action"]][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(rates.items())}


def patch_counts(results: Sequence[SessionResult]) -> tuple[int, float] | None:
    """(min, median) usable lossless patches over the sessions with a face."""
    counts = sorted(r.patches for r in results if r.evidence and r.evidence["face_frames"])
    if not counts:
        return None
    mid = len(counts) // 2
    return counts[0], float(counts[mid] if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2)


def _group_line(group: Sequence[SessionResult]) -> str:
    m = metrics(group)
    parts = []
    if m["counts"].get("live"):
        parts.append(f"BPCER {_pct(m['bpcer'])} of {m['counts']['live']}")
    parts += [f"APCER {a} {_pct(v)} of {m['counts'][a]}" for a, v in m["apcer"].items()]
    parts.append(f"review {_pct(m['review_rate'])}")
    return ", ".join(parts)


def print_by_source(results: Sequence[SessionResult]) -> None:
    for title, key in (("by source", "source"), ("by person", "person")):
        groups: dict[str, list[SessionResult]] = defaultdict(list)
        for r in results:
            if r.decision != "error":
                groups[getattr(r, key)].append(r)
        print(f"{title}:")
        width = max((len(name) for name in groups), default=0)
        for name in sorted(groups, key=str.casefold):
            print(f"  {name:{width}s}  {_group_line(groups[name])}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kyc_llm.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="session spec files or folders of them")
    parser.add_argument("--json", metavar="FILE", help="write sessions and metrics as JSON")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--thresholds", metavar="FILE",
                        help="thresholds TOML (default: KYC_THRESHOLDS_PATH's, as in the service, else the "
                             "calibrated one)")
    parser.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, metavar="Q",
                        help="upload frames as the page does: JPEG at quality Q plus lossless patches "
                             "(default %(default)s, the page's)")
    parser.add_argument("--raw", action="store_true",
                        help="feed the decoded video frames as they are, with no upload encoding")
    parser.add_argument("--fps", type=float, metavar="N",
                        help="sample every session at N frames a second instead of its spec's rate")
    parser.add_argument("--by-source", action="store_true",
                        help="also print the figures per source repository and per person")
    args = parser.parse_args(argv)
    if args.fps is not None and not 1 <= args.fps <= 30:
        print("error: --fps must be 1-30", file=sys.stderr)
        return 2
    low, high = JPEG_QUALITY_RANGE
    if not low <= args.jpeg_quality <= high:  # outside it the patch check flags honest uploads
        print(f"error: --jpeg-quality must be {low}-{high}, the range the thresholds are calibrated for",
              file=sys.stderr)
        return 2
    try:
        config = Config.from_env()  # the service's settings: refused as the service refuses them
        thresholds_path = args.thresholds or config.thresholds_path
        # Refuse a bad thresholds file, LLM setting or prompt template before any work.
        offline_workflow(config, load_thresholds(thresholds_path))
    except KycError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    specs = find_specs(args.paths)
    if not specs:
        print("error: no session specs found", file=sys.stderr)
        return 2
    print(policy_line(config))
    started = time.perf_counter()
    jobs = [(p, thresholds_path, None if args.raw else args.jpeg_quality, args.fps, config) for p in specs]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_run_one, jobs))
    else:
        results = [_run_one(j) for j in jobs]
    for r in results:
        label = r.truth if r.truth != "attack" else f"attack/{r.attack}"
        detail = r.error if r.error else ",".join(r.reasons) or "-"
        print(f"{r.id:50s} {str(label):22s} {r.decision:7s} {detail}")
    m = metrics(results)
    print()
    print(f"sessions: {m['n']} evaluated, {m['errors']} errors, in {time.perf_counter() - started:.1f} s")
    print(f"BPCER: {_pct(m['bpcer'])} of {m['counts'].get('live', 0)} live")
    for attack, value in m["apcer"].items():
        print(f"APCER {attack}: {_pct(value)} of {m['counts'][attack]}")
    print(f"APCER worst: {_pct(m['apcer_max'])}")
    print(f"review rate: {_pct(m['review_rate'])}")
    rates = action_rates(results)
    if rates:
        print("live actions performed: " + ", ".join(f"{a} {k}/{n}" for a, (k, n) in rates.items()))
    counts = patch_counts(results)
    if counts and not args.raw:
        print(f"usable lossless patches per session with a face: min {counts[0]}, median {counts[1]:g}")
    if args.by_source:
        print_by_source(results)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"policy": dataclasses.asdict(Policy.from_config(config)), "sessions": [r.row() for r in results],
             "metrics": m,
             "live_actions_performed": {a: {"performed": k, "steps": n} for a, (k, n) in rates.items()}},
            indent=2), encoding="utf-8")
    return 1 if m["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
