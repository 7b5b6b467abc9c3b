"""Action verification on synthetic observation sequences (no video, no MediaPipe)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from kyc_llm.challenge import Step
from kyc_llm.vision import geometry as g
from kyc_llm.vision.actions import verify_actions
from kyc_llm.vision.observation import FrameObservation
from kyc_llm.vision.thresholds import load_thresholds

TH = load_thresholds().actions
FPS = 10


def corner_landmarks(height: float) -> np.ndarray:
    """Landmarks whose mouth corners sit ``height`` forehead-to-nose-base heights below the
    outer eye corners (``geometry.mouth_corner_height``); the other points are left at 0."""
    lm = np.zeros((478, 3), np.float32)
    lm[g.R_EYE_OUTER], lm[g.L_EYE_OUTER] = (275, 200, 0), (365, 200, 0)
    lm[g.FOREHEAD], lm[g.SUBNASALE] = (320, 160, 0), (320, 240, 0)
    lm[g.R_MOUTH], lm[g.L_MOUTH] = (295, 200 + 80 * height, 0), (345, 200 + 80 * height, 0)
    return lm


def series(n: int, **tracks: Sequence[float]) -> list[FrameObservation]:
    """``n`` frames at 10 fps of one face whose measures follow ``tracks`` (default neutral;
    ``corner`` gives landmarks with that mouth-corner height, otherwise they are all 0)."""
    out = []
    for i in range(n):
        def val(name: str, default: float) -> float:
            return float(tracks[name][i]) if name in tracks else default
        ear = val("ear", 0.3)
        out.append(FrameObservation(
            t=i / FPS, width=640, height=480, n_faces=1, frame_brightness=120.0,
            landmarks=corner_landmarks(val("corner", 0.0)) if "corner" in tracks else np.zeros((478, 3), np.float32),
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


def test_a_turn_is_judged_from_the_pose_before_its_window() -> None:
    # Starts 35 degrees to their right, turns left, comes back near frontal just as the next
    # prompt appears, then turns right to 42: only 7 degrees past the start, but far from
    # where the head was when asked. Neither the start nor the pose when asked (still half
    # turned left) is a neutral pose, so the turn right starts where the head passes frontal.
    yaw = np.full(46, -35.0)
    yaw[5:16] = 38.0
    yaw[16:21] = 6.8
    yaw[21:27] = -42.0
    yaw[27:] = 13.0
    evs = verify_actions(series(46, yaw=yaw), [Step("turn_left", 0.3, 1.8), Step("turn_right", 1.8, 3.3)], TH)
    assert [e.verdict for e in evs] == ["performed", "performed"]
    assert evs[1].reference_value == pytest.approx(22.4) and evs[1].baseline_value == pytest.approx(-35.0)
    assert evs[1].onset_t == pytest.approx(2.1)


@pytest.mark.parametrize("back_to, verdict", [(0.0, "not_performed"), (4.0, "not_performed"),
                                              (-4.0, "not_performed"), (14.0, "performed")])
def test_coming_back_from_the_opposite_turn_is_not_the_asked_turn(back_to: float, verdict: str) -> None:
    # Turned right in the first window and held it to the end; in the second back to frontal
    # (or overshooting it by a few degrees, as a head swinging back does): no turn to the left.
    # Going on to 14 degrees to the left is one.
    yaw = ramp(50, 12, 30, -25.0)
    yaw[30:40] = back_to
    assert verdicts(series(50, yaw=yaw), [("turn_right", 1.0, 2.5), ("turn_left", 2.5, 4.5)]) == \
        ["performed", verdict]


def test_a_turn_begun_just_before_the_prompt_is_measured_from_the_baseline() -> None:
    # The head starts moving 0.2 s before the prompt (8 degrees there): not yet a held pose,
    # and the whole movement counts, not only what is left of it after the prompt.
    yaw = np.zeros(40)
    yaw[8:10] = 8.0
    yaw[10:20] = 14.0
    assert verdicts(series(40, yaw=yaw), [("turn_left", 1.0, 2.5)]) == ["performed"]


def lose_face(obs: list[FrameObservation], frames: range) -> None:
    for i in frames:
        obs[i].landmarks, obs[i].n_faces = None, 0
        obs[i].yaw = obs[i].pitch = obs[i].ear_left = obs[i].ear_right = None


def test_a_turn_tracked_out_of_the_face_tracker_and_back_is_performed() -> None:
    # Turns right to near-profile: tracked to -46, lost for 1.4 s, back still turned at -40.
    yaw = np.zeros(50)
    yaw[10:15] = [-19.0, -34.0, -38.0, -39.0, -46.0]
    yaw[29:32] = [-40.0, -8.0, 4.0]
    obs = series(50, yaw=yaw)
    lose_face(obs, range(15, 29))
    ev = verify_actions(obs, [Step("turn_right", 0.7, 2.9)], TH)[0]
    assert ev.verdict == "performed"
    assert ev.lost_frames == list(range(15, 29))
    assert ev.frame_indexes == list(range(10, 15))  # only frames that show the face
    assert verify_actions(obs, [Step("turn_left", 0.7, 2.9)], TH)[0].lost_frames == []


@pytest.mark.parametrize("case", ["frontal_before", "frontal_after", "outside_window", "turning_back"])
def test_a_face_lost_without_a_tracked_turn_is_not_excused(case: str) -> None:
    yaw = np.zeros(50)
    if case != "frontal_before":
        yaw[10:15] = [-19.0, -34.0, -38.0, -39.0, -46.0]
    if case == "turning_back":
        yaw[10:15] = [-19.0, -46.0, -38.0, -30.0, -20.0]  # lost while coming back, not going out
    if case != "frontal_after":
        yaw[29:32] = [-40.0, -8.0, 4.0]
    obs = series(50, yaw=yaw)
    lose_face(obs, range(15, 29))
    window = (3.5, 4.9) if case == "outside_window" else (0.7, 2.9)
    ev = verify_actions(obs, [Step("turn_right", *window)], TH)[0]
    assert ev.lost_frames == []
    if case != "outside_window":
        assert ev.verdict == "unclear"  # most of the window without a face: a human looks


def test_a_deep_one_frame_blink_with_a_slow_reopening_counts() -> None:
    # 10 fps: the eyes are seen closed in one frame (0.39 to 0.05) and take 0.5 s to open
    # fully again, so the three frames after it are still under the open level.
    ear = np.full(40, 0.39)
    ear[15:22] = [0.05, 0.24, 0.27, 0.29, 0.30, 0.33, 0.36]
    assert verdicts(series(40, ear=ear), [("blink", 1.0, 2.5)]) == ["performed"]


def test_a_shallow_one_frame_dip_with_a_slow_reopening_is_not_a_blink() -> None:
    # Half closed (0.45 of the open level) and slow to reopen: a glance, not a blink.
    ear = np.full(40, 0.39)
    ear[15:22] = [0.175, 0.24, 0.27, 0.29, 0.30, 0.33, 0.36]
    assert verdicts(series(40, ear=ear), [("blink", 1.0, 2.5)]) == ["unclear"]


def test_eyes_squeezed_over_several_frames_are_not_a_blink() -> None:
    # A broad smile narrows the eyes to a blink's depth over three frames, then they reopen
    # slowly: only a one-frame closure gets the longer reach for open eyes.
    ear = np.full(40, 0.39)
    ear[15:23] = [0.05, 0.05, 0.05, 0.24, 0.27, 0.29, 0.30, 0.33]
    assert verdicts(series(40, ear=ear), [("blink", 1.0, 2.5)]) == ["unclear"]


def test_a_one_frame_wink_is_not_a_blink() -> None:
    ear_left = np.full(40, 0.39)
    ear_left[15:22] = [0.02, 0.24, 0.27, 0.29, 0.30, 0.33, 0.36]
    obs = series(40, ear_left=ear_left, ear_right=np.full(40, 0.39))
    assert verdicts(obs, [("blink", 1.0, 2.5)]) != ["performed"]


def test_a_closed_mouth_smile_counts_by_its_raised_corners() -> None:
    # The mouth widens 13 % (under the 18 % a smile needs from width alone) while the corners
    # rise 15 % of their height below the eyes, head still: a closed-mouth smile.
    smile = ramp(40, 12, 20, 0.62, base=0.55)
    raised = series(40, smile=smile, corner=ramp(40, 12, 20, 1.06, base=1.25))
    assert verdicts(raised, [("smile", 1.0, 2.5)]) == ["performed"]
    flat = series(40, smile=smile, corner=np.full(40, 1.25))
    assert verdicts(flat, [("smile", 1.0, 2.5)]) == ["unclear"]


def test_raised_corners_do_not_count_while_the_head_nods() -> None:
    # The same corner shift seen while the head pitches 12 degrees is the nod's perspective.
    obs = series(40, smile=ramp(40, 12, 20, 0.62, base=0.55), corner=ramp(40, 12, 20, 1.06, base=1.25),
                 pitch=ramp(40, 12, 20, 12.0))
    assert verdicts(obs, [("smile", 1.0, 2.5)]) == ["unclear"]


def test_a_laugh_dropping_the_corners_is_still_a_smile() -> None:
    # An open-mouth laugh: 25 % wider, the jaw pulls the corners down; a drop never counts against.
    obs = series(40, smile=ramp(40, 12, 20, 0.69, base=0.55), corner=ramp(40, 12, 20, 1.40, base=1.25))
    assert verdicts(obs, [("smile", 1.0, 2.5)]) == ["performed"]
