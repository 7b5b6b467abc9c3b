"""Face geometry on synthetic landmark arrays: the maths without MediaPipe."""

from __future__ import annotations

import numpy as np
import pytest

from kyc_llm.vision import geometry as g

# A frontal face in camera axes (x right, y down, z away from the camera), pixels.
_POINTS = {
    g.NOSE_TIP: (0, 0, -30), g.SUBNASALE: (0, 12, -20), g.FOREHEAD: (0, -75, 10), g.CHIN: (0, 80, 5),
    g.R_EYE_OUTER: (-45, -35, 10), g.R_EYE_INNER: (-15, -35, 5),
    g.L_EYE_OUTER: (45, -35, 10), g.L_EYE_INNER: (15, -35, 5),
    g.R_CHEEK: (-70, 0, 50), g.L_CHEEK: (70, 0, 50),
    g.R_MOUTH: (-25, 40, 0), g.L_MOUTH: (25, 40, 0),
    g.UPPER_LIP_INNER: (0, 38, -5), g.LOWER_LIP_INNER: (0, 42, -5),
}



def face(yaw_deg: float = 0.0, pitch_deg: float = 0.0, eye_open_px: float = 9.0, mouth_gap_px: float = 4.0) -> np.ndarray:
    """478 landmarks of the synthetic face turned by ``yaw`` (subject's own left positive)
    and raised by ``pitch`` (looking up positive), placed at (320, 240)."""
    lm = np.zeros((478, 3), np.float64)
    for i, p in _POINTS.items():
        lm[i] = p
    lm[g.LOWER_LIP_INNER, 1] = lm[g.UPPER_LIP_INNER, 1] + mouth_gap_px
    # Eye lids: p2/p3 above and p6/p5 below the corner line, eye_open_px apart.
    for idx, (outer, inner) in ((g.R_EYE_EAR, (-45, -15)), (g.L_EYE_EAR, (45, 15))):
        x1, x2 = outer + (inner - outer) / 3, outer + 2 * (inner - outer) / 3
        lm[idx[1]] = (x1, -35 - eye_open_px / 2, 5)
        lm[idx[2]] = (x2, -35 - eye_open_px / 2, 5)
        lm[idx[5]] = (x1, -35 + eye_open_px / 2, 5)
        lm[idx[4]] = (x2, -35 + eye_open_px / 2, 5)
    # Turning to one's own left brings the nose (negative z) toward +x: rotation by -yaw about y.
    a, b = np.radians(-yaw_deg), np.radians(-pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    lm = lm @ (ry @ rx).T
    lm[:, :2] += (320, 240)
    return lm.astype(np.float32)


def test_frontal_face_reads_zero_yaw_and_roll() -> None:
    pose = g.head_pose(face())
    assert pose.yaw == pytest.approx(0, abs=0.5)
    assert pose.roll == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize("yaw", [-30, -15, 15, 30])
def test_yaw_sign_is_the_subjects_own_direction(yaw: float) -> None:
    lm = face(yaw_deg=yaw)
    # The data set's ground truth: a turn to the subject's own left moves the nose to image right.
    nose_dx = lm[g.NOSE_TIP, 0] - face()[g.NOSE_TIP, 0]
    assert np.sign(nose_dx) == np.sign(yaw)
    assert g.head_pose(lm).yaw == pytest.approx(yaw, abs=1.5)


@pytest.mark.parametrize("pitch", [-20, 20])
def test_pitch_up_is_positive(pitch: float) -> None:
    rest = g.head_pose(face()).pitch
    moved = g.head_pose(face(pitch_deg=pitch)).pitch
    assert moved - rest == pytest.approx(pitch, abs=1.5)
    assert np.sign(face(pitch_deg=pitch)[g.NOSE_TIP, 1] - face()[g.NOSE_TIP, 1]) == -np.sign(pitch)


def test_roll_is_positive_when_the_eye_line_rises_to_the_right() -> None:
    lm = face()
    centre = lm[:, :2].mean(axis=0)
    a = np.radians(-10)  # image y points down: a negative angle turns counter-clockwise on screen
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm[:, :2] = (lm[:, :2] - centre) @ rot.T + centre
    assert lm[g.L_EYE_OUTER, 1] < lm[g.R_EYE_OUTER, 1]  # the subject's left eye (image right) is higher
    assert g.head_pose(lm).roll == pytest.approx(10, abs=0.5)


def test_eye_aspect_ratio_falls_when_eyes_close() -> None:
    open_ear = g.eye_aspect_ratio(face(eye_open_px=9), g.L_EYE_EAR)
    closed_ear = g.eye_aspect_ratio(face(eye_open_px=1), g.L_EYE_EAR)
    assert open_ear == pytest.approx(0.3, abs=0.01)
    assert closed_ear < 0.05


def test_mouth_ratio_and_scale_invariance() -> None:
    lm = face(mouth_gap_px=20)
    assert g.mouth_open_ratio(lm) == pytest.approx(20 / 50, abs=1e-3)
    scaled = lm.copy()
    scaled[:, :2] *= 2.5
    assert g.mouth_open_ratio(scaled) == pytest.approx(g.mouth_open_ratio(lm), rel=1e-4)
    assert g.smile_ratio(scaled) == pytest.approx(g.smile_ratio(lm), rel=1e-4)


def test_degenerate_landmarks_give_nan_not_an_exception() -> None:
    lm = np.zeros((478, 3), np.float32)
    assert np.isnan(g.head_pose(lm).yaw)
    assert np.isnan(g.eye_aspect_ratio(lm, g.L_EYE_EAR))
    assert np.isnan(g.smile_ratio(lm))


def test_mouth_corner_height_falls_when_the_corners_rise_and_ignores_scale_and_roll() -> None:
    lm = face()
    base = g.mouth_corner_height(lm)
    assert base > 0
    raised = lm.copy()
    raised[[g.R_MOUTH, g.L_MOUTH], 1] -= 6
    assert g.mouth_corner_height(raised) < base
    a = np.radians(15)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = (lm - lm.mean(axis=0)) @ rot.T * 1.7 + (100, 50, 0)
    assert g.mouth_corner_height(moved) == pytest.approx(base, rel=1e-6)
