"""The Flask app: ``create_app`` builds it; blueprints ``api``, ``operator`` and ``pages``.

Nothing is built at import time. ``create_app`` reads the configuration, validates the
thresholds and the prompt templates (refusing to start on a broken one) and registers the
blueprints; the database, frame store, FaceMesh graphs and LLM client are created on first
use by ``kyc_llm.sessions.Services``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from flask import Flask, Response, request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.middleware.proxy_fix import ProxyFix

from ..config import ROOT, Config
from ..llm.challenge_text import check_wording_templates
from ..llm.providers import Provider
from ..llm.settings import LLMSettings
from ..prompts import load_templates
from ..sessions import Services
from ..vision.thresholds import load_thresholds
from .api import bp as api_bp
from .current import services
from .errors import UnsupportedTransferCoding, register_error_handlers
from .operator import bp as operator_bp
from .pages import bp as pages_bp
from .requests import AsciiIntConverter

__all__ = ["create_app", "services"]

log = logging.getLogger(__name__)
# Pages load only their own scripts and styles; frames go to our own API; keyframes are blobs.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_app(test_config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None,
               clock: Callable[[], float] | None = None, llm_provider: Provider | None = None) -> Flask:
    """Build the app: defaults, then ``environ`` (default ``os.environ``), then ``test_config``.

    ``clock`` (seconds, default ``time.time``) and ``llm_provider`` (default: from the
    environment) let tests control time and the LLM. Raises ``ConfigError`` for bad settings,
    a fixed challenge in production or unreadable thresholds, and ``TemplateError`` for a
    prompt template that is broken or breaks on these settings.
    """
    config = Config.from_env(environ, test_config)
    thresholds = load_thresholds(config.thresholds_path)
    llm_settings = LLMSettings.from_env(config.llm_env)
    templates = load_templates(llm_settings.prompts_dir)  # refuses a broken template
    check_wording_templates(templates, llm_settings,  # and one that breaks on these settings
                            [a for a, _ in config.fixed_challenge] if config.fixed_challenge else None)

    app = Flask(__name__, root_path=str(ROOT), template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"), static_url_path="/static")
    app.config["KYC"] = config
    # Base64 makes a JSON batch a third larger than its frames; leave room for the envelope.
    app.config["MAX_CONTENT_LENGTH"] = config.max_batch * config.max_frame_bytes * 4 // 3 + 65536
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_frame_bytes + 65536
    app.json.sort_keys = False  # type: ignore[attr-defined]  # typed as the base JSONProvider; Flask's default has it
    if config.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]  # Flask's way to wrap middleware

    services = Services(config, thresholds, templates, clock=clock, llm_provider=llm_provider)
    services.workflow  # validates the LLM settings now: a bad variable stops the start
    services.check_storage()
    app.extensions["kyc"] = services

    register_error_handlers(app)
    app.url_map.converters["int"] = AsciiIntConverter
    app.url_map.merge_slashes = False  # "/api/v1//sessions" is a 404 in JSON, not an HTML redirect

    @app.before_request
    def _body_framing() -> None:
        # gunicorn de-chunks a body but passes gzip or deflate through undecoded (a gzip body
        # was read as no body at all): chunked is the one transfer coding taken.
        codings = [c.strip().lower() for c in request.headers.get("Transfer-Encoding", "").split(",") if c.strip()]
        if any(c != "chunked" for c in codings):
            raise UnsupportedTransferCoding("only the chunked transfer coding is supported")
        # gunicorn hands on a body that ended before its Content-Length (the client closed its
        # side) as if it were whole; HTTP calls such a message incomplete. Read once, cached
        # for the route.
        if request.content_length and len(request.get_data(cache=True)) < request.content_length:
            raise ClientDisconnected()

    app.register_blueprint(api_bp)
    app.register_blueprint(operator_bp)
    app.register_blueprint(pages_bp)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if resp.mimetype == "application/json":
            resp.headers.setdefault("Cache-Control", "no-store")
        elif resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy", _CSP)
            resp.headers.setdefault("Permissions-Policy", "camera=(self), microphone=()")
        return resp

    log.info("kyc service configured: %s", config.public_summary())
    return app
