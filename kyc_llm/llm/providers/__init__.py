"""Provider selection: ``make_provider(settings)`` picks bedrock, anthropic or mock.

The SDK modules are imported only for the provider chosen, so an offline run never loads
boto3 or anthropic, and no client exists until the first call.
"""

from __future__ import annotations

from ...errors import ConfigError
from ..settings import PROVIDERS, LLMSettings
from .base import Provider, Reply
from .mock import MockProvider

__all__ = ["MockProvider", "Provider", "Reply", "make_provider"]


def make_provider(settings: LLMSettings) -> Provider:
    """Return the provider ``settings.provider`` names (resolved by ``LLMSettings.from_env``).

    The mock returned here is offline: it stands in for a missing LLM, so callers record
    that they decided without one. Raises ``ConfigError`` when the anthropic provider has
    no API key, or for a provider name it does not know.
    """
    if settings.provider == "bedrock":
        from .bedrock import BedrockProvider  # lazily: it loads boto3

        return BedrockProvider(settings)
    if settings.provider == "anthropic":
        from .anthropic_api import AnthropicProvider  # lazily: it loads anthropic and httpx

        return AnthropicProvider(settings)
    if settings.provider == "mock":
        return MockProvider(settings, offline=True)
    raise ConfigError(f"LLM provider must be one of {PROVIDERS}, not {settings.provider!r}")
