"""Typed errors of the session lifecycle. Each carries the HTTP status the web layer answers with.

They are raised where the rule is checked (storage, lifecycle) and rendered by the one JSON
error handler in ``kyc_llm.web.errors``; views never build error bodies themselves.
"""

from __future__ import annotations

from ..errors import KycError


class SessionError(KycError):
    """Base of the lifecycle errors; ``status`` is the HTTP status to answer with."""

    code = "session_error"
    status = 400


class BadRequest(SessionError):
    """The request itself is malformed (JSON shape, content type, missing fields)."""

    code = "bad_request"
    status = 400


class SessionNotFound(SessionError):
    code = "session_not_found"
    status = 404


class TokenMissing(SessionError):
    code = "token_missing"
    status = 401


class TokenInvalid(SessionError):
    code = "token_invalid"
    status = 403


class SessionExpired(SessionError):
    code = "session_expired"
    status = 410


class SessionClosed(SessionError):
    """The session is completed (or being decided): no more frames, no second completion."""

    code = "session_closed"
    status = 409


class FrameRejected(SessionError):
    """A frame broke a session rule: out of sequence, replayed, too late, over the limits.

    ``code`` says which rule (``out_of_sequence``, ``replayed_frame``, ``too_many_frames``,
    ``frame_too_large``, ``bad_timestamp``).
    """

    code = "frame_rejected"
    status = 409


class PayloadTooLarge(SessionError):
    code = "payload_too_large"
    status = 413


class NoFrames(SessionError):
    code = "no_frames"
    status = 409


class RateLimited(SessionError):
    """Too many sessions or too many failed sessions from one client; ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after + 0.999))


class OperatorUnauthorized(SessionError):
    code = "unauthorized"
    status = 401


class AlertNotFound(SessionError):
    code = "alert_not_found"
    status = 404
