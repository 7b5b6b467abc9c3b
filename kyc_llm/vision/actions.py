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

A step is ``performed`` when the change reaches its threshold on consecutive frames inside
the window for ``min_hold_s``, starting inside the window; ``unclear`` when the face is
missing for much of the window, the change is borderline, or the head was not frontal at
the start; ``not_performed`` otherwise. The windows of a challenge do not overlap, so an
action that happens in another step's window is out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    """One ``ActionEvidence`` per step, in challenge order.

    A step not performed in its own window but performed in another step's window is marked
    ``in_order=False`` (the sequence was done out of order). Blinks are left out of that
    search: people blink every few seconds, so a blink elsewhere shows nothing about order.
    """
    ctx = _Context(obs, challenge, th)
    results = [ctx.verify(step) for step in challenge]
    for i, (step, ev) in enumerate(zip(challenge, results)):
        if ev.verdict != "not_performed" or step.action == "blink":
            continue
        for j, other in enumerate(challenge):
            if j != i and ctx.verify(replace(step, start_s=other.start_s, end_s=other.end_s)).verdict == "performed":
                ev.in_order = False
                ev.note = f"performed in the window of step {j + 1} ({other.action}) instead"
                break
    return results


class _Context:
    """What every step of one session shares: the frames, their times and the baseline."""

    def __init__(self, obs: Sequence[FrameObservation], challenge: Sequence[Step], th: ActionThresholds) -> None:
        self.obs, self.th = obs, th
        self.times = np.array([o.t for o in obs])
        self.base_idx = baseline_indexes(obs, challenge, th.baseline_min_frames)
        self.run_frames = max(2, int(np.ceil(th.min_hold_s * _fps(obs) - 1e-6)))

    def verify(self, step: Step) -> ActionEvidence:
        m = _MEASURES[step.action]
        values = _values(self.obs, m.read)
        base = _baseline(step.action, values, self.base_idx)
        ev = ActionEvidence(action=step.action, start_s=step.start_s, end_s=step.end_s,
                            verdict="unclear", measure=m.name, baseline_value=base)
        in_win = np.flatnonzero((self.times >= step.start_s) & (self.times < step.end_s + self.th.grace_s))
        if len(in_win) == 0:
            # No frame at all while the prompt was shown: nothing shows the action.
            ev.verdict, ev.note = "not_performed", "no frames during the window"
            return ev
        seen = in_win[np.isfinite(values[in_win])]
        if base is None or len(seen) < self.th.min_face_share * len(in_win):
            ev.note = "face not visible for enough of the window"
            return ev
        if step.action == "blink":
            _judge_blink(ev, self.obs, values, base, seen, self.th)
        else:
            _judge_sustained(ev, self, values, base, seen, step, m.sign)
            if (ev.verdict == "not_performed" and step.action in _POSE_ACTIONS
                    and abs(base) > self.th.max_neutral_deg):
                # Judged against a head that was not frontal to begin with: a human looks.
                ev.verdict, ev.note = "unclear", "head not frontal before the first prompt"
        return ev


_POSE_ACTIONS = ("turn_left", "turn_right", "look_up", "look_down")


def _baseline(action: str, values: np.ndarray, base_idx: list[int]) -> float | None:
    """The subject's neutral value of the action's measure (None when there is none)."""
    if action == "blink":
        # Eyes are open most of the time: an upper percentile of the whole session is the
        # open-eye level, robust to a wink or a blink among the first frames.
        seen = values[np.isfinite(values)]
        return float(np.percentile(seen, 75)) if len(seen) else None
    base = values[base_idx] if base_idx else np.array([])
    base = base[np.isfinite(base)]
    return float(np.median(base)) if len(base) else None


def _threshold(action: str, th: ActionThresholds) -> float:
    return {
        "turn_left": th.turn_deg, "turn_right": th.turn_deg,
        "look_up": th.look_up_deg, "look_down": th.look_down_deg,
        "open_mouth": th.mouth_delta, "smile": th.smile_delta,
    }[action]


def _longest_run(indexes: np.ndarray) -> np.ndarray:
    """The longest run of consecutive frame indexes in a sorted index array."""
    if len(indexes) == 0:
        return indexes
    breaks = np.flatnonzero(np.diff(indexes) != 1) + 1
    runs = np.split(indexes, breaks)
    return max(runs, key=len)


def _judge_sustained(ev: ActionEvidence, ctx: _Context, values: np.ndarray, base: float,
                     seen: np.ndarray, step: Step, sign: int) -> None:
    """Head movements, mouth opening and smiles: the change must hold on consecutive frames
    for ``min_hold_s``; isolated frames (tracking glitches, a word spoken) do not count."""
    th, obs = ctx.th, ctx.obs
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
    run = _longest_run(hits)
    # The movement must start inside the window: just before the prompt the subject must not
    # already hold it (a pose kept from earlier is not a response to this prompt).
    times = ctx.times
    before = np.flatnonzero((times < step.start_s) & (times >= step.start_s - th.lead_s) & np.isfinite(values))
    already = len(before) > 0 and float(np.median(sign * (values[before] - base))) >= need
    if len(run) >= ctx.run_frames and not already:
        ev.verdict = "performed"
        ev.frame_indexes = [int(i) for i in run]
        ev.onset_t = obs[int(run[0])].t
    elif change[k] >= th.unclear_fraction * need and not already:
        ev.verdict = "unclear"
        ev.note = "movement smaller or shorter than required"
    else:
        ev.verdict = "not_performed"
        if already:
            ev.note = "already held before the prompt"


def _blink_runs(obs: Sequence[FrameObservation], values: np.ndarray, base: float, seen: np.ndarray,
                th: ActionThresholds) -> list[np.ndarray]:
    """Every blink among the frames ``seen``: runs of frames with both eyes closed (EAR well
    under the open level, each eye against its own) that reopen within ``blink_max_s``."""
    left = np.array([obs[i].ear_left for i in seen])
    right = np.array([obs[i].ear_right for i in seen])
    # Each eye against its own open level: eyes differ, and a wink must not count.
    left_open, right_open = np.percentile(left, 75), np.percentile(right, 75)
    closed = ((values[seen] <= base * th.blink_closed_ratio) & (left <= left_open * th.blink_eye_ratio)
              & (right <= right_open * th.blink_eye_ratio))
    max_closed = max(1, int(round(th.blink_max_s * _fps(obs))))
    open_level = base * th.blink_open_ratio
    runs, j = [], 0
    while j < len(seen):
        if not closed[j]:
            j += 1
            continue
        end = j  # the run of closed frames that starts here
        while end + 1 < len(seen) and closed[end + 1] and seen[end + 1] == seen[end] + 1:
            end += 1
        if end - j + 1 <= max_closed:
            before = values[max(seen[j] - 3, 0):seen[j]]
            after = values[seen[end] + 1:seen[end] + 4]
            if np.nanmax(before, initial=-1) >= open_level and np.nanmax(after, initial=-1) >= open_level:
                runs.append(seen[j:end + 1])
        j = end + 1
    return runs


def blink_times(obs: Sequence[FrameObservation], th: ActionThresholds) -> list[float]:
    """Session times of every blink in the whole session (for blink-dynamics features)."""
    values = _values(obs, _MEASURES["blink"].read)
    seen = np.flatnonzero(np.isfinite(values))
    base = _baseline("blink", values, [])
    if base is None or len(seen) < 3:
        return []
    return [obs[int(run[0])].t for run in _blink_runs(obs, values, base, seen, th)]


def _judge_blink(ev: ActionEvidence, obs: Sequence[FrameObservation], values: np.ndarray, base: float,
                 seen: np.ndarray, th: ActionThresholds) -> None:
    """A blink: both eyes close and reopen within a short time, inside the window."""
    k = int(np.argmin(values[seen]))
    ev.peak_index, ev.peak_value = int(seen[k]), float(values[seen[k]])
    ev.peak_t = obs[ev.peak_index].t
    runs = _blink_runs(obs, values, base, seen, th)
    if runs:
        run = runs[0]
        ev.verdict = "performed"
        ev.frame_indexes = [int(i) for i in run]
        ev.onset_t = obs[int(run[0])].t
        ev.peak_index = int(run[int(np.argmin(values[run]))])
        ev.peak_value, ev.peak_t = float(values[ev.peak_index]), obs[ev.peak_index].t
    elif values[seen[k]] <= base * (1 - th.unclear_fraction * (1 - th.blink_closed_ratio)):
        ev.verdict, ev.note = "unclear", "eyes narrowed but no clear blink"
    else:
        ev.verdict = "not_performed"


def _fps(obs: Sequence[FrameObservation]) -> float:
    if len(obs) < 2:
        return 10.0
    dt = np.median(np.diff([o.t for o in obs]))
    return float(1.0 / dt) if dt > 0 else 10.0
