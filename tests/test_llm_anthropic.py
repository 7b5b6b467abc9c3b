"""The direct-API provider against a fake Messages API on 127.0.0.1 (real HTTP, real SDK)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from PIL import Image

from kyc_llm.llm.errors import LLMUnavailable
from kyc_llm.llm.messages import ImagePart, LLMRequest, Message, TextPart
from kyc_llm.llm.providers.anthropic_api import AnthropicProvider
from kyc_llm.llm.settings import LLMSettings


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 200, 30)).save(out, format="JPEG")
    return out.getvalue()


JPEG = _jpeg()
REQUEST = LLMRequest(
    system="System rules.",
    messages=(Message("user", (TextPart("[F1]"), ImagePart(JPEG, 80, 60), TextPart("Judge."))),),
    max_tokens=256,
    temperature=0.0,
    purpose="movement_judgment",
)
OK_BODY = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "{\"fine\": true}"}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 123, "output_tokens": 9},
}


class FakeMessagesAPI:
    """Answers POST /v1/messages from a script of (status, body, delay_s); records requests."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, dict[str, Any], float]] = deque()
        self.requests: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                api.requests.append({"path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": json.loads(raw)})
                status, body, delay = api.script.popleft() if api.script else (200, OK_BODY, 0)
                time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def error(self, status: int, kind: str) -> None:
        self.script.append((status, {"type": "error", "error": {"type": kind, "message": kind}}, 0))


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    fake = FakeMessagesAPI()
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join()


@pytest.fixture
def make(api: FakeMessagesAPI) -> Iterator[Any]:
    providers: list[AnthropicProvider] = []

    def build(**env: str) -> tuple[AnthropicProvider, list[float]]:
        settings = LLMSettings.from_env({"ANTHROPIC_API_KEY": "sk-test-key",
                                         "KYC_LLM_ANTHROPIC_BASE_URL": api.url, **env})
        waits: list[float] = []
        provider = AnthropicProvider(settings, sleep=waits.append)
        providers.append(provider)
        return provider, waits

    yield build
    for provider in providers:
        provider.close()


def test_request_reaches_the_api_in_messages_format(api: FakeMessagesAPI, make: Any) -> None:
    provider, _ = make(KYC_LLM_ANTHROPIC_MODEL="claude-test")
    response = provider.complete(REQUEST)

    (seen,) = api.requests
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == "sk-test-key"
    assert seen["headers"]["anthropic-version"]
    assert seen["body"] == {
        "model": "claude-test",
        "max_tokens": 256,
        "temperature": 0.0,
        "system": "System rules.",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "[F1]"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": base64.b64encode(JPEG).decode("ascii")}},
            {"type": "text", "text": "Judge."},
        ]}],
    }
    assert response.text == '{"fine": true}'
    usage = response.usage
    assert (usage.provider, usage.model, usage.input_tokens, usage.output_tokens) == (
        "anthropic", "claude-test", 123, 9)
    assert usage.images == ((80, 60),) and usage.attempts == 1


def test_overloaded_and_server_errors_are_retried(api: FakeMessagesAPI, make: Any) -> None:
    api.error(529, "overloaded_error")
    api.error(500, "api_error")
    api.error(429, "rate_limit_error")
    provider, waits = make(KYC_LLM_MAX_ATTEMPTS="4")
    assert provider.complete(REQUEST).usage.attempts == 4
    assert len(api.requests) == 4 and len(waits) == 3  # the SDK's own retries are off


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"),
                                              (401, "authentication_error"),
                                              (404, "not_found_error")])
def test_client_errors_are_not_retried(api: FakeMessagesAPI, make: Any, status: int,
                                       kind: str) -> None:
    api.error(status, kind)
    provider, waits = make()
    with pytest.raises(LLMUnavailable, match=f"anthropic: {status}"):
        provider.complete(REQUEST)
    assert len(api.requests) == 1 and waits == []


def test_read_timeouts_are_retried_then_unavailable(api: FakeMessagesAPI, make: Any) -> None:
    api.script.extend([(200, OK_BODY, 0.3), (200, OK_BODY, 0.3)])
    provider, waits = make(KYC_LLM_READ_TIMEOUT_S="0.1", KYC_LLM_MAX_ATTEMPTS="2")
    with pytest.raises(LLMUnavailable, match="gave up after 2 attempt.*connection") as caught:
        provider.complete(REQUEST)
    assert caught.value.usage.attempts == 2 and len(waits) == 1


def test_the_sdk_client_is_lazy_and_needs_a_key() -> None:
    from kyc_llm.errors import ConfigError

    provider = AnthropicProvider(LLMSettings.from_env({"ANTHROPIC_API_KEY": "k"}))
    assert provider._client is None
    assert provider.client.max_retries == 0
    provider.close()
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(LLMSettings(provider="anthropic"))
