"""The action vocabulary and the challenge: which actions, in which order, in which time windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .errors import ChallengeError

# Every action here is one the vision layer can verify on its own (see vision/actions.py).
ACTIONS: tuple[str, ...] = (
    "turn_left",
    "turn_right",
    "look_up",
    "look_down",
    "blink",
    "open_mouth",
    "smile",
)


@dataclass(frozen=True)
class Step:
    """One action the user is asked to perform while its prompt is on screen.

    ``start_s``/``end_s`` are session time in seconds (time 0 is the session start).
    """

    action: str
    start_s: float
    end_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "start_s": self.start_s, "end_s": self.end_s}


def parse_challenge(raw: Iterable[Any]) -> tuple[Step, ...]:
    """Validate a challenge given as a list of ``{"action", "start_s", "end_s"}`` mappings.

    Returns the steps in order. Raises ``ChallengeError`` for an unknown action, a window that
    is empty or negative, or windows that overlap or go backwards in time.
    """
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise ChallengeError("challenge must be a list of steps")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ChallengeError(f"challenge step {i} must be an object")
        action = item.get("action")
        if action not in ACTIONS:
            raise ChallengeError(f"challenge step {i}: unknown action {action!r}")
        try:
            start, end = float(item["start_s"]), float(item["end_s"])
        except (KeyError, TypeError, ValueError):
            raise ChallengeError(f"challenge step {i}: start_s and end_s must be numbers") from None
        if not (0.0 <= start < end):
            raise ChallengeError(f"challenge step {i}: window {start}-{end} s is empty or negative")
        if steps and start < steps[-1].end_s - 1e-6:
            raise ChallengeError(f"challenge step {i}: window starts before the previous one ends")
        steps.append(Step(action, start, end))
    if not steps:
        raise ChallengeError("challenge has no steps")
    return tuple(steps)


def challenge_as_dicts(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [s.as_dict() for s in steps]
