"""Image-quality measures of a frame and its face, used as gates and as user guidance."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Quality:
    brightness: float  # mean grey level of the face, 0-255
    contrast: float  # grey standard deviation of the face
    sharpness: float  # variance of the Laplacian of the face at 128 px
    face_size: float  # face box width over frame width
    centre_offset: float  # face centre distance from frame centre, in frame half-widths
    outside_fraction: float  # share of landmarks outside the frame (occlusion/cropping hint)


def face_crop(bgr: np.ndarray, box: tuple[float, float, float, float], size: int = 128) -> np.ndarray:
    """The face box (clipped to the frame) in grey, resized to ``size`` x ``size``."""
    x, y, w, h = box
    H, W = bgr.shape[:2]
    x0, y0 = max(int(x), 0), max(int(y), 0)
    x1, y1 = min(int(x + w), W), min(int(y + h), H)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return np.zeros((size, size), np.uint8)
    # Box-filter by a whole factor first (OpenCV's fast path, and it prevents aliasing),
    # then a bilinear step to the exact size: a tenth of the cost of one fractional INTER_AREA.
    k = max(1, min(x1 - x0, y1 - y0) // size)
    w, h = (x1 - x0) // k * k, (y1 - y0) // k * k
    # Only the face is converted to grey: the rest of the frame is never needed in grey.
    face = cv2.cvtColor(bgr[y0:y0 + h, x0:x0 + w], cv2.COLOR_BGR2GRAY)
    if k > 1:
        face = cv2.resize(face, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)


def measure(shape: tuple[int, ...], crop128: np.ndarray, box: tuple[float, float, float, float],
            landmarks: np.ndarray) -> Quality:
    H, W = shape[:2]
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    centre_offset = float(np.hypot((cx - W / 2) / (W / 2), (cy - H / 2) / (H / 2)))
    outside = (landmarks[:, 0] < 0) | (landmarks[:, 0] >= W) | (landmarks[:, 1] < 0) | (landmarks[:, 1] >= H)
    mean, std = cv2.meanStdDev(crop128)
    lap_std = cv2.meanStdDev(cv2.Laplacian(crop128, cv2.CV_32F))[1]
    return Quality(
        brightness=float(mean[0, 0]),
        contrast=float(std[0, 0]),
        sharpness=float(lap_std[0, 0]) ** 2,
        face_size=float(w / W),
        centre_offset=centre_offset,
        outside_fraction=float(outside.mean()),
    )


def frame_brightness(bgr: np.ndarray) -> float:
    """Mean level of the whole frame (used when no face is found: dark room, covered lens)."""
    return float(bgr[::4, ::4].mean())
