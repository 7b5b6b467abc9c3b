"""Operator API under /api/v1/operator, behind an API key (``X-API-Key``, constant-time compare).

Sessions with their full evidence, keyframes while they are kept, alerts and statistics.
Without a configured key every request is refused (401): the operator API is closed.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from ..sessions.analysis import rounded_summary
from ..sessions.errors import AlertNotFound, BadRequest, OperatorUnauthorized, SessionNotFound
from ..sessions.framestore import MAX_SEQ, FrameStoreError
from ..sessions.store import SEVERITIES, STATUSES
from ..vision.intake import PNG_SIGNATURE
from .current import services
from .requests import json_body, query_choice, query_float, query_int

MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer

bp = Blueprint("operator", __name__, url_prefix="/api/v1/operator")

# The per-frame numbers the evidence timeline plots.
_TIMELINE = ("t", "n_faces", "yaw", "pitch", "roll", "ear_left", "ear_right", "mouth_open", "smile")


@bp.before_request
def _require_key() -> None:
    expected = services().config.operator_api_key
    given = request.headers.get("X-API-Key", "")
    if expected is None:
        raise OperatorUnauthorized("the operator API is not configured (set KYC_OPERATOR_API_KEY)")
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise OperatorUnauthorized("a valid X-API-Key header is required")


@bp.get("/sessions")
def list_sessions() -> Response:
    store = services().sessions.store
    rows = store.list_sessions(
        status=query_choice("status", STATUSES), decision=query_choice("decision", ("pass", "fail", "review")),
        since=query_float("since"), until=query_float("until"),
        limit=query_int("limit", 50, 1, 500), offset=query_int("offset", 0, 0, 1_000_000))
    open_alerts = {}
    for a in store.list_alerts(acknowledged=False, limit=1000):
        if a.session_id:
            open_alerts[a.session_id] = open_alerts.get(a.session_id, 0) + 1
    return jsonify({"sessions": [dict(s.public(), open_alerts=open_alerts.get(s.id, 0)) for s in rows]})


@bp.get("/sessions/<session_id>")
def session_detail(session_id: str) -> Response:
    """Everything about one session: challenge, decision, evidence, LLM calls, timeline, audit."""
    store = services().sessions.store
    session = store.get_session(session_id)
    if session is None:
        raise SessionNotFound("no such session")
    challenge = store.get_challenge(session_id)
    decision = store.get_decision(session_id)
    frames = store.frames(session_id)
    kept = {f.seq for f in frames if f.stored_key}
    body: dict[str, Any] = {
        "session": session.public(),
        "challenge": challenge.as_dict() if challenge else None,
        "decision": None,
        "actions": store.action_evidence(session_id),
        "llm_calls": [{"session_id": session_id, **vars(c)} for c in store.llm_calls(session_id)],
        "timeline": [_timeline_point(f.seq, f.summary) for f in frames],
        "alerts": [a.public() for a in store.list_alerts(session_id=session_id)],
        "audit": store.audit_log(session_id),
    }
    if decision is not None:
        keyframes = [dict(k, url=url_for("operator.frame_image", session_id=session_id, seq=k["seq"])
                          if k["seq"] in kept else None) for k in decision.keyframes]
        body["decision"] = {
            "decision": decision.decision, "guidance": decision.guidance, "reasons": decision.reasons,
            "rationale": decision.rationale, "llm_used": decision.llm_used, "decided_at": decision.decided_at,
            "duration_ms": decision.duration_ms, "evidence": decision.evidence, "judgment": decision.judgment,
            "keyframes": keyframes,
        }
    return jsonify(body)


@bp.get(f"/sessions/<session_id>/frames/<int(max={MAX_SEQ}):seq>")
def frame_image(session_id: str, seq: int) -> Response:
    """One kept frame as it was uploaded, JPEG or PNG (404 once the retention policy deleted it)."""
    svc = services().sessions
    record = svc.store.frame(session_id, seq)
    if record is None or record.stored_key is None:
        raise SessionNotFound("frame not found or no longer kept")
    try:
        data = svc.frames.get(record.stored_key)
    except FrameStoreError:
        raise SessionNotFound("frame not found or no longer kept") from None
    mimetype = "image/png" if data.startswith(PNG_SIGNATURE) else "image/jpeg"  # the upload checked it is one
    return Response(data, mimetype=mimetype, headers={"Cache-Control": "no-store"})


@bp.get("/alerts")
def list_alerts() -> Response:
    ack = query_choice("acknowledged", ("true", "false"))
    alerts = services().sessions.store.list_alerts(
        severity=query_choice("severity", SEVERITIES),
        acknowledged=None if ack is None else ack == "true",
        session_id=request.args.get("session_id") or None, limit=query_int("limit", 100, 1, 1000))
    return jsonify({"alerts": [a.public() for a in alerts]})


@bp.post(f"/alerts/<int(max={MAX_ROW_ID}):alert_id>/ack")  # larger ids are 404s, not SQLite overflows
def ack_alert(alert_id: int) -> Response:
    by = json_body(optional=True, fields=("by",)).get("by", "operator")
    # isprintable: no control characters, and no lone surrogates (which SQLite cannot store)
    if not isinstance(by, str) or not by.isprintable() or not 1 <= len(by.strip()) <= 80:
        raise BadRequest("'by' must be a name of 1-80 printable characters")
    svc = services()
    alert = svc.sessions.store.ack_alert(alert_id, by, svc.clock())
    if alert is None:
        raise AlertNotFound("no such alert")
    return jsonify({"alert": alert.public()})


@bp.get("/stats")
def stats() -> Response:
    return jsonify(services().sessions.store.stats(since=query_float("since")))


def _timeline_point(seq: int, summary: dict[str, Any]) -> dict[str, Any]:
    s = rounded_summary(summary)
    point = {k: s.get(k) for k in _TIMELINE}
    point["seq"] = seq
    return point
