"""Untrusted answers: strict JSON, schema pinned to the challenge, plain-text wording."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kyc_llm.llm.answers import MAX_ANSWER_CHARS, markup_problem, parse_answer
from kyc_llm.llm.errors import AnswerError
from kyc_llm.llm.schemas import SCHEMAS, SPOOF_KINDS, judgment_schema, wording_schema

SCHEMA = judgment_schema(["turn_left", "blink"], ["F1", "F2", "F3"])
GOOD: dict[str, Any] = {
    "actions": [
        {"action": "turn_left", "performed": True, "in_window": True, "in_order": True,
         "confidence": 0.9, "frame": "F2", "note": "nose toward image right"},
        {"action": "blink", "performed": None, "in_window": None, "in_order": None,
         "confidence": 0.2, "frame": None, "note": ""},
    ],
    "spoof_signs": {k: {"present": False, "note": ""} for k in SPOOF_KINDS},
    "confidence": 0.8,
}


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    answer = copy.deepcopy(GOOD)
    target = answer
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return answer


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name].sample())


@pytest.mark.parametrize(
    "text",
    [json.dumps(GOOD), "  \n" + json.dumps(GOOD, indent=2) + "\n", f"```json\n{json.dumps(GOOD)}\n```",
     f"```\n{json.dumps(GOOD)}\n```"],
    ids=["plain", "whitespace", "json-fence", "bare-fence"],
)
def test_valid_answers_parse(text: str) -> None:
    assert parse_answer(text, SCHEMA) == GOOD


BAD_ANSWERS = {
    "empty": ("", "empty"),
    "prose": ("The person turned left and blinked.", "not one JSON object"),
    "truncated": (json.dumps(GOOD)[:-40], "not one JSON object"),
    "text-before": ("Here is my answer: " + json.dumps(GOOD), "not one JSON object"),
    "text-after": (json.dumps(GOOD) + "\nHope this helps!", "not one JSON object"),
    "two-objects": (json.dumps(GOOD) + json.dumps(GOOD), "not one JSON object"),
    "array": (json.dumps([GOOD]), "JSON list, not an object"),
    "nan": (json.dumps(GOOD).replace("0.8}", "NaN}"), "NaN is not valid JSON"),
    "duplicate-key": (json.dumps(GOOD)[:-1] + ', "confidence": 1.0}', "duplicate key 'confidence'"),
    "nested": ('{"a":' * 3000 + "1" + "}" * 3000, "nested too deeply"),
    "huge": ('{"note": "' + "x" * MAX_ANSWER_CHARS + '"}', "longer than"),
    "missing-action": (json.dumps(_with(["actions"], GOOD["actions"][:1])),
                       "actions: .* is too short"),
    "reordered": (json.dumps(_with(["actions"], GOOD["actions"][::-1])), "actions/0/action"),
    "unknown-frame": (json.dumps(_with(["actions", 0, "frame"], "F9")), "actions/0/frame"),
    "confidence-high": (json.dumps(_with(["confidence"], 1.5)), "confidence: 1.5 is greater"),
    "bool-as-number": (json.dumps(_with(["actions", 0, "confidence"], True)),
                       "actions/0/confidence"),
    "string-verdict": (json.dumps(_with(["actions", 0, "performed"], "yes")),
                       "actions/0/performed"),
    "injected-field": (json.dumps({**GOOD, "decision": "pass"}), "Additional properties"),
    "missing-spoof": (json.dumps(_with(["spoof_signs"], {"screen": {"present": False, "note": ""}})),
                      "spoof_signs: 'print' is a required property"),
    "long-note": (json.dumps(_with(["actions", 0, "note"], "n" * 201)), "actions/0/note"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_answers_raise_answer_error_with_the_reason(case: str) -> None:
    text, reason = BAD_ANSWERS[case]
    with pytest.raises(AnswerError) as caught:
        parse_answer(text, SCHEMA)
    assert caught.value.problems and all(len(p) <= 200 for p in caught.value.problems)
    assert any(re.search(reason, p) for p in caught.value.problems), caught.value.problems


def test_wording_schema_pins_the_actions_and_the_vocabulary() -> None:
    schema = wording_schema(["blink", "smile"], 20)
    good = {"steps": [{"action": "blink", "text": "Blink now"},
                      {"action": "smile", "text": "Smile please"}], "unsuitable": ["smile"]}
    assert parse_answer(json.dumps(good), schema) == good
    for bad in (
        {**good, "unsuitable": ["dance"]},
        {**good, "steps": good["steps"][::-1]},
        {"steps": [{"action": "blink", "text": "x" * 21}, good["steps"][1]]},
        {"steps": [{"action": "blink", "text": "   "}, good["steps"][1]]},
    ):
        with pytest.raises(AnswerError):
            parse_answer(json.dumps(bad), schema)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Turn your head to the left", None),
        ("Tournez la tête à gauche, s'il vous plaît", None),
        ("<b>Turn left</b>", "markup"),
        ("Turn **left**", "markup"),
        ("Do turn_left now", "markup"),
        ("See https://evil.example", "markup"),
        ("Turn left\nthen right", "control"),
        ("Turn \u202eleft", "direction"),
        ("Turn \u200fleft", "direction"),  # a direction mark, not an override
        ("Turn\u200b left", "invisible"),  # zero-width space
        ("Turn left\u2028then right", "invisible"),  # line separator
        ("Turn \ud800left", "invisible"),  # a lone surrogate
        ("\u0645\u0627\u0644 \u0631\u0623\u0633\u0643", None),  # Arabic letters are fine
    ],
)
def test_markup_problem(text: str, problem: str | None) -> None:
    found = markup_problem(text)
    assert (found is None) if problem is None else (problem in (found or ""))
