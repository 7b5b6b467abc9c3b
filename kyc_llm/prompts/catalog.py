"""The templates the code uses, what each is given, and the sample data the check renders.

A template may only declare variables its entry provides (the code passes nothing else),
and the sample data comes from the same builders the code calls (``llm.variables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..challenge import ACTIONS, Step
from ..llm.answers import markup_problem
from ..llm.keyframes import Keyframe
from ..llm.schemas import SCHEMAS
from ..llm.variables import (
    judgment_variables,
    local_wording_variables,
    repair_variables,
    system_variables,
    wording_variables,
)

# system: the system prompt; request: a user turn that expects JSON in ``output_schema`` and
# sets the model parameters; followup: a later user turn of the same request; local: text
# shown to users without any model (the fallback wording).
Role = Literal["system", "request", "followup", "local"]

SAMPLE_STEPS = (Step("turn_left", 0.8, 2.6), Step("blink", 2.6, 4.4), Step("smile", 4.4, 6.2))
SAMPLE_KEYFRAMES = (
    Keyframe("F1", 3, 0.3, "baseline", None, None, 640, 480, b""),
    Keyframe("F2", 16, 1.6, "peak", 1, "turn_left", 640, 480, b""),
    Keyframe("F3", 35, 3.5, "peak", 2, "blink", 640, 480, b""),
    Keyframe("F4", 52, 5.2, "peak", 3, "smile", 640, 480, b""),
)


def _one_plain_line_per_action(rendered: str, variables: dict[str, Any]) -> str | None:
    lines = rendered.splitlines()
    if len(lines) != len(variables["steps"]) or not all(line.strip() for line in lines):
        return (f"must render exactly one non-empty line per step "
                f"({len(variables['steps'])} for the sample), got {len(lines)}")
    for line in lines:
        problem = markup_problem(line)
        if problem:
            return f"line {line!r} {problem}"
    return None


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    role: Role
    sample: Callable[[], dict[str, Any]]
    output_schema: str | None = None
    check_output: Callable[[str, dict[str, Any]], str | None] | None = None

    @property
    def variables(self) -> frozenset[str]:
        """The variables the code passes to this template."""
        return frozenset(self.sample())


CATALOG: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        TemplateSpec("system", "system", lambda: system_variables("en")),
        TemplateSpec(
            "challenge_wording",
            "request",
            lambda: wording_variables(
                [s.action for s in SAMPLE_STEPS], language="en", accessibility="",
                max_chars=80, schema=SCHEMAS["challenge_wording"].sample(),
            ),
            output_schema="challenge_wording",
        ),
        TemplateSpec(
            "challenge_local",
            "local",
            # Every action of the vocabulary, so the check proves each has local wording.
            lambda: local_wording_variables(ACTIONS, language="en"),
            check_output=_one_plain_line_per_action,
        ),
        TemplateSpec(
            "movement_judgment",
            "request",
            lambda: judgment_variables(
                SAMPLE_STEPS, SAMPLE_KEYFRAMES, schema=SCHEMAS["movement_judgment"].sample()
            ),
            output_schema="movement_judgment",
        ),
        TemplateSpec(
            "answer_repair",
            "followup",
            lambda: repair_variables(
                ["actions/0/confidence: 1.5 is greater than the maximum of 1"],
                schema=SCHEMAS["movement_judgment"].sample(),
            ),
        ),
    )
}
