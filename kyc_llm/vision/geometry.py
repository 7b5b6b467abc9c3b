"""Face geometry from FaceMesh landmarks: head pose, eye and mouth ratios, smile and corner height.

Pure NumPy, so it is tested on synthetic landmark arrays without MediaPipe. Landmarks are (478, 3) arrays in pixels, x right and y down.

Sign convention (the subject's own directions, as the on-screen prompts say them):
- yaw > 0: the subject turns to their own LEFT, so in an unmirrored camera frame the nose
  moves toward the image's RIGHT edge; yaw < 0 is a turn to their own right.
- pitch > 0: the subject looks UP (chin raised); pitch < 0 is looking down.
- roll > 0: the line from the subject's right eye to their left eye rises in the image
  (counter-clockwise as the camera sees it): the head leans toward the subject's own
  right shoulder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe FaceMesh indices. "Right"/"left" are the subject's own: the subject's right eye
# appears on the image's left.
NOSE_TIP = 1
SUBNASALE = 2
CHIN = 152
FOREHEAD = 10
R_EYE_OUTER, R_EYE_INNER = 33, 133
L_EYE_OUTER, L_EYE_INNER = 263, 362
R_MOUTH, L_MOUTH = 61, 291
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
R_CHEEK, L_CHEEK = 234, 454
# Eye contours for the eye aspect ratio: outer corner, two upper lid points, inner corner,
# two lower lid points (p1..p6 of Soukupova & Cech 2016).
R_EYE_EAR = (33, 160, 158, 133, 153, 144)
L_EYE_EAR = (263, 387, 385, 362, 380, 373)
# Landmarks on the rigid part of the face (eye corners, nose, brow ridge, cheek bones,
# forehead, chin): used by the planarity test and the rigid-geometry checks.
RIGID = (1, 4, 6, 10, 33, 133, 152, 168, 197, 234, 263, 362, 454, 70, 300, 105, 334, 127, 356)

# The forehead-to-nose-base line of a frontal face leans back from the vertical: the median
# pitch it gives on the first frames of the 27 live practice clips is 6 degrees.
PITCH_OFFSET_DEG = 6.0


@dataclass(frozen=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Yaw, pitch and roll in degrees (signs in the module docstring).

    Built from FaceMesh's own 3D landmarks: the face's x axis runs from the subject's right
    eye and cheek to their left ones, its y axis from forehead to the base of the nose. Six-point solvePnP
    was tried first and rejected: on near-frontal faces it flips between +-25 degrees (the
    planar ambiguity of PnP), while this frame stays within a degree or two.
    """
    x = (landmarks[L_EYE_OUTER] - landmarks[R_EYE_OUTER]) + (landmarks[L_CHEEK] - landmarks[R_CHEEK])
    # Forehead to the base of the nose: both on the skull, so talking, smiling or opening
    # the mouth (which moves the chin) does not tilt the axis.
    y = landmarks[SUBNASALE] - landmarks[FOREHEAD]
    nx = np.linalg.norm(x)
    if nx < 1e-6:
        return HeadPose(float("nan"), float("nan"), float("nan"))
    x = x / nx
    y = y - x * float(np.dot(x, y))
    ny = np.linalg.norm(y)
    if ny < 1e-6:
        return HeadPose(float("nan"), float("nan"), float("nan"))
    y = y / ny
    toward_camera = -np.cross(x, y)  # x right, y down, z away: x cross y points away
    pose = pose_from_axes(x, toward_camera)
    return HeadPose(pose.yaw, pose.pitch - PITCH_OFFSET_DEG, pose.roll)


def pose_from_axes(x_axis: np.ndarray, forward: np.ndarray) -> HeadPose:
    """Angles from the face's x axis and its forward (nose) direction, camera axes."""
    # The nose points toward image right (+x) when the subject turns to their own left.
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    # Looking up points the nose toward the image top (-y).
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(-x_axis[1], x_axis[0]))
    return HeadPose(float(yaw), float(pitch), float(roll))


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:2] - b[:2]))


def eye_aspect_ratio(landmarks: np.ndarray, indexes: tuple[int, ...]) -> float:
    """Eye opening: mean lid distance over eye width (about 0.25-0.35 open, < 0.15 closed)."""
    p = landmarks[list(indexes)]
    width = _dist(p[0], p[3])
    if width <= 1e-6:
        return float("nan")
    return (_dist(p[1], p[5]) + _dist(p[2], p[4])) / (2.0 * width)


def mouth_open_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width (about 0 closed, > 0.3 wide open)."""
    width = _dist(landmarks[R_MOUTH], landmarks[L_MOUTH])
    if width <= 1e-6:
        return float("nan")
    return _dist(landmarks[UPPER_LIP_INNER], landmarks[LOWER_LIP_INNER]) / width


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners, the face's unit of length here."""
    return _dist(landmarks[R_EYE_OUTER], landmarks[L_EYE_OUTER])


def smile_ratio(landmarks: np.ndarray) -> float:
    """Mouth width over inter-ocular distance; a smile widens the mouth by 10-25 %.

    Both are measured in the same frame, so the ratio does not change with distance; yaw
    shortens both about equally.
    """
    iod = inter_ocular(landmarks)
    if iod <= 1e-6:
        return float("nan")
    return _dist(landmarks[R_MOUTH], landmarks[L_MOUTH]) / iod


def mouth_corner_lift(landmarks: np.ndarray) -> float:
    """How far the mouth corners sit above the lip centre, in inter-ocular units (> 0 smiling)."""
    iod = inter_ocular(landmarks)
    if iod <= 1e-6:
        return float("nan")
    corners_y = (landmarks[R_MOUTH, 1] + landmarks[L_MOUTH, 1]) / 2.0
    centre_y = (landmarks[UPPER_LIP_INNER, 1] + landmarks[LOWER_LIP_INNER, 1]) / 2.0
    return float(centre_y - corners_y) / iod


def mouth_corner_height(landmarks: np.ndarray) -> float:
    """How far the mouth corners sit below the eyes, over the forehead-to-nose-base height.

    Measured from the outer eye corners (fixed to the skull: a frown or a squint moves the
    inner ones) along the face's vertical in the image (perpendicular to the line between
    them), so distance and roll cancel, and so does most of the foreshortening of a nod. A
    smile raises the corners toward the eyes (the value falls); talking or opening the mouth
    drops them with the jaw.
    """
    across = landmarks[L_EYE_OUTER, :2] - landmarks[R_EYE_OUTER, :2]
    n = np.linalg.norm(across)
    if n <= 1e-6:
        return float("nan")
    down = np.array([-across[1], across[0]]) / n
    height = float(np.dot(landmarks[SUBNASALE, :2] - landmarks[FOREHEAD, :2], down))
    if abs(height) <= 1e-6:
        return float("nan")
    eyes = (landmarks[R_EYE_OUTER, :2] + landmarks[L_EYE_OUTER, :2]) / 2
    corners = (landmarks[R_MOUTH, :2] + landmarks[L_MOUTH, :2]) / 2
    return float(np.dot(corners - eyes, down)) / height


def face_height_ratio(landmarks: np.ndarray) -> float:
    """Forehead-to-nose-base over inter-ocular distance: both on the skull, so fixed for a
    real face at a given pose (talking and smiling do not change it)."""
    iod = inter_ocular(landmarks)
    if iod <= 1e-6:
        return float("nan")
    return _dist(landmarks[FOREHEAD], landmarks[SUBNASALE]) / iod


def face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the landmarks' bounding box, in pixels."""
    x0, y0 = landmarks[:, 0].min(), landmarks[:, 1].min()
    x1, y1 = landmarks[:, 0].max(), landmarks[:, 1].max()
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)
