"""Action verification: did the subject perform each challenge step inside its window?

Every action is a change of one measure relative to the subject's own levels, so glasses,
small eyes or a camera a little to one side do not matter, only the change does:

- turn_left / turn_right: yaw rises / falls (degrees);
- look_up / look_down: pitch rises / falls (degrees);
- blink: the eye aspect ratio of both eyes dips and recovers (a transient, so lowered eyes or
  a wink are not blinks);
- open_mouth: the inner-lip gap over mouth width rises above an absolute floor as well;
- smile: the mouth widens relative to the eyes, counted up by how far its corners rise
  toward the eyes while the head stays still (a closed-mouth smile widens the mouth less but
  lifts the corners; talking drops them with the jaw).

The neutral baseline is the median of the frames before the first prompt (for blinks, the
open-eye level of the whole session). A head movement is measured from the pose just before
its own window (the ``lead_s`` before it) or from the baseline, whichever lies further against
the asked direction, so a user who starts turned is judged on the movement they make; it must
also end clearly past the neutral pose (the baseline, or the reference when that is nearer
frontal; frontal itself when both are far from it) on the asked side: coming back from the
opposite turn is not the asked turn. A pose already held before the prompt is no response.

A step is ``performed`` when the change reaches its threshold on consecutive frames inside
the window for ``min_hold_s``, starting inside the window; ``unclear`` when the face is
missing for much of the window, the change is borderline, or the head was not frontal at
the start; ``not_performed`` otherwise. A turn deep enough to leave FaceMesh's range loses
the face: frames lost between a face tracked turning out the asked way and the face coming
back still turned (``ActionEvidence.lost_frames``) hold the turn and count as showing the
subject (``VisionEvidence.turn_lost_frames``), never a gap that a turned face does not bracket.
A blink is a short closure of both eyes with open eyes before and after; a closure seen in
one frame only (what 8-12 fps shows of a quick blink) counts when it is deep, with the eyes
open within ``blink_max_s`` on both sides. The windows of a challenge do not overlap, so an
action that happens in another step's window is out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from ..challenge import Step
from . import geometry
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
        if step.action == "smile" and base is not None:
            values = self.smile_values(values)
        ev = ActionEvidence(action=step.action, start_s=step.start_s, end_s=step.end_s,
                            verdict="unclear", measure=m.name, baseline_value=base)
        in_win = np.flatnonzero((self.times >= step.start_s) & (self.times < step.end_s + self.th.grace_s))
        if len(in_win) == 0:
            # No frame at all while the prompt was shown: nothing shows the action.
            ev.verdict, ev.note = "not_performed", "no frames during the window"
            return ev
        ref = base
        if base is not None and step.action in _POSE_ACTIONS:
            ref = self.reference(values, step, base, m.sign)
            ev.reference_value = ref
            if step.action in _TURNS:
                ev.lost_frames = self.lost_in_turn(values, step, ref, m.sign)
        seen = in_win[np.isfinite(values[in_win])]
        lost_in_win = np.intersect1d(in_win, ev.lost_frames)
        if base is None or len(seen) + len(lost_in_win) < self.th.min_face_share * len(in_win):
            ev.note = "face not visible for enough of the window"
            return ev
        if step.action == "blink":
            _judge_blink(ev, self.obs, values, base, seen, self.th)
        else:
            _judge_sustained(ev, self, values, base, ref, seen, step, m.sign)
            if (ev.verdict == "not_performed" and step.action in _POSE_ACTIONS
                    and abs(base) > self.th.max_neutral_deg):
                # Judged against a head that was not frontal to begin with: a human looks.
                ev.verdict, ev.note = "unclear", "head not frontal before the first prompt"
        return ev

    def smile_values(self, width: np.ndarray) -> np.ndarray:
        """The mouth width ratio of each frame, scaled up by how far the mouth corners rose
        toward the eyes (the baseline's corner height over the frame's, when above 1).

        A broad smile widens the mouth; a closed-mouth smile widens it less but lifts the
        corners, which talking does not (the jaw drops them). A falling corner is not held
        against a widening mouth: an open-mouth smile or a laugh drops the jaw. The rise
        counts only while the head stays within a borderline movement of its baseline pose,
        since nodding or turning shifts the corners against the eyes in the image.
        """
        obs, th, idx = self.obs, self.th, self.base_idx
        height = _values(obs, lambda o: geometry.mouth_corner_height(o.landmarks))
        yaw, pitch = _values(obs, lambda o: o.yaw), _values(obs, lambda o: o.pitch)
        bases = [np.nanmedian(a[idx]) if idx and np.isfinite(a[idx]).any() else np.nan
                 for a in (height, yaw, pitch)]
        h0, yaw0, pitch0 = bases
        still = ((np.abs(yaw - yaw0) < th.unclear_fraction * th.turn_deg)
                 & (np.abs(pitch - pitch0) < th.unclear_fraction * min(th.look_up_deg, th.look_down_deg)))
        with np.errstate(invalid="ignore", divide="ignore"):
            rise = np.where(still & (height > 0) & (h0 > 0), h0 / height, 1.0)
        return width * np.maximum(np.nan_to_num(rise, nan=1.0), 1.0)

    def reference(self, values: np.ndarray, step: Step, base: float, sign: int) -> float:
        """The pose a head movement is measured from: the median of the ``lead_s`` before its
        window (where the head is when the prompt appears) or the session baseline, whichever
        lies further against the asked direction. A head that starts turned the other way is
        judged on its whole movement; one that starts moving just before the prompt is not cut
        short (holding the pose before the prompt is refused separately)."""
        before = np.flatnonzero((self.times < step.start_s) & (self.times >= step.start_s - self.th.lead_s)
                                & np.isfinite(values))
        if not len(before):
            return base
        local = float(np.median(values[before]))
        return local if sign * local < sign * base else base

    def lost_in_turn(self, values: np.ndarray, step: Step, ref: float, sign: int) -> list[int]:
        """Frames without a face inside a turn that went past FaceMesh's range.

        A gap of faceless frames counts only when the face was tracked turning out into it
        inside the window (its last frame before the gap at least ``unclear_fraction`` of the
        threshold the asked way, and the furthest the head had turned in the window so far)
        and comes back out of it still turned the asked way by as much. Only frames up to
        ``lead_s`` after the window count. A covered camera or a face that leaves the view
        has no such turned face on both sides of the gap.
        """
        th, obs = self.th, self.obs
        near = th.unclear_fraction * th.turn_deg
        out: list[int] = []
        i, n = 0, len(obs)
        while i < n:
            if obs[i].n_faces != 0:
                i += 1
                continue
            j = i
            while j + 1 < n and obs[j + 1].n_faces == 0:
                j += 1
            a, b = i - 1, j + 1  # the tracked frames on either side of the gap
            i = j + 1
            if a < 0 or b >= n or not (np.isfinite(values[a]) and np.isfinite(values[b])):
                continue
            if not step.start_s <= self.times[a] < step.end_s + th.grace_s:
                continue
            into = np.flatnonzero((self.times >= step.start_s) & (np.arange(n) <= a) & np.isfinite(values))
            turned_out = sign * (values[a] - ref)
            if (turned_out >= near and turned_out >= np.max(sign * (values[into] - ref))
                    and sign * (values[b] - ref) >= near):
                out.extend(k for k in range(a + 1, b) if self.times[k] < step.end_s + th.lead_s)
        return out


_POSE_ACTIONS = ("turn_left", "turn_right", "look_up", "look_down")
_TURNS = ("turn_left", "turn_right")


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


def _judge_sustained(ev: ActionEvidence, ctx: _Context, values: np.ndarray, base: float, ref: float,
                     seen: np.ndarray, step: Step, sign: int) -> None:
    """Head movements, mouth opening and smiles: the change from ``ref`` must hold on
    consecutive frames for ``min_hold_s``; isolated frames (tracking glitches, a word spoken)
    do not count. Frames lost inside a tracked turn (``ev.lost_frames``) hold the turn."""
    th, obs = ctx.th, ctx.obs
    need = _threshold(step.action, th)
    if step.action == "smile":
        need = need * base  # relative widening of the mouth
    change = sign * (values[seen] - ref)
    if step.action in _POSE_ACTIONS:
        # A head movement ends clearly past the subject's neutral pose on the asked side (more
        # than a borderline movement past it): coming back from the opposite turn changes the
        # pose from the reference, but is not the movement asked for. The neutral pose is the
        # baseline or the reference, whichever is nearer frontal, or frontal itself when both
        # are further from it than max_neutral_deg (a head turned that far is not at rest).
        # Frames short of it count by how far past it they are.
        neutral = min(base, ref, key=abs)
        if abs(neutral) > th.max_neutral_deg:
            neutral = 0.0
        past = sign * (values[seen] - neutral)
        change = np.where(past >= th.unclear_fraction * need, change, np.minimum(change, past))
    k = int(np.argmax(change))
    ev.peak_index, ev.peak_value = int(seen[k]), float(values[seen[k]])
    ev.peak_t = obs[ev.peak_index].t
    hits = seen[change >= need]
    if step.action == "open_mouth":
        hits = hits[values[hits] >= th.mouth_open_min]
    lost = np.array(ev.lost_frames, dtype=int)
    run = _longest_run(np.union1d(hits, lost).astype(int))
    if len(run) and not np.isin(run, hits).any():
        run = run[:0]  # a gap alone, with no tracked frame over the threshold, shows no turn
    # The movement must start inside the window: just before the prompt the subject must not
    # already hold it (a pose kept from earlier is not a response to this prompt).
    times = ctx.times
    before = np.flatnonzero((times < step.start_s) & (times >= step.start_s - th.lead_s) & np.isfinite(values))
    already = len(before) > 0 and float(np.median(sign * (values[before] - base))) >= need
    if len(run) >= ctx.run_frames and not already:
        ev.verdict = "performed"
        ev.frame_indexes = [int(i) for i in run[np.isin(run, hits)]]
        ev.onset_t = obs[ev.frame_indexes[0]].t
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
    under the open level, each eye against its own), no longer than ``blink_max_s``, with the
    eyes open (``blink_open_ratio`` of the open level) within three frames before and after.

    At 8-12 fps a quick blink is often seen closed in one frame only, and the lids take longer
    to reopen than to close, so the frames after it are still half open. A one-frame closure
    that is deep (``blink_deep_ratio`` of the open level) has the whole ``blink_max_s`` on
    each side to show the eyes open. Narrowed eyes (a smile squeezes them, lowered eyes) stay
    closed over several frames, so they do not get the longer reach.
    """
    left = np.array([obs[i].ear_left for i in seen])
    right = np.array([obs[i].ear_right for i in seen])
    # Each eye against its own open level: eyes differ, and a wink must not count.
    left_open, right_open = np.percentile(left, 75), np.percentile(right, 75)
    closed = ((values[seen] <= base * th.blink_closed_ratio) & (left <= left_open * th.blink_eye_ratio)
              & (right <= right_open * th.blink_eye_ratio))
    max_closed = max(1, int(round(th.blink_max_s * _fps(obs))))
    open_level = base * th.blink_open_ratio
    times = np.array([o.t for o in obs])
    runs, j = [], 0
    while j < len(seen):
        if not closed[j]:
            j += 1
            continue
        end = j  # the run of closed frames that starts here
        while end + 1 < len(seen) and closed[end + 1] and seen[end + 1] == seen[end] + 1:
            end += 1
        if end - j + 1 <= max_closed:
            first, last = int(seen[j]), int(seen[end])
            if end == j and values[first] <= base * th.blink_deep_ratio:
                before = values[(times >= times[first] - th.blink_max_s) & (times < times[first])]
                after = values[(times > times[last]) & (times <= times[last] + th.blink_max_s)]
            else:
                before = values[max(first - 3, 0):first]
                after = values[last + 1:last + 4]
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
