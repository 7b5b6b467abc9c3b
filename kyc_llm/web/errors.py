"""The one error shape of the service and the handlers that render every error in it.

Every error answers ``{"error": {"code": <machine code>, "message": <human text>}}`` with a
4xx status for anything the client sent. Views and services raise typed errors; only this
module builds error responses. Pages (not under /api or /healthz) get a small HTML page.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..errors import ChallengeError, ConfigError, FrameError, KycError
from ..sessions.errors import OperatorUnauthorized, RateLimited, SessionError, TokenMissing

log = logging.getLogger(__name__)
_SQL_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.NotSupportedError)

# Codes for HTTP errors raised by Flask/werkzeug itself (routing, body size, methods).
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}
_HTML = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{{ status }}</title>
<link rel="stylesheet" href="/static/kyc.css"><main class="card"><h1>{{ status }}</h1><p>{{ message }}</p>
<p><a href="/">Back to the start</a></p></main></html>"""


class UnsupportedMediaType(KycError):
    code = "unsupported_media_type"
    status = 415


class MalformedJSON(KycError):
    code = "malformed_json"
    status = 400


class UnsupportedTransferCoding(KycError):
    code = "unsupported_transfer_coding"
    status = 501


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error response (or an HTML page for page routes) with ``status``."""
    if _wants_html():
        resp = Response(render_template_string(_HTML, status=status, message=message), status=status,
                        mimetype="text/html")
    else:
        resp = jsonify({"error": {"code": code, "message": message}})
        resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _wants_html() -> bool:
    path = request.path
    if path.startswith("/api/") or path == "/healthz":
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _status_of(exc: KycError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, (FrameError, ChallengeError)):
        return 400
    return 400 if not isinstance(exc, ConfigError) else 500


def register_error_handlers(app: Flask) -> None:
    """Install the handlers: typed errors, HTTP errors, and anything unexpected."""

    @app.errorhandler(KycError)
    def _kyc(exc: KycError) -> Response:
        headers: dict[str, Any] = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, TokenMissing):
            headers["WWW-Authenticate"] = 'Bearer realm="kyc-session"'
        if isinstance(exc, OperatorUnauthorized):
            headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
        status = _status_of(exc)
        message = exc.message
        if status >= 500 and status != 501:  # 501: a transfer coding the client chose, not our fault
            log.error("%s on %s %s: %s", exc.code, request.method, request.path, exc.message)
            message = "something went wrong on our side; please try again later"  # details (paths) stay in the log
        elif not isinstance(exc, SessionError) or status >= 429:
            log.info("%s %s -> %d %s", request.method, request.path, status, exc.code)
        return error_response(status, exc.code, message, headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
        message = exc.description or exc.name or "error"
        if status == 413:
            message = "the request body is too large"
        if isinstance(exc, ClientDisconnected):  # werkzeug's text would blame "the browser (or proxy)"
            code, message = ("incomplete_body", "the request body ended early (before its Content-Length, "
                             "or in a broken chunk); send it again")
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        return error_response(status, code, message, headers)

    @app.errorhandler(sqlite3.DatabaseError)
    def _storage(exc: sqlite3.DatabaseError) -> Response:
        if isinstance(exc, _SQL_BUGS):  # our SQL is wrong: a bug like any other
            return _unexpected(exc)
        # The database failing (disk full, read-only, I/O error, replaced file): not a bug to
        # trace, and a client may well succeed a little later (the page retries a 503).
        log.error("storage unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "storage_unavailable", "the service cannot store your check right now; "
                              "please try again in a moment", {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # A bug, not a bad input: log the traceback (our code only; no request bodies).
        log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side; please try again")
