"""The provider interface: one abstract ``_send``; retries and usage live in ``complete``."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..errors import LLMTransientError, LLMUnavailable
from ..messages import LLMRequest, LLMResponse
from ..retry import retry_policy
from ..settings import LLMSettings
from ..usage import Usage


@dataclass(frozen=True)
class Reply:
    """What one successful attempt returned: the text and the provider's token counts."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    stop_reason: str | None
    tokens_estimated: bool = False


class Provider(ABC):
    """Sends a request to a model and returns its text with a ``Usage`` record.

    ``offline`` is True only for a provider that stands in because no LLM is configured:
    callers then decide without the LLM and say so, rather than pretend a judgment.
    """

    name: ClassVar[str]
    offline: bool = False

    def __init__(
        self, settings: LLMSettings, *, model: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.model = model
        self._sleep = sleep

    def complete(self, request: LLMRequest, *, deadline_s: float | None = None) -> LLMResponse:
        """Send ``request`` with the retry policy; ``deadline_s`` bounds time spent retrying.

        Returns the text and its usage. Raises ``LLMUnavailable`` (with ``usage`` attached)
        on a non-retryable error or once retries are exhausted.
        """
        attempts = 0
        started = time.perf_counter()

        def attempt() -> Reply:
            nonlocal attempts
            attempts += 1
            return self._send(request)

        def usage(reply: Reply | None, error: str | None) -> Usage:
            return Usage(
                provider=self.name,
                model=self.model,
                purpose=request.purpose,
                input_tokens=reply.input_tokens if reply else None,
                output_tokens=reply.output_tokens if reply else None,
                images=request.images(),
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                attempts=attempts,
                stop_reason=reply.stop_reason if reply else None,
                tokens_estimated=reply.tokens_estimated if reply else False,
                error=error,
            )

        try:
            reply = retry_policy(self.settings, deadline_s=deadline_s, sleep=self._sleep)(attempt)
        except LLMTransientError as exc:
            message = f"{self.name}: gave up after {attempts} attempt(s): {exc.message}"
            raise LLMUnavailable(message, usage=usage(None, message)) from exc
        except LLMUnavailable as exc:
            exc.usage = usage(None, exc.message)
            raise
        return LLMResponse(text=reply.text, usage=usage(reply, None))

    def close(self) -> None:
        """Release the SDK client, if one was created (app teardown)."""

    @abstractmethod
    def _send(self, request: LLMRequest) -> Reply:
        """Make one attempt. Raise ``LLMTransientError`` if a retry may succeed, else
        ``LLMUnavailable``; never let an SDK exception escape."""


class RemoteProvider(Provider):
    """A provider behind an SDK client that is built on first use (never at import), once,
    thread-safely, and released by ``close``. Subclasses say how in ``_build_client``."""

    def __init__(self, settings: LLMSettings, *, model: str, client: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(settings, model=model, sleep=sleep)
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Return the SDK client, creating it once."""
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    @abstractmethod
    def _build_client(self) -> Any:
        """Create the SDK client from ``self.settings``."""

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
