"""LLM settings read from a mapping: pass ``os.environ`` in the app, a dict in tests.

Every variable is optional. The provider is chosen as: ``KYC_LLM_PROVIDER`` when set;
otherwise ``bedrock`` when AWS credentials are visible in the mapping; otherwise ``anthropic``
when ``ANTHROPIC_API_KEY`` is set; otherwise ``mock`` (offline: no judgment is pretended).
An EC2/ECS instance role is not visible in the environment: set ``KYC_LLM_PROVIDER=bedrock``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

from ..errors import ConfigError

PROVIDERS = ("bedrock", "anthropic", "mock")
# Claude 4 models on Bedrock are invoked through a cross-region inference profile id;
# the "us." prefix matches the default region below.
DEFAULT_BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

# Any one of these makes boto3's default credential chain find credentials without a network
# call (static keys, a named profile, web identity, or the ECS/EKS container endpoint).
_AWS_CREDENTIAL_HINTS = (
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")

T = TypeVar("T", int, float)


@dataclass(frozen=True)
class LLMSettings:
    """Configuration of the LLM layer. Build it with ``from_env``; secrets stay out of repr."""

    provider: str = "mock"
    bedrock_model_id: str = DEFAULT_BEDROCK_MODEL
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    aws_profile: str | None = None
    bedrock_endpoint_url: str | None = None
    anthropic_model: str = DEFAULT_ANTHROPIC_MODEL
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str = "https://api.anthropic.com"
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0
    max_attempts: int = 3
    retry_initial_s: float = 0.5
    retry_max_s: float = 4.0
    retry_jitter_s: float = 0.5
    retry_deadline_s: float = 45.0
    image_token_budget: int = 3000
    max_images: int = 8
    challenge_deadline_s: float = 3.0
    challenge_length: int = 3
    language: str = "en"
    prompts_dir: Path = DEFAULT_PROMPTS_DIR

    @property
    def model_id(self) -> str:
        """Return the model id of the configured provider ("mock" for the mock)."""
        if self.provider == "bedrock":
            return self.bedrock_model_id
        if self.provider == "anthropic":
            return self.anthropic_model
        return "mock"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "LLMSettings":
        """Read settings from ``env`` (e.g. ``os.environ``).

        Returns the settings with the provider resolved. Raises ``ConfigError`` naming the
        variable for an unknown provider, a non-number, or a value out of range, and when the
        explicitly chosen provider lacks its credentials (an API key for ``anthropic``).
        """
        given = env
        env = _Asked(env)  # every KYC_LLM_* given must be one this method reads (checked last)

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        key_id, secret = text("AWS_ACCESS_KEY_ID"), text("AWS_SECRET_ACCESS_KEY")
        has_aws = bool(key_id and secret) or any(text(n) for n in _AWS_CREDENTIAL_HINTS)
        api_key = text("ANTHROPIC_API_KEY")
        explicit = (text("KYC_LLM_PROVIDER") or "").lower()
        if explicit and explicit not in PROVIDERS:
            raise ConfigError(f"KYC_LLM_PROVIDER must be one of {PROVIDERS}, not {explicit!r}")
        if explicit == "anthropic" and not api_key:
            raise ConfigError("KYC_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        provider = explicit or ("bedrock" if has_aws else "anthropic" if api_key else "mock")

        language = text("KYC_LLM_LANGUAGE", "en") or "en"
        if not _LANGUAGE.match(language):
            raise ConfigError(f"KYC_LLM_LANGUAGE must look like 'en' or 'pt-BR', not {language!r}")
        max_attempts = _number(env, "KYC_LLM_MAX_ATTEMPTS", int, 3, 1, 10)
        retry_initial = _number(env, "KYC_LLM_RETRY_INITIAL_S", float, 0.5, 0.0, 30.0)
        retry_max = _number(env, "KYC_LLM_RETRY_MAX_S", float, 4.0, 0.0, 60.0)
        if retry_max < retry_initial:
            raise ConfigError("KYC_LLM_RETRY_MAX_S must be >= KYC_LLM_RETRY_INITIAL_S")
        settings = cls(
            provider=provider,
            bedrock_model_id=text("KYC_LLM_BEDROCK_MODEL_ID", DEFAULT_BEDROCK_MODEL) or "",
            aws_region=text("KYC_LLM_AWS_REGION")
            or text("AWS_REGION")
            or text("AWS_DEFAULT_REGION", "us-east-1")
            or "us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=text("AWS_SESSION_TOKEN"),
            aws_profile=text("AWS_PROFILE"),
            bedrock_endpoint_url=text("KYC_LLM_BEDROCK_ENDPOINT_URL"),
            anthropic_model=text("KYC_LLM_ANTHROPIC_MODEL", DEFAULT_ANTHROPIC_MODEL) or "",
            anthropic_api_key=api_key,
            anthropic_base_url=text("KYC_LLM_ANTHROPIC_BASE_URL", "https://api.anthropic.com")
            or "",
            connect_timeout_s=_number(env, "KYC_LLM_CONNECT_TIMEOUT_S", float, 3.0, 0.1, 60.0),
            read_timeout_s=_number(env, "KYC_LLM_READ_TIMEOUT_S", float, 30.0, 0.1, 600.0),
            max_attempts=max_attempts,
            retry_initial_s=retry_initial,
            retry_max_s=retry_max,
            retry_jitter_s=_number(env, "KYC_LLM_RETRY_JITTER_S", float, 0.5, 0.0, 30.0),
            retry_deadline_s=_number(env, "KYC_LLM_RETRY_DEADLINE_S", float, 45.0, 0.1, 600.0),
            # Below ~500 tokens even one frame must shrink under 200 px, which hurts quality.
            image_token_budget=_number(env, "KYC_LLM_IMAGE_TOKEN_BUDGET", int, 3000, 500, 20000),
            # Bedrock's Converse API caps a request at 20 images; stay under it everywhere.
            max_images=_number(env, "KYC_LLM_MAX_IMAGES", int, 8, 1, 20),
            challenge_deadline_s=_number(env, "KYC_LLM_CHALLENGE_DEADLINE_S", float, 3.0, 0.1, 30.0),
            challenge_length=_number(env, "KYC_LLM_CHALLENGE_LENGTH", int, 3, 2, 4),
            language=language,
            prompts_dir=Path(text("KYC_LLM_PROMPTS_DIR") or DEFAULT_PROMPTS_DIR),
        )
        ConfigError.check_known((k for k in given if k.startswith("KYC_LLM_")), env.asked)
        return settings


class _Asked(Mapping[str, str]):
    """A read-only view of an environment that remembers which names were asked for."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._env[name]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]  # one signature for Mapping.get's overloads
        self.asked.add(name)
        return self._env.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def _number(
    env: Mapping[str, str], name: str, kind: Callable[[str], T], default: T, low: T, high: T
) -> T:
    """Return ``env[name]`` parsed with ``kind`` (``default`` when unset).

    Raises ``ConfigError`` naming the variable when it does not parse or lies outside
    ``[low, high]``.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not (low <= value <= high):
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value
