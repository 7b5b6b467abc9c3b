"""The session pipeline: frames and their texture patches in, per-frame feedback out, vision
evidence at the end.

The server and the evaluation command both use ``SessionAnalyzer``, so what is measured on
the practice clips is what the service does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..challenge import Step
from ..errors import FrameError
from . import quality, texture
from .actions import baseline_indexes, blink_times, verify_actions
from .evidence import VisionEvidence
from .intake import Patch, load_frame_unscaled, normalise_for_analysis
from .observation import FrameObservation, observe
from .signals import all_signals
from .thresholds import QualityThresholds, Thresholds

if TYPE_CHECKING:  # a type only: facemesh loads mediapipe, which the service loads after gunicorn forks
    from .facemesh import FaceMesh


class SessionAnalyzer:
    """Accumulates the observations of one session; any FaceMesh graph may measure its frames."""

    def __init__(self, mesh: FaceMesh, thresholds: Thresholds) -> None:
        self._mesh = mesh
        self.thresholds = thresholds
        self.observations: list[FrameObservation] = []

    def add(self, source: bytes | str | np.ndarray, t: float) -> FrameObservation:
        """Decode and observe one frame at session time ``t`` (seconds, non-decreasing).

        Raises ``FrameError`` for a bad frame, ``ValueError`` for time going backwards.
        """
        if self.observations and t < self.observations[-1].t:
            raise ValueError("frame times must not go backwards")
        full = load_frame_unscaled(source)
        bgr = normalise_for_analysis(full)
        obs = observe(bgr, t, self._mesh.process(bgr))
        obs.scale = bgr.shape[1] / full.shape[1]
        self.observations.append(obs)
        return obs

    def add_patch(self, index: int, source: bytes | str | np.ndarray, patch: Patch) -> str:
        """Attach the lossless texture patch of frame ``index`` (``source``: that frame as
        uploaded); see ``attach_patch``."""
        return attach_patch(self.observations[index], load_frame_unscaled(source), patch, self.thresholds)

    def add_observation(self, obs: FrameObservation) -> None:
        """Append an observation made elsewhere (e.g. restored after a restart)."""
        self.observations.append(obs)

    def evidence(self, challenge: Sequence[Step]) -> VisionEvidence:
        return build_evidence(self.observations, challenge, self.thresholds)


PATCH_OUTCOMES = ("checked", "mismatch", "no_face", "rescaled", "off_face", "duplicate")


def attach_patch(obs: FrameObservation, full: np.ndarray, patch: Patch, th: Thresholds) -> str:
    """Measure the screen cue of one observed frame on its lossless patch, sent after the
    frame once the server had said where the face is in it (so it lands on the face however
    the head moves). ``full`` is the frame as uploaded. Returns what became of the patch:

    - ``checked``: it shows the frame's own pixels; the texture now comes from it;
    - ``mismatch``: it does not (``obs.patch_mismatch``: only a client other than the page
      sends such a patch, to hide a screen's pixel grid);
    - ``no_face``: the frame shows no face, so there is nothing to measure;
    - ``rescaled``: the frame was analysed at another scale (over 960 px), where the patch's
      pixel grid no longer lines up;
    - ``off_face``: it shows the frame's pixels, but not the spectral window around the nose
      (nothing is measured; the frame may still get its patch);
    - ``duplicate``: the frame already had its patch (the first one counts).

    Raises ``FrameError`` for a patch outside its frame.
    """
    if not patch.fits(full.shape[1], full.shape[0]):
        raise FrameError("the texture patch lies outside its frame")
    if obs.patch_mismatch or (obs.texture is not None and obs.texture.lossless):
        return "duplicate"
    if not obs.has_face:
        return "no_face"
    a = th.attacks
    if not patch.matches(full, a.patch_max_difference, a.patch_min_detail, a.patch_min_jpeg_difference):
        obs.patch_mismatch = True
        return "mismatch"
    bgr = normalise_for_analysis(full)
    if bgr is not full:
        return "rescaled"
    measured = texture.measure(bgr, quality.face_crop(bgr, obs.box), obs.box, obs.nose, patch)
    if not measured.lossless:
        return "off_face"
    obs.texture = measured
    return "checked"


def build_evidence(obs: Sequence[FrameObservation], challenge: Sequence[Step], th: Thresholds) -> VisionEvidence:
    """Everything the vision layer concludes about a session's frames and challenge."""
    one_face = [o for o in obs if o.has_face and o.n_faces == 1]
    base = baseline_indexes(obs, challenge, th.actions.baseline_min_frames)
    return VisionEvidence(
        n_frames=len(obs),
        face_frames=len(one_face),
        multi_face_frames=sum(1 for o in obs if o.n_faces > 1),
        baseline_index=_most_frontal(obs, base),
        actions=verify_actions(obs, challenge, th.actions),
        signals=all_signals(obs, th.attacks, blink_times(obs, th.actions)),
        quality=_quality_summary(one_face, th.quality),
        patch_mismatches=sum(1 for o in obs if o.patch_mismatch),
    )


def _most_frontal(obs: Sequence[FrameObservation], candidates: list[int]) -> int | None:
    if not candidates:
        return None
    return min(candidates, key=lambda i: abs(obs[i].yaw or 0.0) + abs(obs[i].pitch or 0.0))


def low_quality_issues(o: FrameObservation, q: QualityThresholds) -> list[str]:
    """Why a frame with a face is poor for verification (empty when it is fine)."""
    issues = []
    if o.quality is None:
        return ["no_face"]
    if o.quality.brightness < q.min_brightness:
        issues.append("too_dark")
    elif o.quality.brightness > q.max_brightness:
        issues.append("too_bright")
    if o.quality.sharpness < q.min_sharpness:
        issues.append("blurred")
    if o.quality.face_size < q.min_face_size:
        issues.append("too_far")
    if o.quality.centre_offset > q.max_centre_offset:
        issues.append("not_centred")
    return issues


def _quality_summary(faces: list[FrameObservation], q: QualityThresholds) -> dict[str, float]:
    if not faces:
        return {"low_quality_share": 1.0}
    low = sum(1 for o in faces if low_quality_issues(o, q))
    return {
        "low_quality_share": low / len(faces),
        "brightness": float(np.median([o.quality.brightness for o in faces])),
        "sharpness": float(np.median([o.quality.sharpness for o in faces])),
        "face_size": float(np.median([o.quality.face_size for o in faces])),
    }


def frame_issues(obs: FrameObservation, q: QualityThresholds) -> dict[str, Any]:
    """What one frame shows for the page's guidance: a face or not, one or several, centred,
    and what the user should change, if anything (``sessions.analysis.frame_feedback`` turns
    it into the hint the page shows)."""
    issues = ["no_face"] if not obs.has_face else low_quality_issues(obs, q)
    if obs.n_faces > 1:
        issues.append("multiple_faces")
    nose = None if obs.nose is None else [round(v) for v in obs.nose]  # where this frame's patch goes
    return {
        "face_found": obs.has_face,
        "one_face": obs.n_faces == 1,
        "centred": obs.has_face and obs.quality.centre_offset <= q.max_centre_offset,
        "issues": issues,
        "nose": nose,
    }
