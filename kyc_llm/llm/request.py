"""Building a request from templates: the system prompt, then one user turn whose last part
is the rendered request template; the model parameters come from that template's header."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..prompts import Templates
from .errors import TemplateError
from .messages import LLMRequest, Message, Part, TextPart
from .variables import system_variables


def templated_request(
    templates: Templates,
    name: str,
    variables: Mapping[str, Any],
    *,
    language: str,
    leading_parts: Sequence[Part] = (),
) -> LLMRequest:
    """Return the request for template ``name``; ``leading_parts`` (images) go before its text.

    Raises ``TemplateError`` when a template does not render or ``name`` sets no model
    parameters (the loader only accepts request templates that do).
    """
    info = templates[name].info
    if info.max_tokens is None or info.temperature is None:
        raise TemplateError(f"{name!r} is not a request template: no [model] table",
                            path=info.path)
    text = TextPart(templates.render(name, variables))
    return LLMRequest(
        system=templates.render("system", system_variables(language)),
        messages=(Message("user", (*leading_parts, text)),),
        max_tokens=info.max_tokens,
        temperature=info.temperature,
        purpose=name,
    )
