"""JSON schemas of the LLM answers, built per request so they pin the server's facts.

A schema built for one challenge accepts only that challenge's actions, in the server's
order, and only the frame ids actually sent: an answer about anything else fails validation
instead of reaching the decision. Templates name their schema in the header
(``output_schema``); ``SCHEMAS`` maps those names to builders and sample arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..challenge import ACTIONS

SPOOF_KINDS = ("screen", "print", "mask", "synthetic")
NOTE_MAX_CHARS = 200
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _fixed_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """An array of exactly these items, in this order."""
    return {
        "type": "array",
        "prefixItems": items,
        "items": False,
        "minItems": len(items),
        "maxItems": len(items),
    }


def _object(properties: dict[str, Any], required: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties if required is None else required),
        "properties": properties,
    }


def wording_schema(actions: Sequence[str], max_chars: int) -> dict[str, Any]:
    """Return the schema of a challenge-wording answer for ``actions`` (in that order).

    Each step's text is 3..``max_chars`` characters; ``unsuitable`` optionally lists actions
    of the vocabulary the model finds unfit for the stated accessibility needs.
    """
    steps = [
        _object({
            "action": {"const": action},
            "text": {"type": "string", "minLength": 3, "maxLength": max_chars, "pattern": r"\S"},
        })
        for action in actions
    ]
    return {
        "$schema": _DRAFT,
        **_object(
            {
                "steps": _fixed_list(steps),
                "unsuitable": {
                    "type": "array",
                    "items": {"enum": list(ACTIONS)},
                    "uniqueItems": True,
                },
            },
            required=["steps"],
        ),
    }


def judgment_schema(actions: Sequence[str], frame_ids: Sequence[str]) -> dict[str, Any]:
    """Return the schema of a movement-judgment answer.

    One verdict per action in ``actions`` order, each citing one of ``frame_ids`` (or null);
    four spoof signs (screen, print, mask, synthetic) with a note; an overall confidence.
    """
    frame = {"enum": [*frame_ids, None]}
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    note = {"type": "string", "maxLength": NOTE_MAX_CHARS}
    tri_state = {"type": ["boolean", "null"]}
    verdicts = [
        _object({
            "action": {"const": action},
            "performed": tri_state,
            "in_window": tri_state,
            "in_order": tri_state,
            "confidence": unit,
            "frame": frame,
            "note": note,
        })
        for action in actions
    ]
    sign = _object({"present": {"type": "boolean"}, "note": note})
    return {
        "$schema": _DRAFT,
        **_object({
            "actions": _fixed_list(verdicts),
            "spoof_signs": _object({kind: sign for kind in SPOOF_KINDS}),
            "confidence": unit,
        }),
    }


@dataclass(frozen=True)
class SchemaEntry:
    """A schema builder and the arguments the template check builds a sample with."""

    build: Callable[..., dict[str, Any]]
    sample_args: dict[str, Any]

    def sample(self) -> dict[str, Any]:
        return self.build(**self.sample_args)


SCHEMAS: dict[str, SchemaEntry] = {
    "challenge_wording": SchemaEntry(
        wording_schema, {"actions": ["turn_left", "blink", "smile"], "max_chars": 80}
    ),
    "movement_judgment": SchemaEntry(
        judgment_schema,
        {"actions": ["turn_left", "blink", "smile"], "frame_ids": ["F1", "F2", "F3", "F4"]},
    ),
}
