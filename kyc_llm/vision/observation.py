"""Per-frame observation: everything the vision layer measures on one frame.

``observe`` measures a decoded frame; ``pipeline.SessionAnalyzer.add`` is the whole per-frame
path (decode included) that the server, the evaluation and the benchmark run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import geometry, quality, texture
from .intake import Patch


@dataclass
class FrameObservation:
    """What one frame shows. Face fields are None when no face was found."""

    t: float  # session time, seconds
    width: int
    height: int
    n_faces: int
    frame_brightness: float
    scale: float = 1.0  # analysed size over uploaded size (frames over 960 px are downscaled)
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (478, 3) pixels
    box: tuple[float, float, float, float] | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    ear_left: float | None = None
    ear_right: float | None = None
    mouth_open: float | None = None
    smile: float | None = None
    corner_lift: float | None = None
    face_height: float | None = None
    quality: quality.Quality | None = None
    texture: texture.Texture | None = None
    patch_mismatch: bool = False  # a lossless patch came with the frame and did not match it

    @property
    def has_face(self) -> bool:
        return self.landmarks is not None

    @property
    def nose(self) -> tuple[float, float] | None:
        """The nose tip in the uploaded frame's pixels (where the page centres its next
        texture patch), or None without a face."""
        if self.landmarks is None:
            return None
        x, y = self.landmarks[geometry.NOSE_TIP, :2] / self.scale
        return float(x), float(y)

    @property
    def ear(self) -> float | None:
        """Mean eye aspect ratio of both eyes."""
        if self.ear_left is None or self.ear_right is None:
            return None
        return (self.ear_left + self.ear_right) / 2

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no landmarks) for storage, plots and the API."""
        out: dict[str, Any] = {
            "t": round(self.t, 3), "n_faces": self.n_faces, "width": self.width, "height": self.height,
            "frame_brightness": round(self.frame_brightness, 1),
        }
        if self.has_face:
            for name in ("yaw", "pitch", "roll", "ear_left", "ear_right", "mouth_open", "smile",
                         "corner_lift", "face_height"):
                out[name] = round(float(getattr(self, name)), 4)
            out["box"] = [round(v, 1) for v in self.box]
            out["quality"] = {k: round(v, 4) for k, v in vars(self.quality).items()}
            out["texture"] = {k: v if isinstance(v, bool) else round(v, 4) for k, v in vars(self.texture).items()}
        return out


def _largest(faces: list[np.ndarray]) -> np.ndarray:
    return max(faces, key=lambda f: geometry.face_box(f)[2])


def observe(bgr: np.ndarray, t: float, faces: list[np.ndarray], patch: Patch | None = None) -> FrameObservation:
    """Measure one frame given the faces FaceMesh found in it (and its lossless patch, if any:
    the service attaches patches after the frame, ``pipeline.attach_patch``)."""
    h, w = bgr.shape[:2]
    obs = FrameObservation(t=t, width=w, height=h, n_faces=len(faces),
                           frame_brightness=quality.frame_brightness(bgr))
    if not faces:
        return obs
    lm = _largest(faces)
    box = geometry.face_box(lm)
    pose = geometry.head_pose(lm)
    crop = quality.face_crop(bgr, box)
    nose = (float(lm[geometry.NOSE_TIP, 0]), float(lm[geometry.NOSE_TIP, 1]))
    obs.landmarks = lm
    obs.box = box
    obs.yaw, obs.pitch, obs.roll = pose.yaw, pose.pitch, pose.roll
    obs.ear_left = geometry.eye_aspect_ratio(lm, geometry.L_EYE_EAR)
    obs.ear_right = geometry.eye_aspect_ratio(lm, geometry.R_EYE_EAR)
    obs.mouth_open = geometry.mouth_open_ratio(lm)
    obs.smile = geometry.smile_ratio(lm)
    obs.corner_lift = geometry.mouth_corner_lift(lm)
    obs.face_height = geometry.face_height_ratio(lm)
    obs.quality = quality.measure(bgr.shape, crop, box, lm)
    obs.texture = texture.measure(bgr, crop, box, nose, patch)
    return obs
