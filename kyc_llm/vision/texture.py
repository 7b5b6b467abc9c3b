"""Texture and frequency features of the face region for print and screen detection.

Printed and displayed faces lose and add detail in characteristic ways: paper and ink flatten
micro-texture (LBP) and compress contrast and colour; a screen seen by a camera adds periodic
energy (the pixel grid aliased into moire) and shifts colour (display gamma, cool white
point). Each function returns plain numbers; the presentation-attack scoring combines them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .intake import Patch

_PATCH = 96  # native-resolution patch for the spectrum: resizing would erase the moire


@dataclass(frozen=True)
class Texture:
    lbp_entropy: float  # entropy (bits) of the 8-neighbour LBP code histogram
    lbp_flat: float  # share of LBP codes that are all-ones (flat, saturated or blurred area)
    hf_ratio: float  # share of luma spectral energy above a third of Nyquist
    moire_luma: float  # strongest isolated luma spectral peak above its neighbourhood (log units)
    moire_chroma: float  # the same on the colour-difference channels (sub-pixel stripes)
    saturation: float  # mean HSV saturation of the face, 0-255
    chroma_spread: float  # std of Cr and Cb in the face (colour variety)
    cool_tint: float  # mean Cb minus mean Cr (a blue display white point raises it)
    specular: float  # share of near-white, unsaturated pixels (glare, gloss)
    dynamic_range: float  # 99th minus 1st percentile grey level of the face
    lossless: bool = False  # the spectral features came from a lossless patch, not the JPEG


def lbp_codes(gray: np.ndarray) -> np.ndarray:
    """8-neighbour local binary pattern codes (0-255) of the interior pixels."""
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    codes = np.zeros(c.shape, np.uint8)
    shifts = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    h, w = g.shape
    for bit, (dy, dx) in enumerate(shifts):
        n = g[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
        codes |= ((n >= c).astype(np.uint8) << bit)
    return codes


def lbp_stats(gray: np.ndarray) -> tuple[float, float]:
    hist = np.bincount(lbp_codes(gray).ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum()), float(p[255])


_WINDOW = np.outer(np.hanning(_PATCH), np.hanning(_PATCH)).astype(np.float32)
_fy, _fx = np.meshgrid(np.fft.fftfreq(_PATCH), np.fft.fftfreq(_PATCH), indexing="ij")
_RADIUS = np.hypot(_fx, _fy)  # cycles per pixel, 0 to ~0.707
_HIGH = _RADIUS > 0.5 / 3


def _near_block_grid(f: np.ndarray) -> np.ndarray:
    # JPEG and video codecs work in 8x8 blocks: every compressed image has spectral lines at
    # multiples of 1/8 cycle per pixel. Those bins are no evidence of a screen.
    return np.abs(f * 8 - np.round(f * 8)) * _PATCH / 8 < 1.01


# A display's pixel grid seen by a camera aliases into stripes of any orientation (vertical
# sub-pixel stripes included, so the axes stay in), above an eighth of the sampling rate.
_PEAK_BAND = (_RADIUS > 1 / 8) & ~(_near_block_grid(_fx) & _near_block_grid(_fy))


def spectrum_features(patch: np.ndarray) -> tuple[float, float]:
    """(hf_ratio, peak) of a square single-channel patch of side ``_PATCH``.

    ``peak`` is how far (natural log of power) the strongest bin in the band stands above
    its 9x9 neighbourhood: smooth for skin, hair and edges; high for a periodic pattern.
    """
    x = patch.astype(np.float32)
    x = (x - float(cv2.mean(x)[0])) * _WINDOW
    spectrum = cv2.dft(x, flags=cv2.DFT_COMPLEX_OUTPUT)  # ~3x faster than numpy here
    power = cv2.magnitude(spectrum[..., 0], spectrum[..., 1]) ** 2
    power[0, 0] = 0.0
    total = float(power.sum())
    if total <= 0:
        return 0.0, 0.0
    hf_ratio = float(power[_HIGH].sum() / total)
    logp = cv2.log(power + 1e-2)
    # The neighbourhood mean of every bin, wrapping around (the spectrum is periodic): a
    # padded box blur, with no shifting of the spectrum back and forth.
    wrapped = cv2.copyMakeBorder(logp, 4, 4, 4, 4, cv2.BORDER_WRAP)
    local = cv2.blur(wrapped, (9, 9))[4:-4, 4:-4]
    return hf_ratio, float((logp - local)[_PEAK_BAND].max())


def spectral_window_origin(shape: tuple[int, ...], centre: tuple[float, float]) -> tuple[int, int] | None:
    """Top-left corner of a ``_PATCH`` square at native resolution around ``centre``, moved
    inside the frame; None when the frame is smaller than the patch."""
    H, W = shape[:2]
    half = _PATCH // 2
    x0 = min(max(int(centre[0]) - half, 0), W - _PATCH)
    y0 = min(max(int(centre[1]) - half, 0), H - _PATCH)
    if x0 < 0 or y0 < 0:
        return None
    return x0, y0


def measure(bgr: np.ndarray, crop128: np.ndarray, box: tuple[float, float, float, float],
            centre: tuple[float, float], patch: Patch | None = None) -> Texture:
    """Texture features of one face. ``crop128`` is the grey face box at 128 px.

    The spectral features come from ``patch`` (a lossless crop in the same pixel grid) when
    the window around ``centre`` lies inside it, and from the frame itself otherwise.
    """
    entropy, flat = lbp_stats(crop128[::2, ::2])  # 64 px: micro-texture statistics, a quarter of the cost
    x, y, w, h = (int(v) for v in box)
    H, W = bgr.shape[:2]
    hf_ratio = moire_luma = moire_chroma = 0.0
    source, offset, lossless = bgr, (0, 0), False
    if patch is not None:
        local = (centre[0] - patch.x, centre[1] - patch.y)
        half = _PATCH // 2
        ph, pw = patch.pixels.shape[:2]
        if half <= local[0] <= pw - half and half <= local[1] <= ph - half:
            source, offset, lossless = patch.pixels, (patch.x, patch.y), True
    origin = spectral_window_origin(source.shape, (centre[0] - offset[0], centre[1] - offset[1]))
    if origin is not None:
        px, py = origin
        ycc_patch = cv2.cvtColor(source[py:py + _PATCH, px:px + _PATCH], cv2.COLOR_BGR2YCrCb)
        hf_ratio, moire_luma = spectrum_features(ycc_patch[..., 0])
        # Cr and Cb in one transform: cheaper than two, and stripes show in either channel.
        moire_chroma = spectrum_features(ycc_patch[..., 1].astype(np.int16) + ycc_patch[..., 2])[1]
    face = bgr[max(y, 0):min(y + h, H), max(x, 0):min(x + w, W)]
    if face.size == 0:
        face = bgr
    # Colour statistics need no anti-aliased resize: a strided sample of ~64x64 pixels will do.
    step = max(1, min(face.shape[:2]) // 64)
    face = np.ascontiguousarray(face[::step, ::step])
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    ycc = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb).reshape(-1, 3).astype(np.float32)
    sat, val = hsv[..., 1], hsv[..., 2]
    cdf = np.cumsum(np.bincount(crop128.ravel(), minlength=256))
    p1, p99 = np.searchsorted(cdf, (0.01 * crop128.size, 0.99 * crop128.size))
    return Texture(
        lbp_entropy=entropy,
        lbp_flat=flat,
        hf_ratio=hf_ratio,
        moire_luma=moire_luma,
        moire_chroma=moire_chroma,
        saturation=float(sat.mean()),
        chroma_spread=float((ycc[:, 1].std() + ycc[:, 2].std()) / 2),
        cool_tint=float(ycc[:, 2].mean() - ycc[:, 1].mean()),
        specular=float(((val > 235) & (sat < 40)).mean()),
        dynamic_range=float(p99 - p1),
        lossless=lossless,
    )
