"""A provider you control: scripted answers in, a history of requests out.

Tests ``enqueue`` answers (text, or an exception to raise for that attempt) and assert on
``history``. ``make_provider`` returns it with ``offline=True`` when no LLM is configured:
callers then skip the LLM and record that they did, instead of using a scripted answer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from ..errors import LLMError, LLMUnavailable
from ..messages import LLMRequest
from ..settings import LLMSettings
from ..usage import text_tokens
from .base import Provider, Reply


class MockProvider(Provider):
    """Answers from a queue, optionally after ``delay_s``; records every request it gets."""

    name = "mock"

    def __init__(
        self,
        settings: LLMSettings | None = None,
        *,
        offline: bool = False,
        delay_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings or LLMSettings(), model="mock", sleep=sleep)
        self.offline = offline
        self.delay_s = delay_s
        self.history: list[LLMRequest] = []
        self._queue: deque[str | LLMError] = deque()
        self._lock = threading.Lock()

    def enqueue(self, *answers: str | LLMError) -> "MockProvider":
        """Queue answers for the next attempts, in order; an ``LLMError`` is raised instead.

        Returns the provider, so ``MockProvider().enqueue(...)`` reads as one expression.
        """
        with self._lock:
            self._queue.extend(answers)
        return self

    @property
    def pending(self) -> int:
        """Return how many scripted answers have not been used yet."""
        with self._lock:
            return len(self._queue)

    def _send(self, request: LLMRequest) -> Reply:
        with self._lock:
            self.history.append(request)
            answer = self._queue.popleft() if self._queue else None
        if self.delay_s:
            time.sleep(self.delay_s)  # a model's latency, not a retry wait: never patched
        if answer is None:
            raise LLMUnavailable("mock: no scripted answer")
        if isinstance(answer, LLMError):
            raise answer
        # No real tokenizer here: report the same estimates the request budget uses.
        return Reply(
            text=answer,
            input_tokens=request.estimated_input_tokens(),
            output_tokens=text_tokens(answer),
            stop_reason="end_turn",
            tokens_estimated=True,
        )
