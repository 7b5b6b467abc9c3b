"""The one retry policy for provider calls: bounded, exponential backoff with jitter.

Only ``LLMTransientError`` is retried: providers classify their SDK's errors at the boundary
(throttling, model not ready, 5xx, model timeouts, connection errors are transient;
validation, access and not-found errors are not), so this module needs no SDK knowledge.
"""

from __future__ import annotations

import time
from typing import Callable

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from .errors import LLMTransientError
from .settings import LLMSettings


def retry_policy(
    settings: LLMSettings,
    *,
    deadline_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """Return a tenacity ``Retrying`` for one provider call.

    It stops after ``settings.max_attempts`` attempts or once ``deadline_s`` (default
    ``settings.retry_deadline_s``) has passed, waits ``min(initial * 2**n + U(0, jitter), max)``
    between attempts, and re-raises the last error (``reraise=True``) so the caller sees the
    provider's own ``LLMTransientError``. ``sleep`` is injectable so tests can record waits.
    """
    deadline = settings.retry_deadline_s if deadline_s is None else deadline_s
    return Retrying(
        retry=retry_if_exception_type(LLMTransientError),
        stop=stop_after_attempt(settings.max_attempts) | stop_after_delay(deadline),
        wait=wait_exponential_jitter(
            initial=settings.retry_initial_s,
            max=settings.retry_max_s,
            jitter=settings.retry_jitter_s,
        ),
        sleep=sleep,
        reraise=True,
    )
