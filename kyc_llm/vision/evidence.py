"""What the vision layer concludes about a session: the shapes other layers consume.

The LLM layer picks keyframes from ``VisionEvidence`` (``baseline_index`` and each action's
``peak_index``), and the decision fuses it with the LLM judgment. Everything here is plain
data with ``as_dict()`` for storage and the operator API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["performed", "not_performed", "unclear"]


@dataclass
class ActionEvidence:
    """Whether one challenge step was performed inside its window.

    ``peak_value`` and ``baseline_value`` are in the action's own measure (degrees of yaw or
    pitch, eye aspect ratio, mouth-opening ratio, smile ratio: the mouth width over the eye
    distance, counted up by how far the corners rose); ``reference_value`` is what a
    head movement is measured from (the pose just before its window); ``frame_indexes`` are
    the indexes (into the session's frame list) of the frames that show the action;
    ``lost_frames`` the frames where a turn went past what FaceMesh tracks (the face tracked
    turning out in the asked direction before them and still turned after them).
    """

    action: str
    start_s: float
    end_s: float
    verdict: Verdict
    measure: str
    baseline_value: float | None = None
    reference_value: float | None = None
    peak_value: float | None = None
    peak_index: int | None = None
    peak_t: float | None = None
    onset_t: float | None = None
    frame_indexes: list[int] = field(default_factory=list)
    lost_frames: list[int] = field(default_factory=list)
    in_order: bool = True
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Signal:
    """One presentation-attack signal: a score in [0, 1] (1 = attack-like) and its features."""

    name: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    available: bool = True  # False when there was not enough data to compute it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VisionEvidence:
    """The vision layer's whole account of a session."""

    n_frames: int
    face_frames: int
    multi_face_frames: int
    baseline_index: int | None  # a neutral, frontal frame: the LLM's reference keyframe
    actions: list[ActionEvidence]
    signals: dict[str, Signal]
    quality: dict[str, float]
    patch_mismatches: int = 0  # frames whose lossless patch did not match them (a tampered upload)

    @property
    def turn_lost_frames(self) -> int:
        """Frames without a face that a tracked turn explains (``ActionEvidence.lost_frames``):
        the subject turned beyond FaceMesh's range, so they are not "no face" frames."""
        return len({i for a in self.actions for i in a.lost_frames})

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_frames": self.n_frames,
            "face_frames": self.face_frames,
            "multi_face_frames": self.multi_face_frames,
            "baseline_index": self.baseline_index,
            "actions": [a.as_dict() for a in self.actions],
            "signals": {k: s.as_dict() for k, s in self.signals.items()},
            "quality": dict(self.quality),
            "patch_mismatches": self.patch_mismatches,
            "turn_lost_frames": self.turn_lost_frames,
        }
