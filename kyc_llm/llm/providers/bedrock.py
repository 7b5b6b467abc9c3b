"""Claude on AWS Bedrock through boto3 ``bedrock-runtime`` ``invoke_model``.

The body is the Anthropic Messages format with ``anthropic_version: bedrock-2023-05-31``.
botocore's own retries are off (one attempt per call) because ``retry.retry_policy`` owns
retries; two retry layers would multiply attempts and blur the usage record.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, HTTPClientError

from ..errors import LLMTransientError, LLMUnavailable
from ..messages import LLMRequest, api_messages
from ..settings import LLMSettings
from .base import RemoteProvider, Reply

ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock error codes worth another attempt; anything else 4xx (validation, access denied,
# not found, quota) fails the same way every time.
RETRYABLE_CODES = frozenset({
    "ThrottlingException",
    "ModelNotReadyException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelTimeoutException",
})


class BedrockProvider(RemoteProvider):
    """Calls ``invoke_model``. The boto3 client is built on first use, never at import."""

    name = "bedrock"

    def __init__(
        self,
        settings: LLMSettings,
        *,
        client: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, model=settings.bedrock_model_id, client=client, sleep=sleep)

    def _build_client(self) -> Any:
        s = self.settings
        # An explicit Session: boto3's module-level default session is not thread-safe.
        session = boto3.session.Session(
            aws_access_key_id=s.aws_access_key_id,
            aws_secret_access_key=s.aws_secret_access_key,
            aws_session_token=s.aws_session_token,
            # Explicit keys win; naming a profile too would make boto3 require it.
            profile_name=s.aws_profile if not s.aws_access_key_id else None,
            region_name=s.aws_region,
        )
        return session.client(
            "bedrock-runtime",
            endpoint_url=s.bedrock_endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=s.connect_timeout_s,
                read_timeout=s.read_timeout_s,
            ),
        )

    def body(self, request: LLMRequest) -> dict[str, Any]:
        """Return the ``invoke_model`` body for ``request`` (Anthropic Messages format)."""
        return {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "system": request.system,
            "messages": api_messages(request),
        }

    def _send(self, request: LLMRequest) -> Reply:
        try:
            response = self.client.invoke_model(
                modelId=self.model,
                body=json.dumps(self.body(request)),
                contentType="application/json",
                accept="application/json",
            )
            raw = response["body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = f"{code or status}: {error.get('Message', '')}"
            if code in RETRYABLE_CODES or status == 429 or status >= 500:
                raise LLMTransientError(message) from exc
            raise LLMUnavailable(f"bedrock: {message}") from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise LLMTransientError(f"connection: {exc}") from exc
        except BotoCoreError as exc:  # no credentials, bad endpoint, ...: retrying cannot help
            raise LLMUnavailable(f"bedrock: {exc}") from exc
        return parse_messages_body(raw)


def parse_messages_body(raw: bytes | str) -> Reply:
    """Return the text (all text blocks joined) and usage of a Messages API response body.

    Raises ``LLMUnavailable`` when the body is not the Messages envelope; an envelope whose
    text is not what we asked for is the caller's business (it becomes ``llm_invalid``).
    """
    try:
        data = json.loads(raw)
        blocks = data["content"]
        if not isinstance(blocks, list):
            raise TypeError("content is not a list")
        text = "".join(
            b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
        usage = data.get("usage") or {}
        input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LLMUnavailable(f"bedrock: malformed response body: {exc}") from exc
    return Reply(
        text=str(text),
        input_tokens=input_tokens if isinstance(input_tokens, int) else None,
        output_tokens=output_tokens if isinstance(output_tokens, int) else None,
        stop_reason=str(data.get("stop_reason")) if data.get("stop_reason") else None,
    )
