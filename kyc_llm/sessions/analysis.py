"""Per-frame analysis for the service: observations in, feedback and progress out.

The database is the source of truth for a session's observations (exact numbers plus the
landmarks), so any gunicorn worker, or a restarted server, can rebuild the session's
evidence without re-analysing a frame. Analysing a frame needs nothing of the session's
earlier frames (FaceMesh runs per frame), so any worker can take any upload; each worker
keeps only a ``GraphPool`` of FaceMesh graphs for its threads.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import fields, is_dataclass
from typing import Any, Sequence

import numpy as np

from ..challenge import Step
from ..vision.observation import FrameObservation
from ..vision.pipeline import SessionAnalyzer, frame_issues
from ..vision.quality import Quality
from ..vision.texture import Texture
from ..vision.thresholds import QualityThresholds, Thresholds

_LANDMARK_SHAPE = (478, 3)
_LANDMARK_BYTES = 478 * 3 * 4


class FrameAnalyzers:
    """The per-frame path of the service: a frame through the vision layer's
    ``SessionAnalyzer.add`` (the path the evaluation measures) on a graph of this worker's pool."""

    def __init__(self, thresholds: Thresholds) -> None:
        self._thresholds = thresholds
        self._pool: Any = None
        self._guard = threading.Lock()

    def _graphs(self) -> Any:
        with self._guard:  # built on first use: after gunicorn forks, never at import
            if self._pool is None:
                from ..vision.facemesh import GraphPool  # lazily: mediapipe loads here, in the worker

                self._pool = GraphPool()
            return self._pool

    def analyze(self, frame: np.ndarray, t: float) -> FrameObservation:
        """Observe one decoded frame (at its uploaded size) at session time ``t``."""
        with self._graphs().lease() as mesh:
            return SessionAnalyzer(mesh, self._thresholds).add(frame, t)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def observation_record(obs: FrameObservation) -> tuple[dict[str, Any], bytes | None]:
    """An observation as (exact JSON-ready numbers, float32 landmark bytes or None).

    The dict has the keys of ``FrameObservation.summary()`` but unrounded values, so the
    evidence rebuilt from it equals the evidence of the live observations (and ``scale``). The
    landmarks are stored raw: zlib saved 9% of their 5.7 KB for 0.05 ms per frame.
    """
    out: dict[str, Any] = {}
    for f in fields(obs):
        if f.name == "landmarks":
            continue
        value = getattr(obs, f.name)
        if value is None:
            continue
        if is_dataclass(value):
            out[f.name] = {k: v if isinstance(v, (bool, int)) else float(v) for k, v in vars(value).items()}
        elif isinstance(value, tuple):
            out[f.name] = [float(v) for v in value]
        else:
            out[f.name] = value if isinstance(value, (int, str)) else float(value)
    blob = None
    if obs.landmarks is not None:
        blob = np.ascontiguousarray(obs.landmarks, dtype=np.float32).tobytes()
    return out, blob


def observation_from_record(summary: dict[str, Any], landmarks: bytes | None) -> FrameObservation:
    """Rebuild the observation stored by ``observation_record``."""
    names = {f.name for f in fields(FrameObservation)}
    kw: dict[str, Any] = {k: v for k, v in summary.items() if k in names}
    if isinstance(kw.get("quality"), dict):
        kw["quality"] = Quality(**kw["quality"])
    if isinstance(kw.get("texture"), dict):
        kw["texture"] = Texture(**kw["texture"])
    if isinstance(kw.get("box"), list):
        kw["box"] = tuple(kw["box"])
    if landmarks is not None:
        if len(landmarks) != _LANDMARK_BYTES:  # written zlib-compressed before they were raw
            landmarks = zlib.decompress(landmarks)
        kw["landmarks"] = np.frombuffer(landmarks, np.float32).reshape(_LANDMARK_SHAPE).copy()
    else:  # frames purged: the numbers remain, the landmarks do not
        kw["landmarks"] = None
    return FrameObservation(**kw)


def rounded_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Numbers rounded for display (operator plot and API), as ``FrameObservation.summary``."""
    def r(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: r(x) for k, x in v.items()}
        if isinstance(v, list):
            return [r(x) for x in v]
        return v
    return r(summary)


# What the page shows, by priority: the first problem found is the one the user hears about.
HINTS = {
    "no_face": "Place your face inside the oval",
    "multiple_faces": "Only one person in view, please",
    "too_dark": "More light, please",
    "too_bright": "Too bright: avoid light behind you",
    "too_far": "Move a little closer",
    "not_centred": "Centre your face in the oval",
    "blurred": "Hold still",
    "ok": "Good",
}


def frame_feedback(obs: FrameObservation, limits: QualityThresholds) -> dict[str, Any]:
    """The page's live guidance for one frame.

    The vision layer's ``frame_issues`` (face found, one face, centred, its list of issues)
    plus one boolean per issue and the single ``hint`` code and text the page shows.
    """
    fb = frame_issues(obs, limits)
    issues = list(fb.get("issues", ()))
    out = dict(fb)
    for name in ("too_dark", "too_bright", "too_far", "blurred"):
        out[name] = name in issues
    hint = next((code for code in HINTS if code in issues), "ok")
    # Where the page centres this frame's lossless texture patch (uploaded-frame pixels).
    out["nose"] = None if obs.nose is None else [round(v, 1) for v in obs.nose]
    out["ok"] = hint == "ok"
    out["hint"] = hint
    out["message"] = HINTS[hint]
    return out


def progress(steps: Sequence[Step], t: float, capture_s: float) -> dict[str, Any]:
    """Where session time ``t`` falls in the challenge: lead-in, a step (with its share), or done."""
    total = len(steps)
    if t >= capture_s:
        return {"phase": "done", "step": total, "steps": total, "fraction": 1.0, "remaining_s": 0.0}
    if t < steps[0].start_s:
        return {"phase": "lead_in", "step": -1, "steps": total, "fraction": 0.0,
                "remaining_s": round(steps[0].start_s - t, 2)}
    for i, s in enumerate(steps):
        if t < s.end_s:
            if t < s.start_s:  # a gap between windows counts as the start of the next
                return {"phase": "action", "step": i, "action": s.action, "steps": total, "fraction": 0.0,
                        "remaining_s": round(s.end_s - s.start_s, 2)}
            frac = (t - s.start_s) / (s.end_s - s.start_s)
            return {"phase": "action", "step": i, "action": s.action, "steps": total,
                    "fraction": round(frac, 3), "remaining_s": round(s.end_s - t, 2)}
    return {"phase": "tail", "step": total, "steps": total, "fraction": 1.0,
            "remaining_s": round(capture_s - t, 2)}
