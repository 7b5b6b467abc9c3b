"""Movement judgment: keyframes and the server's challenge in, a validated ``Judgment`` out.

Only server-generated text (the templates, action names, times, frame ids) and the session's
own frames go into the prompt. The answer is untrusted: it must be one JSON object that
follows a schema pinned to this challenge and these frames, and a verdict of "performed"
must cite a frame of that action's window. A failing answer gets one repair request; after
that the outcome is ``llm_invalid`` with the raw text kept, and the judge has no say: the
decision is the vision checks' alone and says so, or a review when the policy requires the
LLM (``KYC_REQUIRE_LLM``).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..challenge import Step
from ..prompts import Templates
from ..vision.evidence import VisionEvidence
from .answers import parse_answer
from .errors import AnswerError, JudgmentInputError, LLMUnavailable
from .judgment import ActionVerdict, Judgment, Outcome, SpoofSign
from .keyframes import Frame, KeyframePlan, select_keyframes
from .messages import ImagePart, Part, TextPart
from .providers.base import Provider
from .request import templated_request
from .schemas import SPOOF_KINDS, judgment_schema
from .settings import LLMSettings
from .variables import judgment_variables, repair_variables

TEMPLATE = "movement_judgment"
OFFLINE_REASON = "no LLM is configured (offline mock provider): judged without the LLM"


def judge_movements(
    provider: Provider,
    challenge: Sequence[Step],
    frames: Sequence[Frame],
    evidence: VisionEvidence,
    settings: LLMSettings,
    templates: Templates,
) -> Judgment:
    """Ask the LLM whether each challenge action was performed, in its window and in order.

    Returns a ``Judgment`` whose outcome is ``ok``, ``llm_invalid``, ``llm_unavailable`` or
    ``llm_offline`` (the provider is an offline stand-in: nothing is sent). Raises
    ``JudgmentInputError`` when the challenge, frames and evidence do not fit together, and
    ``TemplateError`` if a template fails to render (they are checked at start-up).
    """
    steps = tuple(challenge)
    if not steps or not all(isinstance(s, Step) for s in steps):
        raise JudgmentInputError("the challenge must be a non-empty sequence of Step")
    if provider.offline:  # nothing is sent: no keyframes are loaded (nor missed) for it
        return Judgment(outcome="llm_offline", provider=provider.name, model=provider.model, error=OFFLINE_REASON)
    plan = select_keyframes(
        steps, frames, evidence,
        budget=settings.image_token_budget, max_images=settings.max_images,
    )
    used: list[str] = []  # the templates actually sent, for the audit record

    def judgment(outcome: Outcome, **fields: Any) -> Judgment:
        return Judgment(
            outcome=outcome, provider=provider.name, model=provider.model,
            templates=templates.hashes(*used),
            keyframes=[k.describe() for k in plan.keyframes], **fields,
        )

    used += ["system", TEMPLATE]
    schema = judgment_schema([s.action for s in steps], [k.id for k in plan.keyframes])
    images: list[Part] = []
    for k in plan.keyframes:  # each image after its bracketed id; text last, as Anthropic advises
        images += [TextPart(f"[{k.id}]"), ImagePart(k.jpeg, k.width, k.height)]
    request = templated_request(
        templates, TEMPLATE, judgment_variables(steps, plan.keyframes, schema=schema),
        language=settings.language, leading_parts=images,
    )
    try:
        first = provider.complete(request)
    except LLMUnavailable as exc:
        return judgment("llm_unavailable", usage=[exc.usage] if exc.usage else [],
                        error=exc.message)
    usage = [first.usage]
    try:
        fields = _read(first.text, schema, steps, plan)
    except AnswerError as exc:
        problems = exc  # the name bound by "except" does not outlive the block
    else:
        return judgment("ok", usage=usage, raw_text=first.text, **fields)

    used.append("answer_repair")
    repair = request.followed_by(
        first.text,
        templates.render("answer_repair", repair_variables(problems.problems, schema=schema)),
        purpose=f"{TEMPLATE}:repair",
    )
    try:
        second = provider.complete(repair)
    except LLMUnavailable as exc:
        usage += [exc.usage] if exc.usage else []
        return judgment("llm_invalid", usage=usage, raw_text=first.text,
                        error=f"invalid answer ({problems.message}); repair failed: {exc.message}")
    usage.append(second.usage)
    try:
        fields = _read(second.text, schema, steps, plan)
    except AnswerError as still:
        return judgment("llm_invalid", usage=usage, raw_text=second.text,
                        repaired_from=first.text,
                        error=f"invalid answer after one repair: {still.message}")
    return judgment("ok", usage=usage, raw_text=second.text, repaired_from=first.text, **fields)


def _read(
    text: str, schema: dict[str, Any], steps: Sequence[Step], plan: KeyframePlan
) -> dict[str, Any]:
    """Return the Judgment fields of a valid answer; raise ``AnswerError`` otherwise.

    Beyond the schema: a "performed" verdict must rely on a frame of its own window, since
    a frame from elsewhere cannot show that the action happened when it was asked for.
    """
    data = parse_answer(text, schema)
    problems = []
    verdicts = []
    for number, (step, raw) in enumerate(zip(steps, data["actions"]), start=1):
        frame = plan.by_id(raw["frame"]) if raw["frame"] is not None else None
        if raw["performed"] is True and (frame is None or frame.window != number):
            problems.append(f"actions/{number - 1}: performed is true but frame "
                            f"{raw['frame']!r} is not a frame of window {number}")
        verdicts.append(ActionVerdict(
            action=step.action,
            performed=raw["performed"],
            in_window=raw["in_window"],
            in_order=raw["in_order"],
            confidence=float(raw["confidence"]),
            frame_id=raw["frame"],
            frame_index=frame.index if frame else None,
            note=raw["note"],
        ))
    if problems:
        raise AnswerError(problems)
    signs = data["spoof_signs"]
    return {
        "actions": verdicts,
        "spoof_signs": {k: SpoofSign(signs[k]["present"], signs[k]["note"]) for k in SPOOF_KINDS},
        "confidence": float(data["confidence"]),
    }
