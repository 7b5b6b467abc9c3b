"""Untrusted LLM text in, a validated JSON object out, or ``AnswerError`` with the reasons.

The whole answer must be one JSON object (a single fenced ```json block is tolerated: models
add one often and it hides nothing). Prose around it, duplicate keys, NaN, deep nesting and
oversized answers are refused rather than guessed at: a guess could turn a refusal into a pass.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from jsonschema import Draft202012Validator

from .errors import AnswerError

MAX_ANSWER_CHARS = 20_000
MAX_PROBLEMS = 8
_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(.*)\n```\Z", re.DOTALL)
# Characters that would render as markup or links on the page, and raw action names.
_MARKUP = re.compile(r"[<>`*#\[\]{}|\\_]|https?:|www\.", re.IGNORECASE)
# Characters that do not show as themselves: controls, format characters (zero-width and
# direction marks, which can make text display differently from what was validated),
# surrogates, private-use and unassigned code points, line and paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_answer(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object in ``text`` once it validates against ``schema``.

    Raises ``AnswerError`` listing at most ``MAX_PROBLEMS`` problems (each under 200
    characters) for text that is empty, too long, not exactly one JSON object, or off-schema.
    """
    if not isinstance(text, str) or not text.strip():
        raise AnswerError(["the answer is empty"])
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerError([f"the answer is longer than {MAX_ANSWER_CHARS} characters"])
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise AnswerError(["the answer is nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError included
        raise AnswerError([f"the answer is not one JSON object: {exc}"[:200]]) from None
    if not isinstance(data, dict):
        raise AnswerError([f"the answer is a JSON {type(data).__name__}, not an object"])
    try:  # the schema's uniqueItems compares values recursively: a short answer can nest deep
        errors = sorted(
            Draft202012Validator(schema).iter_errors(data),
            key=lambda e: [str(p) for p in e.absolute_path],
        )
    except RecursionError:
        raise AnswerError(["the answer is nested too deeply"]) from None
    if errors:
        raise AnswerError([
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"[:200]
            for e in errors[:MAX_PROBLEMS]
        ])
    return data


def markup_problem(text: str) -> str | None:
    """Return why ``text`` is unfit to show a user as plain text, or None when it is fine.

    Refused: control, format (zero-width, direction marks), surrogate, private-use and
    unassigned characters, line and paragraph separators, markup or link characters,
    underscores (a raw action name such as ``turn_left``).
    """
    if any(unicodedata.category(ch) in _INVISIBLE for ch in text):
        return "contains control, invisible or direction characters"
    found = _MARKUP.search(text)
    if found:
        return f"contains markup or a link ({found.group(0)!r})"
    return None
