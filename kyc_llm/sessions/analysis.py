"""Per-frame analysis for the service: observations in, feedback and progress out.

The database is the source of truth for a session's observations (exact numbers plus the
landmarks), so any gunicorn worker, or a restarted server, can rebuild the session's
evidence without re-analysing a frame. Each worker keeps only FaceMesh tracking graphs, one
per session, in a ``TrackerPool``; a session's frames are analysed under its own lock because
a graph is not thread-safe.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import asdict, fields, is_dataclass
from typing import Any, Sequence

import numpy as np

from ..challenge import Step
from ..vision.geometry import NOSE_TIP
from ..vision.observation import FrameObservation
from ..vision.pipeline import frame_feedback as vision_frame_feedback
from ..vision.quality import Quality
from ..vision.texture import Texture
from ..vision.intake import Patch
from ..vision.thresholds import QualityThresholds, Thresholds

_LANDMARK_SHAPE = (478, 3)


class FrameAnalyzers:
    """Video-mode FaceMesh graphs per session, recycled between sessions.

    Like ``vision.facemesh.TrackerPool`` (one tracking graph per session, least recently used
    evicted beyond ``size``) but a finished session's graph is reset and kept for the next
    session instead of closed: building a graph and its first frame cost 25-40 ms, which a
    worker paid for every session. The reset is one blank frame, after which the graph's
    landmarks equal a fresh graph's bit for bit (tracking state is lost on a frame without
    a face). A graph is checked out while it processes, so eviction never touches one in use.
    """

    def __init__(self, size: int, thresholds: Thresholds, idle: int = 8) -> None:
        self._size = size
        self._thresholds = thresholds
        self._max_idle = idle
        self._active: OrderedDict[str, Any] = OrderedDict()
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self._locks = [threading.Lock() for _ in range(64)]

    def analyze(self, session_id: str, frame: np.ndarray, t: float, patch: Patch | None = None) -> FrameObservation:
        """Observe one decoded frame (at its uploaded size) of a session at session time ``t``,
        with its lossless texture patch if the page sent one.

        The per-frame path is the vision layer's own ``SessionAnalyzer.add`` (the one the
        evaluation measures), run with this session's pooled graph. Raises ``FrameError`` for
        a patch outside its frame.
        """
        from ..vision.pipeline import SessionAnalyzer

        with self._locks[hash(session_id) % len(self._locks)]:  # one frame of a session at a time
            mesh = self._checkout(session_id)
            try:
                return SessionAnalyzer(mesh, self._thresholds).add(frame, t, patch)
            finally:
                self._checkin(session_id, mesh)

    def _checkout(self, session_id: str) -> Any:
        with self._guard:
            mesh = self._active.pop(session_id, None)
            if mesh is None and self._idle:
                mesh = self._idle.pop()
        if mesh is None:
            from ..vision.facemesh import FaceMesh  # mediapipe loads here, not at import

            mesh = FaceMesh("video")
        return mesh

    def _checkin(self, session_id: str, mesh: Any) -> None:
        with self._guard:
            self._active[session_id] = mesh
            evicted = []
            while len(self._active) > self._size:
                evicted.append(self._active.popitem(last=False)[1])
        for old in evicted:
            self._recycle(old)

    def _recycle(self, mesh: Any) -> None:
        mesh.process(_BLANK)  # forget the last face: the next session starts with a detection
        with self._guard:
            if len(self._idle) < self._max_idle:
                self._idle.append(mesh)
                return
        mesh.close()

    def release(self, session_id: str) -> None:
        """The session is over: its graph goes back to the idle list (or is closed)."""
        with self._guard:
            mesh = self._active.pop(session_id, None)
        if mesh is not None:
            self._recycle(mesh)

    def close(self) -> None:
        with self._guard:
            meshes = list(self._active.values()) + self._idle
            self._active, self._idle = OrderedDict(), []
        for mesh in meshes:
            mesh.close()


_BLANK = np.zeros((64, 64, 3), np.uint8)


def observation_record(obs: FrameObservation) -> tuple[dict[str, Any], bytes | None]:
    """An observation as (exact JSON-ready numbers, compressed float32 landmarks or None).

    The dict has the keys of ``FrameObservation.summary()`` but unrounded values, so the
    evidence rebuilt from it equals the evidence of the live observations.
    """
    out = obs.summary()
    for f in fields(obs):
        if f.name == "landmarks":
            continue
        value = getattr(obs, f.name)
        if value is None:
            continue
        if is_dataclass(value):
            out[f.name] = {k: v if isinstance(v, (bool, int)) else float(v) for k, v in asdict(value).items()}
        elif isinstance(value, tuple):
            out[f.name] = [float(v) for v in value]
        else:
            out[f.name] = value if isinstance(value, (int, str)) else float(value)
    blob = None
    if obs.landmarks is not None:
        blob = zlib.compress(np.ascontiguousarray(obs.landmarks, dtype=np.float32).tobytes(), 1)
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
        kw["landmarks"] = np.frombuffer(zlib.decompress(landmarks), np.float32).reshape(_LANDMARK_SHAPE).copy()
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

    The vision layer's ``frame_feedback`` (face found, one face, centred, its list of issues)
    plus one boolean per issue and the single ``hint`` code and text the page shows.
    """
    fb = vision_frame_feedback(obs, limits)
    issues = list(fb.get("issues", ()))
    out = dict(fb)
    for name in ("too_dark", "too_bright", "too_far", "blurred"):
        out[name] = name in issues
    hint = next((code for code in HINTS if code in issues), "ok")
    # Where the page centres its next lossless texture patch (uploaded-frame pixels).
    nose = None
    if obs.landmarks is not None:
        nose = [round(float(v) / obs.scale, 1) for v in obs.landmarks[NOSE_TIP, :2]]
    out["nose"] = nose
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
