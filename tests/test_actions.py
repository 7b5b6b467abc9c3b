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
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["unclear"]


def test_isolated_glitches_do_not_add_up_to_a_held_turn() -> None:
    yaw = np.zeros(40)
    yaw[[12, 15, 18]] = 40.0  # three separate one-frame spikes
    assert verdicts(series(40, yaw=yaw), [("turn_left", 1.0, 2.5)]) == ["unclear"]


def test_a_turn_held_too_briefly_is_unclear() -> None:
    obs = series(40, yaw=ramp(40, 15, 17, 25.0))  # 0.2 s at 10 fps, 0.3 s required
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["unclear"]


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
    # Not counted as a blink; the half-closed mean eye ratio leaves it to a human (review).
    obs = series(40, ear_left=ramp(40, 17, 19, 0.03, base=0.3), ear_right=np.full(40, 0.3))
    assert verdicts(obs, [("blink", 1.0, 2.5)]) == ["unclear"]


def test_lowered_eyes_held_long_are_not_a_blink() -> None:
    obs = series(60, ear=ramp(60, 12, 40, 0.08, base=0.3))  # 2.8 s of narrowed eyes
    assert verdicts(obs, [("blink", 1.0, 4.0)]) == ["unclear"]


@pytest.mark.parametrize("closed_frames, performed", [(6, True), (7, False), (8, False)])
def test_blink_length_limit_counts_the_whole_closure(closed_frames: int, performed: bool) -> None:
    # blink_max_s is 0.6 s: six frames at 10 fps; a longer closure is not a blink.
    obs = series(50, ear=ramp(50, 15, 15 + closed_frames, 0.04, base=0.3))
    ev = verify_actions(obs, [Step("blink", 1.0, 4.0)], TH)[0]
    assert (ev.verdict == "performed") is performed
    if performed:
        assert ev.onset_t == pytest.approx(1.5) and ev.frame_indexes == list(range(15, 15 + closed_frames))


def test_open_mouth_needs_an_absolute_opening_too() -> None:
    wide = series(40, mouth=ramp(40, 12, 20, 0.45, base=0.02))
    talking = series(40, mouth=ramp(40, 12, 20, 0.30, base=0.12))  # a change of 0.18, but only 0.30 open
    assert verdicts(wide, [("open_mouth", 1.0, 2.5)]) == ["performed"]
    assert verdicts(talking, [("open_mouth", 1.0, 2.5)]) == ["unclear"]


def test_smile_is_relative_to_the_subjects_own_mouth() -> None:
    obs = series(40, smile=ramp(40, 12, 20, 0.70, base=0.55))
    assert verdicts(obs, [("smile", 1.0, 2.5)]) == ["performed"]
    small = series(40, smile=ramp(40, 12, 20, 0.58, base=0.55))
    assert verdicts(small, [("smile", 1.0, 2.5)]) == ["not_performed"]


def test_each_action_must_happen_in_its_own_window() -> None:
    # Smile in the first window, then a blink in the second: matches smile,blink only.
    obs = series(50, smile=ramp(50, 8, 15, 0.72, base=0.55), ear=ramp(50, 30, 31, 0.04, base=0.3))
    assert verdicts(obs, [("smile", 0.5, 2.0), ("blink", 2.0, 4.0)]) == ["performed", "performed"]
    assert verdicts(obs, [("blink", 0.5, 2.0), ("smile", 2.0, 4.0)]) == ["not_performed", "not_performed"]


def test_actions_swapped_between_windows_are_out_of_order() -> None:
    # Asked: turn left, then open the mouth. Done: mouth first, then the turn.
    obs = series(50, mouth=ramp(50, 8, 15, 0.5, base=0.02), yaw=ramp(50, 28, 36, 25.0))
    evs = verify_actions(obs, [Step("turn_left", 0.5, 2.0), Step("open_mouth", 2.0, 4.0)], TH)
    assert [(e.verdict, e.in_order) for e in evs] == [("not_performed", False), ("not_performed", False)]
    assert "window of step 2" in evs[0].note and "window of step 1" in evs[1].note


def test_a_window_without_frames_is_not_performed() -> None:
    obs = series(20)  # two seconds of frames; the window is after them
    ev = verify_actions(obs, [Step("turn_left", 0.5, 1.5), Step("smile", 3.0, 4.0)], TH)[1]
    assert (ev.verdict, ev.note) == ("not_performed", "no frames during the window")


def test_no_face_in_the_window_is_unclear() -> None:
    obs = series(40, yaw=ramp(40, 12, 20, 25.0))
    for o in obs[10:25]:
        o.landmarks = None
        o.n_faces = 0
    assert verdicts(obs, [("turn_left", 1.0, 2.5)]) == ["unclear"]


def test_turns_are_measured_from_the_true_starting_pose() -> None:
    # Starts 35 degrees to their right, then turns well to the left: a 55 degree change.
    yaw = np.full(40, -35.0)
    yaw[12:20] = 20.0
    assert verdicts(series(40, yaw=yaw), [("turn_left", 1.0, 2.5)]) == ["performed"]


def test_a_photo_turned_three_quarters_does_not_fake_a_turn() -> None:
    # A still held at 27 degrees that wobbles by 3: against a clipped neutral pose this
    # once read as a 14 degree "turn". Far from frontal at the start, it goes to a human.
    yaw = 27.0 + 3.0 * np.sin(np.arange(40))
    assert verdicts(series(40, yaw=yaw), [("turn_left", 1.0, 2.5)]) == ["unclear"]


def test_blink_times_over_the_whole_session() -> None:
    from kyc_llm.vision.actions import blink_times

    ear = np.full(80, 0.3)
    ear[[10, 31, 32, 60]] = 0.04  # three blinks, one of them two frames long
    assert blink_times(series(80, ear=ear), TH) == [pytest.approx(1.0), pytest.approx(3.1), pytest.approx(6.0)]
