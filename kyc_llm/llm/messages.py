"""The provider-neutral request: a system prompt and messages of text and JPEG images.

Both Bedrock (``invoke_model`` body) and the direct API take the Anthropic Messages shape,
so ``api_messages`` is the one place that shape is built.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, Union

from .usage import Usage, image_tokens, text_tokens


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """One JPEG image; ``width``/``height`` are its pixel size, kept for usage accounting."""

    jpeg: bytes
    width: int
    height: int


Part = Union[TextPart, ImagePart]


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class LLMRequest:
    """Everything a provider sends. ``purpose`` names the template, for usage records."""

    system: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float
    purpose: str

    def images(self) -> tuple[tuple[int, int], ...]:
        """Return the (width, height) of every image in the request, in order."""
        return tuple(
            (p.width, p.height) for m in self.messages for p in m.parts if isinstance(p, ImagePart)
        )

    def estimated_input_tokens(self) -> int:
        """Return images (width*height/750 each) plus text (about 4 characters a token)."""
        text = self.system + "".join(
            p.text for m in self.messages for p in m.parts if isinstance(p, TextPart)
        )
        return text_tokens(text) + sum(image_tokens(w, h) for w, h in self.images())

    def followed_by(self, assistant_text: str, user_text: str, purpose: str) -> "LLMRequest":
        """Return this request with the model's answer and a new user turn appended."""
        extra = (
            Message("assistant", (TextPart(assistant_text),)),
            Message("user", (TextPart(user_text),)),
        )
        return LLMRequest(
            self.system, self.messages + extra, self.max_tokens, self.temperature, purpose
        )


@dataclass(frozen=True)
class LLMResponse:
    """The model's text and what the call cost."""

    text: str
    usage: Usage


def api_messages(request: LLMRequest) -> list[dict[str, Any]]:
    """Return the request's messages in the Anthropic Messages format (base64 JPEG sources)."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                content.append({
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/jpeg",
                        "data": base64.b64encode(part.jpeg).decode("ascii"),
                    },
                })
            else:
                content.append({"type": "text", "text": part.text})
        out.append({"role": message.role, "content": content})
    return out
