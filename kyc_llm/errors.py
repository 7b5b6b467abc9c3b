"""One small hierarchy of typed errors, raised at the boundary and rendered by one handler."""

from __future__ import annotations

import difflib
from typing import Iterable


class KycError(Exception):
    """Base of every error this package raises on purpose.

    ``code`` is a stable machine-readable identifier; the message is for humans.
    """

    code = "kyc_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class FrameError(KycError, ValueError):
    """A frame could not be accepted: undecodable, wrong size or channels, too large."""

    code = "bad_frame"


class SpecError(KycError, ValueError):
    """A session spec (evaluation input) is malformed or points at a missing file."""

    code = "bad_spec"


class ChallengeError(KycError, ValueError):
    """A challenge is malformed: unknown action, bad or overlapping windows."""

    code = "bad_challenge"


class ConfigError(KycError, ValueError):
    """Configuration or a thresholds file is missing, malformed or out of range."""

    code = "bad_config"

    @classmethod
    def check_known(cls, names: Iterable[str], known: Iterable[str]) -> None:
        """Raise for any of ``names`` not in ``known``, suggesting the nearest known name: a
        misspelt variable (KYC_REQUIRE_LLMS=1) must not leave its setting at the default."""
        known = sorted(known)
        unknown = sorted(set(names) - set(known))
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise cls(f"unknown setting(s): {', '.join(hints)}")
