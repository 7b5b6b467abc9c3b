"""Which frames the judge sees, and at what size: a neutral baseline and each action's peak.

Candidates in priority order: the baseline frame, the peak frame of every action window,
then one contrast frame per window (windows the vision layer found unclear or not performed
first), so the model sees the change, not only the pose. The list is cut at ``max_images``,
then every image is scaled by one common factor until the request's image tokens (about
width*height/750 each) fit the budget; when that would push frames below a usable size, the
lowest-priority frame is dropped instead. Images are JPEG-encoded by the vision layer's
``encode_jpeg`` and sent in time order, labelled F1..Fn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..challenge import Step
from ..vision.evidence import VisionEvidence
from ..vision.intake import encode_jpeg
from .errors import JudgmentInputError
from .usage import PIXELS_PER_IMAGE_TOKEN, image_tokens

# Claude downscales images with a long edge over 1568 px itself; sending more is waste.
MAX_LONG_EDGE = 1568
# Under about 200 px a side, Anthropic's vision guidance says answers degrade.
MIN_SHORT_EDGE = 200
JPEG_QUALITY = 85

Frame = tuple[float, np.ndarray]


@runtime_checkable
class TimedFrames(Protocol):
    """A frame sequence that also knows its times without decoding (a stored session)."""

    times: Sequence[float]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Frame: ...


@dataclass(frozen=True)
class Keyframe:
    """One image of the judgment request.

    ``index`` is into the session's frame list; ``window`` is the 1-based number of the
    challenge step whose window contains ``t`` (None outside every window); ``role`` is
    ``baseline``, ``peak`` or ``contrast``; ``width``/``height`` are the size sent.
    """

    id: str
    index: int
    t: float
    role: str
    window: int | None
    action: str | None
    width: int
    height: int
    jpeg: bytes = field(repr=False)

    @property
    def tokens(self) -> int:
        return image_tokens(self.width, self.height)

    def describe(self) -> dict[str, Any]:
        """Return the keyframe without its pixels: for templates and the audit record."""
        return {
            "id": self.id,
            "index": self.index,
            "t": round(self.t, 2),
            "role": self.role,
            "window": self.window,
            "action": self.action,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class KeyframePlan:
    """The keyframes chosen, in time order, and how many candidates were left out."""

    keyframes: tuple[Keyframe, ...]
    dropped: int

    @property
    def image_tokens(self) -> int:
        return sum(k.tokens for k in self.keyframes)

    def by_id(self, frame_id: str) -> Keyframe:
        return next(k for k in self.keyframes if k.id == frame_id)


def select_keyframes(
    steps: Sequence[Step],
    frames: Sequence[Frame],
    evidence: VisionEvidence,
    *,
    budget: int,
    max_images: int,
) -> KeyframePlan:
    """Choose, size and encode the judgment images.

    Returns a plan whose images total at most ``budget`` estimated tokens and number at
    most ``max_images``. Raises ``JudgmentInputError`` when the evidence does not describe
    these steps, an index points outside ``frames``, or a chosen frame is not a BGR uint8
    image.
    """
    if not frames:
        raise JudgmentInputError("no frames to choose keyframes from")
    if budget < 1 or max_images < 1:
        raise JudgmentInputError("budget and max_images must be positive")
    _check_evidence(steps, frames, evidence)
    # A stored session knows its frame times without decoding a single frame; a plain list
    # of (t, image) pairs is read directly.
    times = [float(t) for t in frames.times] if isinstance(frames, TimedFrames) else [float(t) for t, _ in frames]
    images: dict[int, np.ndarray] = {}  # each chosen frame is decoded once

    def image(index: int) -> np.ndarray:
        if index not in images:
            images[index] = _image(frames, index)
        return images[index]

    chosen: list[tuple[int, str]] = []

    def add(index: int | None, role: str) -> None:
        if index is not None and all(index != i for i, _ in chosen):
            chosen.append((index, role))

    add(_baseline(evidence, times, steps), "baseline")
    for k, action in enumerate(evidence.actions):
        add(action.peak_index if action.peak_index is not None else _nearest(times, steps, k),
            "peak")
    # Unclear or failed windows get their contrast frame first: that is where a second
    # opinion is worth most.
    for k in sorted(range(len(steps)), key=lambda k: evidence.actions[k].verdict == "performed"):
        add(_contrast(times, steps, k, [i for i, _ in chosen]), "contrast")
    candidates = chosen[:max_images]

    sizes = [_capped_size(image(i)) for i, _ in candidates]
    scale = _fit(sizes, budget)
    while len(candidates) > 1 and (
        _cost(sizes, scale) > budget
        or (scale < 1 and min(min(w, h) for w, h in sizes) * scale < MIN_SHORT_EDGE)
    ):
        candidates, sizes = candidates[:-1], sizes[:-1]
        scale = _fit(sizes, budget)

    keyframes = []
    for number, ((index, role), (w, h)) in enumerate(sorted(zip(candidates, sizes)), start=1):
        width, height = max(1, int(w * scale)), max(1, int(h * scale))
        window = _window_of(times[index], steps)
        keyframes.append(Keyframe(
            id=f"F{number}",
            index=index,
            t=times[index],
            role=role,
            window=None if window is None else window + 1,
            action=None if window is None else steps[window].action,
            width=width,
            height=height,
            jpeg=_jpeg(image(index), width, height),
        ))
    return KeyframePlan(tuple(keyframes), len(chosen) - len(keyframes))


def _check_evidence(steps: Sequence[Step], frames: Sequence[Frame], ev: VisionEvidence) -> None:
    if [a.action for a in ev.actions] != [s.action for s in steps]:
        raise JudgmentInputError("the vision evidence does not describe this challenge")
    indexes = [ev.baseline_index] + [a.peak_index for a in ev.actions]
    if any(i is not None and not 0 <= i < len(frames) for i in indexes):
        raise JudgmentInputError(f"a keyframe index is outside the {len(frames)} frames")


def _image(frames: Sequence[Frame], index: int) -> np.ndarray:
    image = frames[index][1]
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        raise JudgmentInputError(f"frame {index} is not a BGR uint8 image")
    return image


def _baseline(ev: VisionEvidence, times: list[float], steps: Sequence[Step]) -> int:
    """The vision layer's neutral frame, else the last frame before the first window."""
    if ev.baseline_index is not None:
        return ev.baseline_index
    before = [i for i, t in enumerate(times) if t < steps[0].start_s]
    return before[-1] if before else 0


def _window_of(t: float, steps: Sequence[Step]) -> int | None:
    """The step whose window holds ``t``: windows are half-open, [start, end), except the
    last, which includes its end, so a frame on a shared boundary belongs to one window."""
    last = len(steps) - 1
    return next(
        (k for k, s in enumerate(steps) if s.start_s <= t < s.end_s or (k == last and t == s.end_s)),
        None,
    )


def _in_window(times: list[float], steps: Sequence[Step], k: int) -> list[int]:
    return [i for i, t in enumerate(times) if _window_of(t, steps) == k]


def _nearest(times: list[float], steps: Sequence[Step], k: int) -> int | None:
    """The frame nearest the middle of window ``k``, when the window holds any frame."""
    inside = _in_window(times, steps, k)
    middle = (steps[k].start_s + steps[k].end_s) / 2
    return min(inside, key=lambda i: abs(times[i] - middle)) if inside else None


def _contrast(times: list[float], steps: Sequence[Step], k: int, taken: list[int]) -> int | None:
    """The frame of window ``k`` farthest in time from the frames already taken in it."""
    inside = _in_window(times, steps, k)
    mine = [i for i in taken if i in inside]
    if not mine:
        return _nearest(times, steps, k)
    best = max(inside, key=lambda i: min(abs(times[i] - times[j]) for j in mine))
    return None if best in mine else best


def _capped_size(image: np.ndarray) -> tuple[int, int]:
    height, width = image.shape[:2]
    shrink = min(1.0, MAX_LONG_EDGE / max(width, height))
    return max(1, int(width * shrink)), max(1, int(height * shrink))


def _cost(sizes: list[tuple[int, int]], scale: float) -> int:
    return sum(image_tokens(max(1, int(w * scale)), max(1, int(h * scale))) for w, h in sizes)


def _fit(sizes: list[tuple[int, int]], budget: int) -> float:
    """The largest common scale (<= 1) at which the images' tokens fit ``budget``, or the
    smallest tried (0.01) when nothing does; the caller then drops an image."""
    scale = min(1.0, math.sqrt(budget * PIXELS_PER_IMAGE_TOKEN / sum(w * h for w, h in sizes)))
    while scale > 0.01 and _cost(sizes, scale) > budget:  # per-image rounding can overshoot
        scale *= 0.99
    return scale


def _jpeg(bgr: np.ndarray, width: int, height: int) -> bytes:
    return encode_jpeg(bgr, (width, height), JPEG_QUALITY)
