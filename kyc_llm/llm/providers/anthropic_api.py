"""Claude through the Anthropic API directly, with the ``anthropic`` SDK and an API key."""

from __future__ import annotations

import time
from typing import Any, Callable

import anthropic
import httpx

from ...errors import ConfigError
from ..errors import LLMTransientError, LLMUnavailable
from ..messages import LLMRequest, api_messages
from ..settings import LLMSettings
from .base import RemoteProvider, Reply


def _retryable_status(status: int) -> bool:
    # 429 rate limit, 5xx (529 overloaded included), and 408 request timeout: the HTTP
    # equivalents of Bedrock's throttling, unavailable and model-timeout errors.
    return status in (408, 429) or status >= 500


class AnthropicProvider(RemoteProvider):
    """Calls ``messages.create``. The SDK client is built on first use, never at import."""

    name = "anthropic"

    def __init__(
        self,
        settings: LLMSettings,
        *,
        client: anthropic.Anthropic | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None and not settings.anthropic_api_key:
            raise ConfigError("the anthropic provider needs ANTHROPIC_API_KEY")
        super().__init__(settings, model=settings.anthropic_model, client=client, sleep=sleep)

    def _build_client(self) -> anthropic.Anthropic:
        s = self.settings
        return anthropic.Anthropic(
            api_key=s.anthropic_api_key,
            base_url=s.anthropic_base_url,
            # The SDK retries 2 times by default; retry.retry_policy owns retries.
            max_retries=0,
            timeout=httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s),
        )

    def _send(self, request: LLMRequest) -> Reply:
        try:
            message: Any = self.client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                system=request.system,
                messages=api_messages(request),
            )
        except anthropic.APIStatusError as exc:
            text = f"{exc.status_code}: {exc.message}"
            if _retryable_status(exc.status_code):
                raise LLMTransientError(text) from exc
            raise LLMUnavailable(f"anthropic: {text}") from exc
        except anthropic.APIConnectionError as exc:  # includes APITimeoutError
            raise LLMTransientError(f"connection: {exc}") from exc
        except anthropic.AnthropicError as exc:  # e.g. a response that fails the SDK's types
            raise LLMUnavailable(f"anthropic: {exc}") from exc
        text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        return Reply(
            text=text,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=message.stop_reason,
        )
