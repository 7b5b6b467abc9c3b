"""Usage accounting per LLM call, and the token estimates the request budget relies on."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Claude bills an image at about width*height/750 input tokens (Anthropic vision docs).
PIXELS_PER_IMAGE_TOKEN = 750
# English prose runs near 4 characters per token; only used for estimates, never billing.
CHARS_PER_TEXT_TOKEN = 4


def image_tokens(width: int, height: int) -> int:
    """Return the estimated input tokens of one image of ``width`` x ``height`` pixels."""
    return math.ceil(width * height / PIXELS_PER_IMAGE_TOKEN)


def text_tokens(text: str) -> int:
    """Return a rough input-token estimate for ``text`` (characters / 4, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TEXT_TOKEN)


@dataclass(frozen=True)
class Usage:
    """What one provider call cost, as stored with the session and printed by the bench.

    ``input_tokens``/``output_tokens`` come from the provider's response; they are ``None``
    when the call failed, and estimates when ``tokens_estimated`` (the mock provider).
    ``images`` holds the (width, height) of every image sent. ``attempts`` counts retries too.
    """

    provider: str
    model: str
    purpose: str
    input_tokens: int | None
    output_tokens: int | None
    images: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    latency_ms: float = 0.0
    attempts: int = 1
    stop_reason: str | None = None
    tokens_estimated: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images"] = [list(size) for size in self.images]
        return out
