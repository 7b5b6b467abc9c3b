"""The Bedrock provider: the exact invoke_model body (moto), and retries (botocore Stubber).

Waits are recorded through the provider's injectable ``sleep`` instead of slept, so the
retry tests take milliseconds and can assert the backoff itself.
"""

from __future__ import annotations

import base64
import io
import json
from collections import deque
from types import SimpleNamespace
from typing import Any, Iterator
from unittest import mock

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from kyc_llm.challenge import Step
from kyc_llm.llm.errors import LLMUnavailable
from kyc_llm.llm.judge import judge_movements
from kyc_llm.llm.messages import ImagePart, LLMRequest, Message, TextPart
from kyc_llm.llm.providers.bedrock import BedrockProvider
from kyc_llm.llm.settings import DEFAULT_BEDROCK_MODEL, LLMSettings
from kyc_llm.prompts import load_templates
from kyc_llm.vision.evidence import ActionEvidence, VisionEvidence

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="JPEG")
    return out.getvalue()


JPEG = _jpeg(64, 48)
REQUEST = LLMRequest(
    system="You judge liveness.",
    messages=(Message("user", (TextPart("[F1]"), ImagePart(JPEG, 64, 48), TextPart("Judge."))),),
    max_tokens=300,
    temperature=0.0,
    purpose="movement_judgment",
)


def _messages_body(text: str, input_tokens: int = 42, output_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _settings(**env: str) -> LLMSettings:
    return LLMSettings.from_env({**AWS, **env})


# --- the request body, through moto's bedrock-runtime backend ----------------------------

@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """moto's bedrock-runtime with ``invoke_model`` answering from ``answers``; every call's
    model id and parsed body land in ``calls``; ``error(code)`` makes a service error."""
    # moto implements bedrock-runtime from 5.2.0 on; the Stubber tests below run without it.
    models = pytest.importorskip("moto.bedrockruntime.models",
                                 reason="moto>=5.2 is needed for the bedrock-runtime backend")
    from moto import mock_aws
    from moto.bedrockruntime.exceptions import BedrockRuntimeError

    for name, value in {**AWS, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[str, dict[str, Any]]] = []
    answers: deque[Any] = deque()

    def invoke_model(self: Any, payload: dict[str, Any], model_id: str) -> dict[str, Any]:
        calls.append((model_id, payload))
        answer = answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer

    with mock_aws(), mock.patch.object(models.BedrockRuntimeBackend, "invoke_model", invoke_model):
        yield SimpleNamespace(calls=calls, answers=answers,
                              error=lambda code: BedrockRuntimeError(code, code))


def test_invoke_model_body_is_the_anthropic_messages_format(backend: SimpleNamespace) -> None:
    backend.answers.append(_messages_body("hello"))
    provider = BedrockProvider(_settings())
    response = provider.complete(REQUEST)

    model_id, body = backend.calls[0]
    assert model_id == DEFAULT_BEDROCK_MODEL
    assert body == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "temperature": 0.0,
        "system": "You judge liveness.",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "[F1]"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": base64.b64encode(JPEG).decode("ascii")}},
            {"type": "text", "text": "Judge."},
        ]}],
    }
    sent = Image.open(io.BytesIO(base64.b64decode(body["messages"][0]["content"][1]["source"]["data"])))
    assert (sent.format, sent.size) == ("JPEG", (64, 48))
    assert response.text == "hello"
    usage = response.usage
    assert (usage.provider, usage.model, usage.purpose) == ("bedrock", DEFAULT_BEDROCK_MODEL,
                                                            "movement_judgment")
    assert (usage.input_tokens, usage.output_tokens, usage.attempts) == (42, 7, 1)
    assert usage.images == ((64, 48),) and usage.stop_reason == "end_turn"
    assert usage.latency_ms >= 0 and not usage.tokens_estimated
    provider.close()


def test_botocore_does_not_retry_behind_tenacity(backend: SimpleNamespace) -> None:
    """Every backend call is one counted attempt: botocore's own retries are off."""
    backend.answers.extend([backend.error("ThrottlingException"), _messages_body("ok")])
    waits: list[float] = []
    provider = BedrockProvider(_settings(), sleep=waits.append)
    assert provider.complete(REQUEST).usage.attempts == 2
    assert len(backend.calls) == 2 and len(waits) == 1
    assert provider.client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}

    backend.calls.clear()
    backend.answers.append(backend.error("ThrottlingException"))
    single = BedrockProvider(_settings(KYC_LLM_MAX_ATTEMPTS="1"), sleep=waits.append)
    with pytest.raises(LLMUnavailable, match="gave up after 1 attempt"):
        single.complete(REQUEST)
    assert len(backend.calls) == 1


def test_a_body_that_is_not_a_messages_envelope_is_unavailable(backend: SimpleNamespace) -> None:
    backend.answers.append({"completion": "legacy format"})
    with pytest.raises(LLMUnavailable, match="malformed response body") as caught:
        BedrockProvider(_settings(), sleep=lambda s: None).complete(REQUEST)
    assert len(backend.calls) == 1 and caught.value.usage.attempts == 1


def test_the_client_is_built_lazily_with_configured_timeouts() -> None:
    provider = BedrockProvider(_settings(KYC_LLM_READ_TIMEOUT_S="12", KYC_LLM_AWS_REGION="eu-west-3"))
    assert provider._client is None
    config = provider.client.meta.config
    assert (config.read_timeout, config.connect_timeout) == (12.0, 3.0)
    assert provider.client.meta.region_name == "eu-west-3"
    provider.close()


# --- retries, through botocore's Stubber -------------------------------------------------

def _stubbed(settings: LLMSettings) -> tuple[BedrockProvider, Stubber, list[float]]:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1}))
    waits: list[float] = []
    return BedrockProvider(settings, client=client, sleep=waits.append), Stubber(client), waits


def _add_success(stubber: Stubber, text: str = "done") -> None:
    raw = json.dumps(_messages_body(text)).encode()
    stubber.add_response(
        "invoke_model",
        {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"},
        {"modelId": DEFAULT_BEDROCK_MODEL, "body": ANY, "contentType": "application/json",
         "accept": "application/json"},
    )


def _add_error(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error("invoke_model", service_error_code=code, service_message=code,
                             http_status_code=status)


def test_throttling_unavailable_timeout_then_success() -> None:
    provider, stubber, waits = _stubbed(_settings(KYC_LLM_MAX_ATTEMPTS="4"))
    _add_error(stubber, "ThrottlingException", 429)
    _add_error(stubber, "ServiceUnavailableException", 503)
    _add_error(stubber, "ModelTimeoutException", 408)
    _add_success(stubber)
    with stubber:
        response = provider.complete(REQUEST)
        stubber.assert_no_pending_responses()
    assert response.text == "done" and response.usage.attempts == 4
    # min(0.5 * 2**n + U(0, 0.5), 4): exponential, jittered, bounded.
    assert len(waits) == 3
    for wait, low in zip(waits, (0.5, 1.0, 2.0)):
        assert low <= wait <= low + 0.5


@pytest.mark.parametrize(
    ("code", "status"),
    [("ModelNotReadyException", 429), ("InternalServerException", 500),
     ("ServiceUnavailableException", 503), ("ThrottlingException", 429),
     ("ModelTimeoutException", 408)],
)
def test_each_retryable_error_is_retried(code: str, status: int) -> None:
    provider, stubber, waits = _stubbed(_settings())
    _add_error(stubber, code, status)
    _add_success(stubber)
    with stubber:
        assert provider.complete(REQUEST).usage.attempts == 2
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [("ValidationException", 400), ("AccessDeniedException", 403),
     ("ResourceNotFoundException", 404), ("ServiceQuotaExceededException", 400)],
)
def test_non_retryable_errors_fail_at_once(code: str, status: int) -> None:
    provider, stubber, waits = _stubbed(_settings())
    _add_error(stubber, code, status)
    _add_success(stubber)  # must stay unused
    with stubber, pytest.raises(LLMUnavailable, match=code) as caught:
        provider.complete(REQUEST)
    assert waits == [] and caught.value.usage.attempts == 1
    assert len(stubber._queue) == 1


def test_connection_refused_is_retried_then_unavailable() -> None:
    waits: list[float] = []
    provider = BedrockProvider(
        _settings(KYC_LLM_BEDROCK_ENDPOINT_URL="http://127.0.0.1:1", KYC_LLM_MAX_ATTEMPTS="2"),
        sleep=waits.append,
    )
    with pytest.raises(LLMUnavailable, match="gave up after 2 attempt.*connection"):
        provider.complete(REQUEST)
    assert len(waits) == 1
    provider.close()


def test_exhausted_retries_give_a_handled_llm_unavailable_judgment() -> None:
    provider, stubber, waits = _stubbed(_settings())
    for _ in range(3):
        _add_error(stubber, "ThrottlingException", 429)
    steps = (Step("blink", 0.5, 1.5),)
    frames = [(i / 10, np.full((48, 64, 3), 90, np.uint8)) for i in range(15)]
    evidence = VisionEvidence(15, 15, 0, 2, [ActionEvidence("blink", 0.5, 1.5, "unclear", "ear")],
                              {}, {})
    settings = _settings()
    with stubber:
        judgment = judge_movements(provider, steps, frames, evidence, settings,
                                   load_templates(settings.prompts_dir))
        stubber.assert_no_pending_responses()
    assert judgment.outcome == "llm_unavailable" and judgment.actions == []
    assert "gave up after 3 attempt(s)" in (judgment.error or "")
    assert [u.attempts for u in judgment.usage] == [3] and len(waits) == 2
    assert judgment.usage[0].images and judgment.usage[0].input_tokens is None
