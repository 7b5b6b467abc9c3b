"""Action verification on synthetic observation sequences (no video, no MediaPipe)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from kyc_llm.challenge import Step
from kyc_llm.vision.actions import verify_actions
from kyc_llm.vision.observation import FrameObservation
from kyc_llm.vision.thresholds import load_thresholds

TH = load_thresholds().actions
FPS = 10


def series(n: int, **tracks: Sequence[float]) -> list[FrameObservation]:
    """``n`` frames at 10 fps of one face whose measures follow ``tracks`` (default neutral)."""
    out = []
    for i in range(n):
        def val(name: str, default: float) -> float:
            return float(tracks[name][i]) if name in tracks else default
        ear = val("ear", 0.3)
        out.append(FrameObservation(
            t=i / FPS, width=640, height=480, n_faces=1, frame_brightness=120.0,
            landmarks=np.zeros((478, 3), np.float32),
            yaw=val("yaw", 0.0), pitch=val("pitch", 0.0), roll=0.0,
            ear_left=val("ear_left", ear), ear_right=val("ear_right", ear),
            mouth_open=val("mouth", 0.02), smile=val("smile", 0.55), corner_lift=0.0, face_height=1.0,
        ))
    return out


def ramp(n: int, start: int, stop: int, peak: float, base: float = 0.0) -> np.ndarray:
    """``base`` everywhere, ``peak`` on frames [start, stop)."""
    v = np.full(n, base)
    v[start:stop] = peak
    return v


def verdicts(obs: list[FrameObservation], steps: list[tuple[str, float, float]]) -> list[str]:
    return [e.verdict for e in verify_actions(obs, [Step(*s) for s in steps], TH)]


def test_turn_left_in_window_is_performed_with_onset_and_peak() -> None:
    obs = series(40, yaw=ramp(40, 12, 20, 25.0))
    ev = verify_actions(obs, [Step("turn_left", 1.0, 2.5)], TH)[0]
    assert ev.verdict == "performed"
    assert ev.onset_t == pytest.approx(1.2)
    assert ev.peak_value == pytest.approx(25.0) and ev.baseline_value == pytest.approx(0.0)
    assert ev.frame_indexes == list(range(12, 20))


def test_turn_in_the_wrong_direction_is_not_performed() -> None:
    obs = series(40, yaw=ramp(40, 12, 20, -25.0))
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["not_performed"]
    assert verdicts(obs, [("turn_right", 1.0, 2.5)]) == ["performed"]


def test_movement_outside_its_window_does_not_count() -> None:
    obs = series(50, yaw=ramp(50, 30, 38, 25.0))  # turns at 3.0-3.8 s
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["not_performed"]


def test_a_single_glitch_frame_is_not_a_turn() -> None:
    obs = series(40, yaw=ramp(40, 15, 16, 40.0))
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) != ["performed"]


def test_pose_held_from_before_the_prompt_is_not_a_response() -> None:
    obs = series(40, yaw=ramp(40, 5, 30, 25.0))  # turned from 0.5 s, prompt at 1.0 s
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["not_performed"]


def test_look_up_and_down_use_pitch() -> None:
    obs = series(40, pitch=ramp(40, 12, 20, 22.0))
    assert verdicts(obs, [("look_up", 1.0, 2.5)]) == ["performed"]
    assert verdicts(obs, [("look_down", 1.0, 2.5)]) == ["not_performed"]


def test_blink_found_at_its_time() -> None:
    obs = series(40, ear=ramp(40, 17, 19, 0.05, base=0.3))
    ev = verify_actions(obs, [Step("blink", 1.0, 2.5)], TH)[0]
    assert ev.verdict == "performed"
    assert ev.onset_t == pytest.approx(1.7)
    assert ev.peak_t in (pytest.approx(1.7), pytest.approx(1.8))


def test_a_wink_is_not_a_blink() -> None:
    obs = series(40, ear_left=ramp(40, 17, 19, 0.03, base=0.3), ear_right=np.full(40, 0.3))
    assert verdicts(obs, [("blink", 1.0, 2.5)]) != ["performed"]


def test_lowered_eyes_held_long_are_not_a_blink() -> None:
    obs = series(60, ear=ramp(60, 12, 40, 0.08, base=0.3))  # 2.8 s of narrowed eyes
    assert verdicts(obs, [("blink", 1.0, 4.0)]) != ["performed"]


def test_open_mouth_needs_an_absolute_opening_too() -> None:
    wide = series(40, mouth=ramp(40, 12, 20, 0.45, base=0.02))
    slight = series(40, mouth=ramp(40, 12, 20, 0.20, base=0.02))
    assert verdicts(wide, [("open_mouth", 1.0, 2.5)]) == ["performed"]
    assert verdicts(slight, [("open_mouth", 1.0, 2.5)]) != ["performed"]


def test_smile_is_relative_to_the_subjects_own_mouth() -> None:
    obs = series(40, smile=ramp(40, 12, 20, 0.70, base=0.55))
    assert verdicts(obs, [("smile", 1.0, 2.5)]) == ["performed"]
    small = series(40, smile=ramp(40, 12, 20, 0.58, base=0.55))
    assert verdicts(small, [("smile", 1.0, 2.5)]) != ["performed"]


def test_each_action_must_happen_in_its_own_window() -> None:
    # Smile in the first window, then a blink in the second: matches smile,blink only.
    obs = series(50, smile=ramp(50, 8, 15, 0.72, base=0.55), ear=ramp(50, 30, 31, 0.04, base=0.3))
    assert verdicts(obs, [("smile", 0.5, 2.0), ("blink", 2.0, 4.0)]) == ["performed", "performed"]
    assert verdicts(obs, [("blink", 0.5, 2.0), ("smile", 2.0, 4.0)]) == ["not_performed", "not_performed"]


def test_no_face_in_the_window_is_unclear() -> None:
    obs = series(40, yaw=ramp(40, 12, 20, 25.0))
    for o in obs[10:25]:
        o.landmarks = None
        o.n_faces = 0
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["unclear"]


def test_subject_starting_far_turned_still_has_a_usable_baseline() -> None:
    # Starts 35 degrees to their right (no neutral frames), then turns well to the left.
    yaw = np.full(40, -35.0)
    yaw[12:20] = 20.0
    assert verdicts(series(40, yaw=yaw), [("turn_left", 1.0, 2.5)]) == ["performed"]
