"""The upload format of the webcam page, and an emulator of it for offline measurements.

The page sends every frame as a JPEG (small, fine for landmarks, pose and colour), and every
``PATCH_EVERY``-th frame also a lossless PNG patch of ``PATCH_SIZE`` px centred on the nose
position the server returned for the previous frame: JPEG's colour subsampling erases the
fine sub-pixel stripes that give a screen away, a PNG keeps them. The evaluation and the
benchmarks feed frames through ``PageEmulator`` so that they measure what the server gets.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .vision.intake import Patch, load_patch

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


class PageEmulator:
    """Turns decoded frames into what the page would upload for them."""

    def __init__(self, jpeg_quality: int = JPEG_QUALITY, patch_every: int = PATCH_EVERY,
                 patch_size: int = PATCH_SIZE) -> None:
        if not 1 <= jpeg_quality <= 100 or patch_every < 0 or patch_size < 96:
            raise ValueError("jpeg_quality 1-100, patch_every >= 0 (0: none), patch_size >= 96")
        self.jpeg_quality, self.patch_every, self.patch_size = jpeg_quality, patch_every, patch_size

    def encode(self, bgr: np.ndarray, index: int, nose: Sequence[float] | None) -> tuple[bytes, Patch | None]:
        """The JPEG bytes of frame ``index`` and, on every ``patch_every``-th frame, its patch."""
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError("frame could not be encoded as JPEG")
        if not self.patch_every or index % self.patch_every:
            return jpeg.tobytes(), None
        x, y = patch_origin(bgr.shape, nose, self.patch_size)
        crop = bgr[y:y + self.patch_size, x:x + self.patch_size]
        ok, png = cv2.imencode(".png", crop)
        if not ok:
            raise ValueError("patch could not be encoded as PNG")
        return jpeg.tobytes(), load_patch(png.tobytes(), x, y)
