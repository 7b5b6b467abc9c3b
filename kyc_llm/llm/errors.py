"""Typed errors of the LLM layer, all under ``kyc_llm.errors.KycError``."""

from __future__ import annotations

from ..errors import KycError
from .usage import Usage


class LLMError(KycError):
    """Base of the errors a provider raises."""

    code = "llm_error"


class LLMTransientError(LLMError):
    """A failure that can succeed on retry (throttling, 5xx, timeouts, connection errors).

    Only this class is retried by ``retry.retry_policy``; providers translate their SDK's
    errors into it or into ``LLMUnavailable`` at the boundary.
    """

    code = "llm_transient"


class LLMUnavailable(LLMError):
    """The provider could not answer: a non-retryable error, or retries exhausted.

    ``usage`` records what the failed call cost (attempts, latency) for the audit trail.
    """

    code = "llm_unavailable"

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class AnswerError(LLMError, ValueError):
    """An LLM answer is not a JSON object that follows its schema.

    ``problems`` lists each violation in a short form fit to send back in a repair prompt.
    """

    code = "llm_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems) or "invalid answer")
        self.problems = problems


class TemplateError(KycError, ValueError):
    """A prompt template is missing, malformed, or does not render with its variables."""

    code = "bad_template"
    status = 500  # the service's own files: never the client's fault

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class JudgmentInputError(KycError, ValueError):
    """The challenge, frames and vision evidence handed to the judge do not fit together."""

    code = "bad_judgment_input"
