"""The upload format of the webcam page, and an emulator of it for offline measurements.

The page sends every frame as a JPEG (small, fine for landmarks, pose and colour), and every
``PATCH_EVERY``-th frame also a lossless PNG patch of ``PATCH_SIZE`` px centred on the nose
position the server returned for the previous frame: JPEG's colour subsampling erases the
fine sub-pixel stripes that give a screen away, a PNG keeps them. The evaluation and the
benchmarks upload frames through a ``PageEmulator`` (one per session) so that they measure
what the server gets.
"""

from __future__ import annotations

import base64
from typing import Sequence

import numpy as np

from .config import JPEG_QUALITY_RANGE
from .vision.intake import Patch, encode_jpeg, encode_png, load_patch
from .vision.observation import FrameObservation
from .vision.pipeline import SessionAnalyzer

JPEG_QUALITY = 80  # canvas.toBlob("image/jpeg", 0.8) on the page
PATCH_EVERY = 4  # at 8 fps: two patches a second
PATCH_SIZE = 128  # the 96 px spectral window plus room for the face to move between frames


def patch_origin(frame_shape: Sequence[int], nose: Sequence[float] | None, size: int = PATCH_SIZE) -> tuple[int, int]:
    """Top-left corner of a ``size`` square centred on ``nose`` (the frame centre when
    unknown), moved inside the frame."""
    h, w = frame_shape[:2]
    cx, cy = (w / 2, h / 2) if nose is None else (float(nose[0]), float(nose[1]))
    x = int(min(max(round(cx - size / 2), 0), max(w - size, 0)))
    y = int(min(max(round(cy - size / 2), 0), max(h - size, 0)))
    return x, y


def patch_png(bgr: np.ndarray, nose: Sequence[float] | None, size: int = PATCH_SIZE) -> tuple[bytes, int, int]:
    """The page's texture patch of a frame: PNG bytes of the ``size`` square centred on
    ``nose``, and its top-left corner (x, y) in the frame."""
    x, y = patch_origin(bgr.shape, nose, size)
    return encode_png(bgr[y:y + size, x:x + size]), x, y


def patch_json(bgr: np.ndarray, nose: Sequence[float] | None, size: int = PATCH_SIZE) -> dict[str, object]:
    """The patch as the page puts it in a JSON upload: a PNG data URL and its position."""
    png, x, y = patch_png(bgr, nose, size)
    return {"image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"), "x": x, "y": y}


class PageEmulator:
    """Turns one session's decoded frames into what the page would upload for them."""

    def __init__(self, jpeg_quality: int = JPEG_QUALITY, patch_every: int = PATCH_EVERY,
                 patch_size: int = PATCH_SIZE) -> None:
        low, high = JPEG_QUALITY_RANGE
        if not low <= jpeg_quality <= high or patch_every < 0 or patch_size < 96:
            raise ValueError(f"jpeg_quality {low}-{high}, patch_every >= 0 (0: none), patch_size >= 96")
        self.jpeg_quality, self.patch_every, self.patch_size = jpeg_quality, patch_every, patch_size
        self._index, self._nose = 0, None  # the page's frame counter and the server's last nose

    def upload(self, analyzer: SessionAnalyzer, bgr: np.ndarray, t: float) -> FrameObservation:
        """Send the session's next frame to ``analyzer`` as the page would; the server's
        answer (the nose position) places the next patch."""
        jpeg, png = self.next_upload(bgr)
        obs = analyzer.add(jpeg, t, None if png is None else load_patch(*png))
        self.answered(obs)
        return obs

    def next_upload(self, bgr: np.ndarray) -> tuple[bytes, tuple[bytes, int, int] | None]:
        """What the page sends for the session's next frame (see ``wire``). Benchmarks call
        this, time what the server does with it, then pass its answer to ``answered``."""
        upload = self.wire(bgr, self._index, self._nose)
        self._index += 1
        return upload

    def answered(self, obs: FrameObservation) -> None:
        """The server's answer for the last upload: its nose places the next patch."""
        self._nose = obs.nose or self._nose

    def encode(self, bgr: np.ndarray, index: int, nose: Sequence[float] | None) -> tuple[bytes, Patch | None]:
        """The JPEG bytes of frame ``index`` and, on every ``patch_every``-th frame, its patch."""
        jpeg, png = self.wire(bgr, index, nose)
        return jpeg, None if png is None else load_patch(*png)

    def wire(self, bgr: np.ndarray, index: int,
             nose: Sequence[float] | None) -> tuple[bytes, tuple[bytes, int, int] | None]:
        """What the page sends for frame ``index``: the JPEG bytes and, on every
        ``patch_every``-th frame, the patch's PNG bytes and top-left corner (x, y)."""
        jpeg = encode_jpeg(bgr, quality=self.jpeg_quality)
        if not self.patch_every or index % self.patch_every:
            return jpeg, None
        return jpeg, patch_png(bgr, nose, self.patch_size)
