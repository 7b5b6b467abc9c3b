"""Action verification: did the subject perform each challenge step inside its window?

Every action is a change of one measure relative to the subject's own neutral baseline (the
frames before the first prompt), so glasses, small eyes or a camera a little to one side do
not matter, only the change does:

- turn_left / turn_right: yaw rises / falls (degrees);
- look_up / look_down: pitch rises / falls (degrees);
- blink: the eye aspect ratio of both eyes dips and recovers (a transient, so lowered eyes or
  a wink are not blinks);
- open_mouth: the inner-lip gap over mouth width rises above an absolute floor as well;
- smile: the mouth widens relative to the eyes.

A step is ``performed`` when the change reaches its threshold on enough frames inside the
window, starting inside the window; ``unclear`` when the face is missing for much of the
window or the change is borderline; ``not_performed`` otherwise. The windows of a challenge
do not overlap, so an action that happens in another step's window is out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..challenge import Step
from .evidence import ActionEvidence
from .observation import FrameObservation
from .thresholds import ActionThresholds


@dataclass(frozen=True)
class _Measure:
    name: str
    read: Callable[[FrameObservation], float | None]
    sign: int  # +1: the action raises the measure, -1: it lowers it


_MEASURES: dict[str, _Measure] = {
    "turn_left": _Measure("yaw_deg", lambda o: o.yaw, +1),
    "turn_right": _Measure("yaw_deg", lambda o: o.yaw, -1),
    "look_up": _Measure("pitch_deg", lambda o: o.pitch, +1),
    "look_down": _Measure("pitch_deg", lambda o: o.pitch, -1),
    "blink": _Measure("eye_aspect_ratio", lambda o: o.ear, -1),
    "open_mouth": _Measure("mouth_open_ratio", lambda o: o.mouth_open, +1),
    "smile": _Measure("smile_ratio", lambda o: o.smile, +1),
}


def _values(obs: Sequence[FrameObservation], read: Callable[[FrameObservation], float | None]) -> np.ndarray:
    out = np.full(len(obs), np.nan)
    for i, o in enumerate(obs):
        if o.has_face and o.n_faces == 1:
            v = read(o)
            if v is not None and np.isfinite(v):
                out[i] = v
    return out


def baseline_indexes(obs: Sequence[FrameObservation], challenge: Sequence[Step], min_frames: int) -> list[int]:
    """Frames that show the subject before any prompt: all frames before the first window,
    or the first ``min_frames`` frames with a face when fewer precede it."""
    first = challenge[0].start_s if challenge else float("inf")
    before = [i for i, o in enumerate(obs) if o.t < first and o.has_face and o.n_faces == 1]
    if len(before) >= min_frames:
        return before
    faces = [i for i, o in enumerate(obs) if o.has_face and o.n_faces == 1]
    return sorted(set(before) | set(faces[:min_frames]))


def verify_actions(obs: Sequence[FrameObservation], challenge: Sequence[Step],
                   th: ActionThresholds) -> list[ActionEvidence]:
    """One ``ActionEvidence`` per step, in challenge order."""
    base_idx = baseline_indexes(obs, challenge, th.baseline_min_frames)
    times = np.array([o.t for o in obs])
    results: list[ActionEvidence] = []
    prev_onset = -np.inf
    for step in challenge:
        m = _MEASURES[step.action]
        values = _values(obs, m.read)
        base = _baseline(step.action, values, base_idx, th)
        in_win = np.flatnonzero((times >= step.start_s) & (times < step.end_s + th.grace_s))
        ev = ActionEvidence(action=step.action, start_s=step.start_s, end_s=step.end_s,
                            verdict="unclear", measure=m.name, baseline_value=base)
        seen = in_win[np.isfinite(values[in_win])]
        if base is None or len(in_win) == 0 or len(seen) < th.min_face_share * len(in_win):
            ev.note = "face not visible for enough of the window"
            results.append(ev)
            continue
        if step.action == "blink":
            _judge_blink(ev, obs, values, base, seen, th)
        else:
            _judge_sustained(ev, obs, values, base, seen, times, step, m.sign, th)
        if ev.verdict == "performed" and ev.onset_t is not None:
            if ev.onset_t < prev_onset:
                ev.verdict, ev.in_order = "not_performed", False
                ev.note = "performed before the previous action"
            prev_onset = ev.onset_t
        results.append(ev)
    return results


def _baseline(action: str, values: np.ndarray, base_idx: list[int], th: ActionThresholds) -> float | None:
    """The subject's neutral value of the action's measure."""
    if action == "blink":
        # Eyes are open most of the time: an upper percentile of the whole session is the
        # open-eye level, robust to a wink or a blink among the first frames.
        seen = values[np.isfinite(values)]
        return float(np.percentile(seen, 75)) if len(seen) else None
    base = values[base_idx] if base_idx else np.array([])
    base = base[np.isfinite(base)]
    if not len(base):
        return None
    value = float(np.median(base))
    if action in ("turn_left", "turn_right", "look_up", "look_down"):
        # A head held far from frontal is not neutral: a camera beside the screen explains
        # a few degrees, not thirty.
        value = float(np.clip(value, -th.max_neutral_deg, th.max_neutral_deg))
    return value


def _threshold(action: str, th: ActionThresholds) -> float:
    return {
        "turn_left": th.turn_deg, "turn_right": th.turn_deg,
        "look_up": th.look_up_deg, "look_down": th.look_down_deg,
        "open_mouth": th.mouth_delta, "smile": th.smile_delta,
    }[action]


def _judge_sustained(ev: ActionEvidence, obs: Sequence[FrameObservation], values: np.ndarray, base: float,
                     seen: np.ndarray, times: np.ndarray, step: Step, sign: int, th: ActionThresholds) -> None:
    """Head movements, mouth opening and smiles: the change must hold for a few frames."""
    need = _threshold(step.action, th)
    if step.action == "smile":
        need = need * base  # relative widening of the mouth
    change = sign * (values[seen] - base)
    k = int(np.argmax(change))
    ev.peak_index, ev.peak_value = int(seen[k]), float(values[seen[k]])
    ev.peak_t = obs[ev.peak_index].t
    hits = seen[change >= need]
    if step.action == "open_mouth":
        hits = hits[values[hits] >= th.mouth_open_min]
    # The movement must start inside the window: just before the prompt the subject must not
    # already hold it (a pose kept from earlier is not a response to this prompt).
    before = np.flatnonzero((times < step.start_s) & (times >= step.start_s - th.lead_s) & np.isfinite(values))
    already = len(before) > 0 and float(np.median(sign * (values[before] - base))) >= need
    if len(hits) >= th.min_frames and not already:
        ev.verdict = "performed"
        ev.frame_indexes = [int(i) for i in hits]
        ev.onset_t = obs[int(hits[0])].t
    elif change[k] >= th.unclear_fraction * need and not already:
        ev.verdict = "unclear"
        ev.note = "movement smaller than required"
    else:
        ev.verdict = "not_performed"
        if already:
            ev.note = "already held before the prompt"


def _judge_blink(ev: ActionEvidence, obs: Sequence[FrameObservation], values: np.ndarray, base: float,
                 seen: np.ndarray, th: ActionThresholds) -> None:
    """A blink: both eyes close (EAR well under baseline) and reopen within a short time."""
    closed_level = base * th.blink_closed_ratio
    left = np.array([obs[i].ear_left for i in seen])
    right = np.array([obs[i].ear_right for i in seen])
    # Each eye against its own open level: eyes differ, and a wink must not count.
    left_open, right_open = np.percentile(left, 75), np.percentile(right, 75)
    closed = ((values[seen] <= closed_level) & (left <= left_open * th.blink_eye_ratio)
              & (right <= right_open * th.blink_eye_ratio))
    k = int(np.argmin(values[seen]))
    ev.peak_index, ev.peak_value = int(seen[k]), float(values[seen[k]])
    ev.peak_t = obs[ev.peak_index].t
    max_closed = max(1, int(round(th.blink_max_s * _fps(obs))))
    for j in np.flatnonzero(closed):
        # Count the run of closed frames from here, then require open eyes on both sides.
        run_end = j
        while run_end + 1 < len(seen) and closed[run_end + 1]:
            run_end += 1
        if run_end - j + 1 > max_closed:
            continue
        before = values[max(seen[j] - 3, 0):seen[j]]
        after = values[seen[run_end] + 1:seen[run_end] + 4]
        open_level = base * th.blink_open_ratio
        if np.nanmax(before, initial=-1) >= open_level and np.nanmax(after, initial=-1) >= open_level:
            ev.verdict = "performed"
            ev.frame_indexes = [int(i) for i in seen[j:run_end + 1]]
            ev.onset_t = obs[int(seen[j])].t
            ev.peak_index = int(seen[j + int(np.argmin(values[seen[j:run_end + 1]]))])
            ev.peak_value, ev.peak_t = float(values[ev.peak_index]), obs[ev.peak_index].t
            return
    if values[seen[k]] <= base * (1 - th.unclear_fraction * (1 - th.blink_closed_ratio)):
        ev.verdict, ev.note = "unclear", "eyes narrowed but no clear blink"
    else:
        ev.verdict = "not_performed"


def _fps(obs: Sequence[FrameObservation]) -> float:
    if len(obs) < 2:
        return 10.0
    dt = np.median(np.diff([o.t for o in obs]))
    return float(1.0 / dt) if dt > 0 else 10.0
