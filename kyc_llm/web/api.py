"""The public JSON API under /api/v1 (and /healthz): thin views over ``SessionService``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from ..sessions.lifecycle import client_key
from ..sessions.store import ChallengeRecord, SessionRecord
from ..upload import PATCH_EVERY, PATCH_SIZE
from .current import services
from .openapi import openapi_document
from .requests import bearer_token, camera_report, frame_uploads, json_body

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)
PREFIX = "/api/v1"


def _client() -> str:
    return client_key(request.remote_addr or "unknown")


def _session(session_id: str) -> SessionRecord:
    return services().sessions.authorize(session_id, bearer_token())


@bp.post(f"{PREFIX}/sessions")
def create_session() -> tuple[Response, int]:
    """Issue a session: id, token, challenge, upload hints, expiry."""
    json_body(optional=True, fields=())  # no options yet: an empty body or {}
    svc = services().sessions
    session, challenge, token = svc.create(_client())
    body = {
        "id": session.id,
        "token": token,
        "status": session.status,
        "expires_in_s": round(session.expires_at - session.created_at, 1),
        "challenge": _challenge_view(challenge, session),
        "upload": _upload_hints(),
        "llm_mode": session.llm_mode,
        "links": {
            "self": url_for("api.get_session", session_id=session.id),
            "frames": url_for("api.upload_frames", session_id=session.id),
            "complete": url_for("api.complete_session", session_id=session.id),
        },
    }
    resp = jsonify(body)
    resp.headers["Location"] = body["links"]["self"]
    return resp, 201


@bp.post(f"{PREFIX}/sessions/<session_id>/frames")
def upload_frames(session_id: str) -> Response:
    """Accept a batch of frames; answer with per-frame feedback and the challenge progress."""
    session = _session(session_id)
    uploads, patches = frame_uploads()
    return jsonify(services().sessions.add_frames(session, uploads, patches))


@bp.post(f"{PREFIX}/sessions/<session_id>/complete")
def complete_session(session_id: str) -> tuple[Response, int]:
    """Decide the session (bounded); 202 while the decision is still running."""
    session = _session(session_id)
    raw = json_body(optional=True, fields=("camera",)).get("camera")
    camera = None if raw is None else camera_report(raw)
    body, finished = services().sessions.complete(session, camera)
    return jsonify(body), (200 if finished else 202)


@bp.get(f"{PREFIX}/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    """Status and, once decided, the user-facing result."""
    session = _session(session_id)
    return jsonify(services().sessions.status(session))


@bp.get(f"{PREFIX}/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness and readiness: the database and the frame store could take a session now
    (written to, with room on their disks); 503 with what failed otherwise."""
    svc = services()
    checks = {}
    # Opening them is part of the check: a database that cannot even be opened is down.
    pings = {"database": lambda: svc.sessions.store.ping(), "frames": lambda: svc.sessions.frames.ping()}
    for name, ping in pings.items():
        try:
            ping()
            checks[name] = "ok"
        except Exception as exc:  # any storage failure means "not ready"; details go to the log
            log.error("healthz: %s unavailable: %s", name, getattr(exc, "message", None) or exc)
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ready else "degraded", **checks,
            "llm_mode": "offline" if svc.workflow.offline else "live"}
    return jsonify(body), (200 if ready else 503)


def _challenge_view(challenge: ChallengeRecord, session: SessionRecord) -> dict[str, Any]:
    steps = []
    for step, text in zip(challenge.steps, challenge.wording):
        steps.append({"action": step.action, "instruction": text, "start_s": step.start_s,
                      "end_s": step.end_s, "duration_s": round(step.end_s - step.start_s, 3)})
    return {"steps": steps, "capture_s": session.capture_s, "wording_source": challenge.source}


def _upload_hints() -> dict[str, Any]:
    cfg = services().config
    return {"fps": cfg.fps_hint, "width": cfg.frame_width, "height": cfg.frame_height,
            "jpeg_quality": cfg.jpeg_quality, "max_batch": cfg.max_batch,
            "max_frame_bytes": cfg.max_frame_bytes, "max_frames": cfg.max_frames,
            # A frame whose capture time lags the server's clock more than this is refused:
            # what a client may spend re-sending frames after a lost connection.
            "max_lag_s": cfg.max_upload_lag_s,
            # Every patch_every-th frame with a face also gets a lossless PNG crop of
            # patch_size px centred on the nose the server found in it (its feedback.nose),
            # sent in a later request's "patches".
            "patch_every": PATCH_EVERY, "patch_size": PATCH_SIZE}
