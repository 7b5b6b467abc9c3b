"""The variables each prompt template receives: one builder per template, used both by the
code that sends the prompt and by the template check's sample render, so a template that
checks is a template that renders in production.

Everything here is server-generated (actions from the vocabulary, times, frame ids, schema
text); no user-supplied text reaches a prompt.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..challenge import Step
from .keyframes import Keyframe


def _schema_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))


def system_variables(language: str) -> dict[str, Any]:
    return {"language": language}


def wording_variables(
    actions: Sequence[str],
    *,
    language: str,
    accessibility: str,
    max_chars: int,
    schema: dict[str, Any],
) -> dict[str, Any]:
    """``accessibility`` is a server-chosen description of needs (never user text), or ''."""
    return {
        "steps": [{"number": n, "action": a} for n, a in enumerate(actions, start=1)],
        "language": language,
        "accessibility": accessibility,
        "max_chars": max_chars,
        "schema_json": _schema_json(schema),
    }


def local_wording_variables(actions: Sequence[str], *, language: str) -> dict[str, Any]:
    return {
        "steps": [{"number": n, "action": a} for n, a in enumerate(actions, start=1)],
        "language": language,
    }


def judgment_variables(
    steps: Sequence[Step], keyframes: Sequence[Keyframe], *, schema: dict[str, Any]
) -> dict[str, Any]:
    return {
        "actions": [
            {"number": n, "action": s.action, "start_s": round(s.start_s, 2),
             "end_s": round(s.end_s, 2)}
            for n, s in enumerate(steps, start=1)
        ],
        "frames": [k.describe() for k in keyframes],
        "schema_json": _schema_json(schema),
    }


def repair_variables(problems: Sequence[str], *, schema: dict[str, Any]) -> dict[str, Any]:
    """``problems`` come from validating the model's own answer, not from user input."""
    return {"problems": list(problems), "schema_json": _schema_json(schema)}
