"""Presentation-attack and deepfake signals over a session, each a score in [0, 1].

1 means "looks like an attack", 0 "looks like a live face"; ``available`` is False when the
session gave too little to judge (for example planarity when the head never moved). Features
are returned beside each score so an operator sees why.

- planarity: a photo (or a screen showing a still) is flat, so its landmarks move by one
  homography however it is tilted; a real head turning shows parallax (nose against cheeks)
  that no homography fits. Judged on frames whose landmark layout is visibly foreshortened
  relative to a frontal reference frame (affine anisotropy). A screen replaying a video of a
  real head is not flat in this sense: the screen signal is there for that.
- screen: a display's pixel grid seen by a camera aliases into fine periodic stripes: isolated
  peaks in the spectrum of the face patch, in colour (sub-pixel stripes) or luma. It catches a
  screen whose grid the camera resolves; a phone screen held before a webcam (the practice
  set's two real replays) shows none, nor any other screen cue measured (spectra at other scales
  and over the frame, glare, contrast, saturation, tint, sharpness, flicker, banding) outside
  the range of live faces: the actions and the other signals have to stop those replays.
- print: paper loses the colour of skin: a grey or washed-out face (chroma spread). Dynamic
  range and LBP entropy are reported beside it, not scored.
- stillness: a live face is never still for long between frames (breathing, micro-motion,
  eye movements); a photo, or a slideshow of photos held in turn to fake the movements, is:
  the share of consecutive frame pairs whose landmarks barely move.
- temporal: instability of a ratio a rigid skull keeps fixed, and landmark jitter normalised
  to 10 fps: backstops for broken renders (scored), with brightness flicker and blink
  dynamics (count and rate over the session) reported.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from . import geometry
from .evidence import Signal
from .observation import FrameObservation
from .thresholds import AttackThresholds

# Points on the rigid part of the face: eye corners, brows, nose, forehead, cheek bones.
_RIGID = sorted(set(geometry.RIGID) | {
    5, 8, 9, 45, 48, 50, 64, 67, 93, 98, 103, 108, 115, 116, 123, 129, 130, 131, 132, 142, 151,
    162, 195, 219, 220, 226, 243, 251, 266, 275, 278, 280, 294, 297, 323, 327, 332, 337, 344,
    345, 352, 358, 359, 361, 371, 389, 439, 440, 446, 463,
})


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear between (either direction)."""
    if high == low:
        return float(value >= high)
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def _faces(obs: Sequence[FrameObservation]) -> list[FrameObservation]:
    return [o for o in obs if o.has_face and o.n_faces == 1]


def planarity(obs: Sequence[FrameObservation], th: AttackThresholds) -> Signal:
    faces = _faces(obs)
    if len(faces) < th.planarity_min_frames + 1:
        return Signal("planarity", 0.0, {"judged_frames": 0}, available=False)
    # The reference is the most frontal of the first frames: a first frame caught mid-turn
    # would make every later frontal frame look foreshortened.
    ref = min(faces[:5], key=lambda o: abs(o.yaw) + abs(o.pitch))
    a = ref.landmarks[_RIGID, :2].astype(np.float32)
    iod = geometry.inter_ocular(ref.landmarks)
    residuals, max_aniso = [], 0.0
    for o in faces:
        if o is ref:
            continue
        b = o.landmarks[_RIGID, :2].astype(np.float32)
        affine, _ = cv2.estimateAffine2D(a, b, method=cv2.LMEDS)
        if affine is None:
            continue
        s = np.linalg.svd(affine[:, :2], compute_uv=False)
        aniso = 1.0 - s[1] / s[0]
        max_aniso = max(max_aniso, float(aniso))
        if aniso < th.planarity_min_anisotropy:
            continue
        h, _ = cv2.findHomography(a, b, 0)
        if h is None:
            continue
        fitted = cv2.perspectiveTransform(a[None], h)[0]
        residuals.append(float(np.sqrt(np.mean(np.sum((fitted - b) ** 2, axis=1)))) / iod)
    features = {"judged_frames": float(len(residuals)), "max_anisotropy": round(max_aniso, 4)}
    if len(residuals) < th.planarity_min_frames:
        return Signal("planarity", 0.0, features, available=False)
    residual = float(np.median(residuals))
    features["homography_residual"] = round(residual, 4)
    score = _ramp(-residual, -th.planarity_residual_live, -th.planarity_residual_flat)
    return Signal("planarity", score, features)


def screen(obs: Sequence[FrameObservation], th: AttackThresholds) -> Signal:
    # Only lossless patches keep the stripes: JPEG's 4:2:0 colour subsampling at the page's
    # quality erases them (measured: replays fall into the live range).
    faces = [o for o in _faces(obs) if o.texture.lossless]
    if len(faces) < th.screen_min_patches:
        return Signal("screen", 0.0, {"lossless_patches": float(len(faces))}, available=False)
    chroma = float(np.percentile([o.texture.moire_chroma for o in faces], 75))
    luma = float(np.percentile([o.texture.moire_luma for o in faces], 75))
    # Luma peaks of natural images sit ~1.5 lower than chroma ones (chroma is subsampled and
    # noisier); one scale for both.
    peak = max(chroma, luma + th.screen_luma_offset)
    score = _ramp(peak, th.screen_peak_live, th.screen_peak_attack)
    return Signal("screen", score, {"moire_chroma_p75": round(chroma, 3), "moire_luma_p75": round(luma, 3),
                                    "lossless_patches": float(len(faces))})


def print_texture(obs: Sequence[FrameObservation], th: AttackThresholds) -> Signal:
    faces = _faces(obs)
    if not faces:
        return Signal("print", 0.0, {}, available=False)
    chroma = float(np.median([o.texture.chroma_spread for o in faces]))
    drange = float(np.median([o.texture.dynamic_range for o in faces]))
    lbp = float(np.median([o.texture.lbp_entropy for o in faces]))
    # A live face through a colour camera always carries skin colour variation; a grey or
    # washed-out face is paper (or a monochrome screen).
    score = _ramp(-chroma, -th.print_chroma_live, -th.print_chroma_flat)
    return Signal("print", score, {"chroma_spread": round(chroma, 3), "dynamic_range": round(drange, 1),
                                   "lbp_entropy": round(lbp, 3)})


def temporal(obs: Sequence[FrameObservation], th: AttackThresholds, blinks: Sequence[float] = ()) -> Signal:
    faces = _faces(obs)
    if len(faces) < 5:
        return Signal("temporal", 0.0, {}, available=False)
    # Turning or tilting the head foreshortens the ratio: compare it near one pose only.
    yaw, pitch = np.array([o.yaw for o in faces]), np.array([o.pitch for o in faces])
    near = (np.abs(yaw - np.median(yaw)) < 10.0) & (np.abs(pitch - np.median(pitch)) < 10.0)
    ratios = np.array([o.face_height for o in faces])[near]
    ratio_cv = float(np.std(ratios) / max(np.mean(ratios), 1e-6)) if len(ratios) >= 3 else 0.0
    # Jitter: rigid-landmark motion not explained by a smooth trajectory (second difference),
    # in inter-ocular units. A second difference grows with the square of the frame interval,
    # so it is scaled to 10 fps: the same face gives the same figure at 8 or 15 fps.
    pts = np.stack([o.landmarks[_RIGID, :2] / max(geometry.inter_ocular(o.landmarks), 1e-6) for o in faces])
    dt = float(np.median(np.diff([o.t for o in faces]))) or 0.1
    jitter = float(np.median(np.linalg.norm(np.diff(pts, n=2, axis=0), axis=2))) * (0.1 / dt) ** 2
    bright = np.array([o.quality.brightness for o in faces])
    flicker = float(np.median(np.abs(np.diff(bright)))) if len(bright) > 1 else 0.0
    score = max(_ramp(ratio_cv, th.temporal_ratio_cv_live, th.temporal_ratio_cv_attack),
                _ramp(jitter, th.temporal_jitter_live, th.temporal_jitter_attack))
    duration = max(faces[-1].t - faces[0].t, 1e-6)
    return Signal("temporal", score, {"face_ratio_cv": round(ratio_cv, 4), "jitter": round(jitter, 4),
                                      "flicker": round(flicker, 3), "blinks": float(len(blinks)),
                                      "blinks_per_min": round(60.0 * len(blinks) / duration, 1)})


def stillness(obs: Sequence[FrameObservation], th: AttackThresholds) -> Signal:
    faces = _faces(obs)
    if len(faces) < 5:
        return Signal("stillness", 0.0, {}, available=False)
    # Median landmark displacement between consecutive frames, in inter-ocular units.
    pts = np.stack([o.landmarks[:468, :2] for o in faces])
    iod = np.array([max(geometry.inter_ocular(o.landmarks), 1e-6) for o in faces[:-1]])
    motion = np.median(np.linalg.norm(np.diff(pts, axis=0), axis=2), axis=1).astype(np.float64) / iod
    frozen = float(np.mean(motion < th.still_motion))
    score = _ramp(frozen, th.still_share_live, th.still_share_attack)
    return Signal("stillness", score, {"frozen_share": round(frozen, 3),
                                       "median_motion": round(float(np.median(motion)), 4)})


def all_signals(obs: Sequence[FrameObservation], th: AttackThresholds,
                blinks: Sequence[float] = ()) -> dict[str, Signal]:
    """Every signal; ``blinks`` are the session's blink times (reported with the temporal cues)."""
    signals = (planarity(obs, th), screen(obs, th), print_texture(obs, th), stillness(obs, th),
               temporal(obs, th, blinks))
    return {s.name: s for s in signals}
