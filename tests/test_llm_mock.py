"""The mock provider and the shared retry/usage path every provider goes through."""

from __future__ import annotations

import pytest

from kyc_llm.llm.errors import LLMTransientError, LLMUnavailable
from kyc_llm.llm.messages import LLMRequest, Message, TextPart
from kyc_llm.llm.providers import MockProvider

REQUEST = LLMRequest("system", (Message("user", (TextPart("hello there"),)),), 50, 0.0, "test")


def test_enqueue_and_history() -> None:
    provider = MockProvider().enqueue("first", "second")
    assert provider.complete(REQUEST).text == "first" and provider.pending == 1
    assert provider.history == [REQUEST]
    usage = provider.complete(REQUEST).usage
    assert (usage.provider, usage.model, usage.purpose, usage.attempts) == ("mock", "mock", "test", 1)
    assert usage.tokens_estimated and usage.input_tokens == REQUEST.estimated_input_tokens()
    assert usage.output_tokens == 2  # "second": 6 characters at 4 a token
    with pytest.raises(LLMUnavailable, match="no scripted answer"):
        provider.complete(REQUEST)


def test_transient_errors_are_retried_with_backoff() -> None:
    waits: list[float] = []
    provider = MockProvider(sleep=waits.append).enqueue(
        LLMTransientError("429"), LLMTransientError("503"), "ok")
    response = provider.complete(REQUEST)
    assert response.text == "ok" and response.usage.attempts == 3
    assert len(provider.history) == 3 and len(waits) == 2 and waits[1] > waits[0]


def test_retries_stop_at_max_attempts_and_at_the_deadline() -> None:
    provider = MockProvider(sleep=lambda s: None).enqueue(*[LLMTransientError("429")] * 4)
    with pytest.raises(LLMUnavailable, match="gave up after 3 attempt"):
        provider.complete(REQUEST)
    with pytest.raises(LLMUnavailable, match="gave up after 1 attempt") as caught:
        provider.complete(REQUEST, deadline_s=0)
    assert caught.value.usage.attempts == 1 and caught.value.usage.error


def test_a_non_retryable_error_is_raised_at_once_with_usage() -> None:
    provider = MockProvider().enqueue(LLMUnavailable("denied"), "unused")
    with pytest.raises(LLMUnavailable, match="denied") as caught:
        provider.complete(REQUEST)
    assert caught.value.usage.attempts == 1 and provider.pending == 1


def test_delay_is_a_latency_not_a_retry_wait() -> None:
    provider = MockProvider(delay_s=0.05, sleep=lambda s: None).enqueue("late")
    assert provider.complete(REQUEST).usage.latency_ms >= 50
