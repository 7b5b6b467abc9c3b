"""Dynamic challenges: the server draws the actions, the LLM only words them.

Unpredictability comes from ``draw_actions`` (the OS CSPRNG), never from the model. The
model's wording is untrusted: it must follow a schema that pins the drawn actions in order,
stay short and plain; otherwise, or when the model is slow or off, the local wording of
``prompts/challenge_local.jinja`` is used and the reason recorded. A challenge is always
worded within ``settings.challenge_deadline_s``.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

from ..challenge import ACTIONS, Step
from ..errors import ChallengeError
from ..prompts import Templates
from .answers import markup_problem, parse_answer
from .errors import AnswerError, LLMUnavailable, TemplateError
from .messages import LLMRequest
from .providers.base import Provider
from .request import templated_request
from .schemas import wording_schema
from .settings import LLMSettings
from .usage import Usage
from .variables import local_wording_variables, wording_variables

MIN_LENGTH, MAX_LENGTH = 2, 4
WORDING_MAX_CHARS = 80
log = logging.getLogger(__name__)
TEMPLATE, LOCAL_TEMPLATE = "challenge_wording", "challenge_local"


def sequence_count(n: int, k: int = len(ACTIONS)) -> int:
    """Return how many sequences of ``n`` actions from ``k`` have no immediate repeat.

    ``k`` choices for the first action and ``k - 1`` for each next one: ``k*(k-1)**(n-1)``.
    With the 7 actions of the vocabulary: 42 for n=2, 252 for n=3 (the default), 1512 for
    n=4. Excluding one action for accessibility leaves 6*5*5 = 150 at n=3.
    """
    return k * (k - 1) ** (n - 1) if n >= 1 and k >= 1 else 0


# One SystemRandom is safe to share: it keeps no state and reads os.urandom on every call.
def draw_actions(
    n: int, rng: random.Random = secrets.SystemRandom(), exclude: Iterable[str] = ()
) -> list[str]:
    """Draw ``n`` actions (2..4) uniformly among sequences with no immediate repeat.

    ``exclude`` removes actions (an accessibility need). Returns the actions in order; there
    are ``sequence_count(n, 7 - len(exclude))`` possible results, 252 at the default n=3.
    Raises ``ChallengeError`` for ``n`` out of range, an unknown action in ``exclude``, or
    fewer than two actions left to draw from.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_LENGTH <= n <= MAX_LENGTH:
        raise ChallengeError(f"a challenge has {MIN_LENGTH} to {MAX_LENGTH} actions, not {n!r}")
    excluded = set(exclude)
    unknown = sorted(excluded - set(ACTIONS))
    if unknown:
        raise ChallengeError(f"cannot exclude unknown actions {unknown}")
    pool = [a for a in ACTIONS if a not in excluded]
    if len(pool) < 2:
        raise ChallengeError("fewer than two actions are left after exclusions")
    actions = [rng.choice(pool)]
    while len(actions) < n:
        actions.append(rng.choice([a for a in pool if a != actions[-1]]))
    return actions


@dataclass(frozen=True)
class ChallengeWording:
    """The text shown for each action, and where it came from.

    ``source`` is ``llm`` or ``local``; ``fallback_reason`` says why when local.
    ``unsuitable`` lists actions the model judged unfit for the stated accessibility needs
    (already checked against the vocabulary): the server may redraw without them.
    """

    actions: tuple[str, ...]
    texts: tuple[str, ...]
    source: Literal["llm", "local"]
    language: str
    fallback_reason: str | None = None
    unsuitable: tuple[str, ...] = ()
    usage: Usage | None = None
    templates: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "actions": list(self.actions),
            "texts": list(self.texts),
            "source": self.source,
            "language": self.language,
            "fallback_reason": self.fallback_reason,
            "unsuitable": list(self.unsuitable),
            "usage": self.usage.as_dict() if self.usage else None,
            "templates": dict(self.templates),
        }


def local_wording(actions: Sequence[str], language: str, templates: Templates) -> tuple[str, ...]:
    """Return the local wording of each action (one rendered line per action).

    Raises ``TemplateError`` when the local template does not give one line per action.
    """
    lines = templates.render(
        LOCAL_TEMPLATE, local_wording_variables(actions, language=language)
    ).splitlines()
    if len(lines) != len(actions):
        raise TemplateError(f"rendered {len(lines)} lines for {len(actions)} actions",
                            path=templates[LOCAL_TEMPLATE].info.path)
    return tuple(line.strip() for line in lines)


def check_wording_templates(templates: Templates, settings: LLMSettings,
                            fixed: Sequence[str] | None = None) -> None:
    """Render what this server will render, beyond the sample the template check uses (3
    steps, English): every action's local wording in the configured language, and the
    wording request for the configured challenge length (and the fixed challenge, if any).

    Raises ``TemplateError`` naming the file: a language table without an action, or a
    template written for one length only, stops the start instead of failing sessions.
    """
    local_wording(ACTIONS, settings.language, templates)
    for actions in (ACTIONS[:settings.challenge_length], *([tuple(fixed)] if fixed else [])):
        _wording_request(templates, actions, settings, "", wording_schema(actions, WORDING_MAX_CHARS))


def _wording_request(templates: Templates, actions: Sequence[str], settings: LLMSettings,
                     accessibility: str, schema: dict[str, Any]) -> LLMRequest:
    """The request that asks the LLM to word ``actions``; raises ``TemplateError``."""
    return templated_request(templates, TEMPLATE, wording_variables(
        actions, language=settings.language, accessibility=accessibility,
        max_chars=WORDING_MAX_CHARS, schema=schema,
    ), language=settings.language)


def write_challenge(
    provider: Provider,
    steps: Sequence[Step] | Sequence[str],
    settings: LLMSettings,
    templates: Templates,
    *,
    accessibility: str = "",
) -> ChallengeWording:
    """Word the challenge with the LLM, within ``settings.challenge_deadline_s``.

    ``accessibility`` is a server-chosen description of needs, never user text. Returns
    LLM wording when a valid answer arrives in time, else local wording with
    ``fallback_reason`` (offline, timeout, unavailable, invalid). Raises ``ChallengeError``
    for an action outside the vocabulary.
    """
    started = time.monotonic()
    actions = tuple(s.action if isinstance(s, Step) else s for s in steps)
    if not actions or any(a not in ACTIONS for a in actions):
        raise ChallengeError(f"cannot word actions {list(actions)}: not all in the vocabulary")
    asked: tuple[str, ...] = ()  # the templates sent to the model, for the audit record

    def local(reason: str, usage: Usage | None = None) -> ChallengeWording:
        return ChallengeWording(
            actions, local_wording(actions, settings.language, templates), "local",
            settings.language, fallback_reason=reason, usage=usage,
            templates=templates.hashes(*asked, LOCAL_TEMPLATE),
        )

    if provider.offline:
        return local("llm_offline: no LLM is configured")
    schema = wording_schema(actions, WORDING_MAX_CHARS)
    try:
        request = _wording_request(templates, actions, settings, accessibility, schema)
    except TemplateError as exc:  # checked with sample data at start-up; this challenge broke it
        log.error("challenge wording template failed, local wording used: %s", exc.message)
        return local(f"template_error: {exc.message}")
    asked = ("system", TEMPLATE)
    deadline = settings.challenge_deadline_s
    # The call runs in a worker thread so a slow provider cannot hold the challenge past
    # the deadline; the worker is not waited for and stops at its own timeout/retry deadline.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="challenge-wording")
    future = executor.submit(provider.complete, request, deadline_s=deadline)
    executor.shutdown(wait=False)
    try:
        response = future.result(timeout=max(0.0, deadline - (time.monotonic() - started)))
    except FutureTimeout:
        return local(f"timeout: no answer within {deadline:g} s")
    except LLMUnavailable as exc:
        return local(f"llm_unavailable: {exc.message}", exc.usage)
    try:
        data = parse_answer(response.text, schema)
    except AnswerError as exc:
        return local(f"llm_invalid: {exc.message}", response.usage)
    texts = tuple(step["text"].strip() for step in data["steps"])
    for number, text in enumerate(texts, start=1):
        problem = "is shorter than 3 characters" if len(text) < 3 else markup_problem(text)
        if problem:
            return local(f"llm_invalid: step {number} text {problem}", response.usage)
    return ChallengeWording(
        actions, texts, "llm", settings.language,
        unsuitable=tuple(data.get("unsuitable", ())), usage=response.usage,
        templates=templates.hashes(*asked),
    )
