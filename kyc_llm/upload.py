"""The upload format of the webcam page, and an emulator of it for offline measurements.

The page sends every frame as a JPEG (small, fine for landmarks, pose and colour). JPEG's
colour subsampling erases the fine sub-pixel stripes that give a screen away, a PNG keeps
them, so for every ``PATCH_EVERY``-th frame the page also sends a lossless PNG patch of
``PATCH_SIZE`` px of that same frame, centred on the nose the server found in it: the page
keeps the frame's pixels until the server's answer for it arrives, cuts the patch there and
sends it with its next request (``patches``, by the frame's ``seq``). The patch therefore
lands on the face however far the head or the phone moved between frames. The evaluation and
the benchmarks upload frames through a ``PageEmulator`` (one per session), so that they
measure what the server gets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .config import JPEG_QUALITY_RANGE
from .vision.intake import encode_jpeg, encode_png, load_patch
from .vision.observation import FrameObservation
from .vision.pipeline import SessionAnalyzer

JPEG_QUALITY = 80  # canvas.toBlob("image/jpeg", 0.8) on the page
PATCH_EVERY = 4  # at 8 fps: two patches a second, 4 in a session of 2 s
PATCH_SIZE = 128  # the 96 px spectral window with a margin: the nose is never at its edge


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


@dataclass(frozen=True)
class LatePatch:
    """A patch the page sends after its frame: frame ``index`` (its seq), that frame's JPEG
    as uploaded, the patch's PNG bytes and its top-left corner."""

    index: int
    jpeg: bytes
    png: bytes
    x: int
    y: int

    def json(self) -> dict[str, object]:
        """As the page puts it in a JSON upload's ``patches`` list."""
        return {"seq": self.index, "image": "data:image/png;base64," + base64.b64encode(self.png).decode("ascii"),
                "x": self.x, "y": self.y}


class PageEmulator:
    """Turns one session's decoded frames into what the page would upload for them."""

    def __init__(self, jpeg_quality: int = JPEG_QUALITY, patch_every: int = PATCH_EVERY,
                 patch_size: int = PATCH_SIZE) -> None:
        low, high = JPEG_QUALITY_RANGE
        if not low <= jpeg_quality <= high or patch_every < 0 or patch_size < 96:
            raise ValueError(f"jpeg_quality {low}-{high}, patch_every >= 0 (0: none), patch_size >= 96")
        self.jpeg_quality, self.patch_every, self.patch_size = jpeg_quality, patch_every, patch_size
        self._index = 0  # the page's frame counter (the next seq)
        self._waiting: tuple[int, np.ndarray, bytes] | None = None  # the frame whose answer is awaited
        self._pending: LatePatch | None = None  # cut, not sent yet

    def upload(self, analyzer: SessionAnalyzer, bgr: np.ndarray, t: float) -> FrameObservation:
        """Send the session's next frame to ``analyzer`` as the page would, with the patch the
        previous answer let the page cut; the answer for this frame may give the next one."""
        jpeg, late = self.next_upload(bgr)
        obs = analyzer.add(jpeg, t)
        if late is not None:
            send_patch(analyzer, late)
        self.answered(obs)
        return obs

    def finish(self, analyzer: SessionAnalyzer) -> None:
        """The page's last request before it completes: the patch still waiting, if any."""
        if self._pending is not None:
            send_patch(analyzer, self._pending)
            self._pending = None

    def next_upload(self, bgr: np.ndarray) -> tuple[bytes, LatePatch | None]:
        """What the page sends for the session's next frame: its JPEG bytes and the patch of
        an earlier frame, if one is due. Benchmarks call this, time what the server does with
        it, then pass its answer to ``answered``."""
        jpeg = encode_jpeg(bgr, quality=self.jpeg_quality)
        late, self._pending = self._pending, None
        self._waiting = (self._index, bgr, jpeg)
        self._index += 1
        return jpeg, late

    def answered(self, obs: FrameObservation) -> None:
        """The server's answer for the last upload: on every ``patch_every``-th frame with a
        face, the page cuts that frame's patch around the nose the answer gives."""
        if self._waiting is None:
            return
        index, bgr, jpeg = self._waiting
        self._waiting = None
        if self.patch_every and index % self.patch_every == 0 and obs.nose is not None:
            png, x, y = patch_png(bgr, obs.nose, self.patch_size)
            self._pending = LatePatch(index, jpeg, png, x, y)


def send_patch(analyzer: SessionAnalyzer, late: LatePatch) -> str:
    """What the server does with a late patch: attach it to its frame's observation."""
    return analyzer.add_patch(late.index, late.jpeg, load_patch(late.png, late.x, late.y))
