"""Session signals on synthetic landmarks, where the expected figures can be computed by hand."""

from __future__ import annotations

import numpy as np

from kyc_llm.vision import geometry
from kyc_llm.vision.observation import FrameObservation
from kyc_llm.vision.signals import stillness
from kyc_llm.vision.thresholds import load_thresholds


def _session(landmarks: list[np.ndarray]) -> list[FrameObservation]:
    return [FrameObservation(t=i / 8, width=640, height=480, n_faces=1, frame_brightness=100.0, landmarks=lm)
            for i, lm in enumerate(landmarks)]


def test_stillness_is_the_share_of_frame_pairs_whose_landmarks_barely_move() -> None:
    th = load_thresholds().attacks
    rng = np.random.default_rng(1)
    face = rng.uniform(200, 400, (478, 3)).astype(np.float32)
    live = [face + rng.normal(0, 2.0, face.shape).astype(np.float32) for _ in range(12)]
    photo = [face + rng.normal(0, 0.01, face.shape).astype(np.float32) for _ in range(12)]
    scores = {}
    for name, lms in (("live", live), ("photo", photo)):
        signal = stillness(_session(lms), th)
        # Pair by pair: the median displacement of the 468 mesh points in inter-ocular units.
        motion = np.array([np.median(np.linalg.norm(a[:468, :2] - b[:468, :2], axis=1)) / geometry.inter_ocular(a)
                           for a, b in zip(lms, lms[1:])])
        assert signal.features == {"frozen_share": round(float(np.mean(motion < th.still_motion)), 3),
                                   "median_motion": round(float(np.median(motion)), 4)}
        scores[name] = signal.score
    assert scores == {"live": 0.0, "photo": 1.0}
    assert not stillness(_session(live[:4]), th).available  # too few frames to judge
