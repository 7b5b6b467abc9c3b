"""LLM settings from a mapping, and the provider they select."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kyc_llm.errors import ConfigError
from kyc_llm.llm.providers import MockProvider, make_provider
from kyc_llm.llm.providers.anthropic_api import AnthropicProvider
from kyc_llm.llm.providers.bedrock import BedrockProvider
from kyc_llm.llm.settings import DEFAULT_BEDROCK_MODEL, LLMSettings

ROOT = Path(__file__).resolve().parent.parent
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "mock"),
        (AWS_KEYS, "bedrock"),
        ({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}, "mock"),  # half a key pair is no credentials
        ({"AWS_PROFILE": "kyc"}, "bedrock"),
        ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds"}, "bedrock"),
        ({"ANTHROPIC_API_KEY": "sk-test"}, "anthropic"),
        ({**AWS_KEYS, "ANTHROPIC_API_KEY": "sk-test"}, "bedrock"),
        ({**AWS_KEYS, "ANTHROPIC_API_KEY": "sk-test", "KYC_LLM_PROVIDER": "anthropic"},
         "anthropic"),
        ({**AWS_KEYS, "KYC_LLM_PROVIDER": "MOCK"}, "mock"),
        ({"KYC_LLM_PROVIDER": "bedrock"}, "bedrock"),  # e.g. an instance role
    ],
)
def test_provider_resolution(env: dict[str, str], provider: str) -> None:
    assert LLMSettings.from_env(env).provider == provider


def test_defaults() -> None:
    s = LLMSettings.from_env({})
    assert (s.image_token_budget, s.max_images, s.challenge_deadline_s) == (3000, 8, 3.0)
    assert (s.challenge_length, s.language, s.max_attempts) == (3, "en", 3)
    assert s.bedrock_model_id == DEFAULT_BEDROCK_MODEL and s.aws_region == "us-east-1"
    assert s.model_id == "mock"


def test_values_and_region_precedence() -> None:
    s = LLMSettings.from_env({
        **AWS_KEYS, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-central-1",
        "KYC_LLM_IMAGE_TOKEN_BUDGET": "1500", "KYC_LLM_MAX_IMAGES": "4",
        "KYC_LLM_LANGUAGE": "pt-BR", "KYC_LLM_BEDROCK_MODEL_ID": "eu.anthropic.model-v1:0",
    })
    assert s.aws_region == "eu-central-1"
    assert (s.image_token_budget, s.max_images, s.language) == (1500, 4, "pt-BR")
    assert s.model_id == "eu.anthropic.model-v1:0"
    assert LLMSettings.from_env({"KYC_LLM_AWS_REGION": "us-west-2", "AWS_REGION": "x"}
                                ).aws_region == "us-west-2"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KYC_LLM_PROVIDER": "openai"}, "KYC_LLM_PROVIDER must be one of"),
        ({"KYC_LLM_PROVIDER": "anthropic"}, "needs ANTHROPIC_API_KEY"),
        ({"KYC_LLM_MAX_IMAGES": "21"}, "KYC_LLM_MAX_IMAGES must be between 1 and 20"),
        ({"KYC_LLM_IMAGE_TOKEN_BUDGET": "lots"}, "KYC_LLM_IMAGE_TOKEN_BUDGET must be a number"),
        ({"KYC_LLM_CHALLENGE_DEADLINE_S": "nan"}, "KYC_LLM_CHALLENGE_DEADLINE_S must be between"),
        ({"KYC_LLM_CHALLENGE_LENGTH": "5"}, "KYC_LLM_CHALLENGE_LENGTH must be between 2 and 4"),
        ({"KYC_LLM_LANGUAGE": "English"}, "KYC_LLM_LANGUAGE must look like"),
        ({"KYC_LLM_RETRY_INITIAL_S": "5", "KYC_LLM_RETRY_MAX_S": "1"}, "RETRY_MAX_S must be >="),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LLMSettings.from_env(env)


def test_secrets_stay_out_of_repr() -> None:
    s = LLMSettings.from_env({**AWS_KEYS, "ANTHROPIC_API_KEY": "sk-test-secret"})
    assert "secret-example" not in repr(s) and "sk-test-secret" not in repr(s)


def test_make_provider_picks_the_class_and_builds_no_client() -> None:
    bedrock = make_provider(LLMSettings.from_env(AWS_KEYS))
    anthropic = make_provider(LLMSettings.from_env({"ANTHROPIC_API_KEY": "sk-test"}))
    offline = make_provider(LLMSettings.from_env({}))
    assert isinstance(bedrock, BedrockProvider) and bedrock._client is None
    assert isinstance(anthropic, AnthropicProvider) and anthropic._client is None
    assert isinstance(offline, MockProvider) and offline.offline
    assert not bedrock.offline and not anthropic.offline and not MockProvider().offline
    assert (bedrock.model, anthropic.model) == (DEFAULT_BEDROCK_MODEL, "claude-sonnet-4-5-20250929")


def test_make_provider_refuses_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="must be one of"):
        make_provider(LLMSettings(provider="gpt"))


def test_an_offline_run_never_loads_an_sdk() -> None:
    """Importing the LLM layer and picking the offline provider loads neither boto3 nor
    anthropic (a fresh interpreter, since other tests import them)."""
    code = (
        "import sys\n"
        "import kyc_llm.llm.judge, kyc_llm.llm.challenge_text\n"
        "from kyc_llm.llm.providers import make_provider\n"
        "from kyc_llm.llm.settings import LLMSettings\n"
        "make_provider(LLMSettings.from_env({}))\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'anthropic') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
