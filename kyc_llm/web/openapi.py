"""The OpenAPI 3.1 document of the JSON API, served at /api/v1/openapi.json.

Kept beside the views it describes; a test checks that every /api/v1 route of the app is in
``paths`` with the same methods, so the document cannot silently fall behind.
"""

from __future__ import annotations

from typing import Any

from ..sessions.framestore import MAX_SEQ
from ..vision.pipeline import PATCH_OUTCOMES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed input", 401: "Missing token or API key", 403: "Wrong token",
            404: "Unknown session or alert", 409: "Frame or session rule broken", 410: "Session expired",
            413: "Too large", 415: "Wrong content type", 429: "Rate limited (Retry-After header)"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_SESSION_ID = {"name": "session_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_TOKEN = [{"sessionToken": []}]
_OPERATOR = [{"operatorKey": []}]

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "Step": {"type": "object", "properties": {
        "action": {"enum": ["turn_left", "turn_right", "look_up", "look_down", "blink", "open_mouth", "smile"]},
        "instruction": {"type": "string"}, "start_s": {"type": "number"}, "end_s": {"type": "number"},
        "duration_s": {"type": "number"}}},
    "SessionCreated": {"type": "object", "properties": {
        "id": {"type": "string"}, "token": {"type": "string", "description": "send as Authorization: Bearer"},
        "status": {"type": "string"}, "expires_in_s": {"type": "number"},
        "challenge": {"type": "object", "properties": {"steps": {"type": "array", "items": _ref("Step")},
                                                       "capture_s": {"type": "number"},
                                                       "wording_source": {"type": "string"}}},
        "upload": {"type": "object", "properties": {k: {"type": "number"} for k in (
            "fps", "width", "height", "jpeg_quality", "max_batch", "max_frame_bytes", "max_frames",
            "max_lag_s", "patch_every", "patch_size")}},
        "llm_mode": {"enum": ["live", "offline"]}, "links": {"type": "object"}}},
    "FrameBatch": {"type": "object", "minProperties": 1, "properties": {"frames": {
        "type": "array", "items": {"type": "object", "required": ["seq", "image"], "properties": {
            "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ,
                    "description": "strictly increasing per session (gaps allowed)"},
            "t": {"type": "number", "description": "client capture time in seconds since the first frame"},
            "image": {"type": "string", "description": "data:image/jpeg;base64,..."}}}},
        "patches": {
            "type": "array", "description": "lossless texture crops of frames of this request or earlier ones "
                                            "(every upload.patch_every-th frame with a face), upload.patch_size "
                                            "px centred on that frame's feedback.nose; 'frames' and 'patches' "
                                            "may not both be empty",
            "items": {"type": "object", "required": ["seq", "image", "x", "y"], "properties": {
                "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "description": "the patch's frame"},
                "image": {"type": "string", "description": "data:image/png;base64,... (RGB)"},
                "x": {"type": "integer", "minimum": 0},
                "y": {"type": "integer", "minimum": 0}}}}}},
    "CameraReport": {
        "type": "object", "additionalProperties": False,
        "description": "what the browser says about its camera (the client's word): a known virtual camera "
                       "sends the session to review, or fails it (KYC_VIRTUAL_CAMERA)",
        "properties": {
            "label": {"type": "string", "maxLength": 200, "description": "MediaStreamTrack.label"},
            "width": {"type": "integer", "minimum": 1, "maximum": 16384},
            "height": {"type": "integer", "minimum": 1, "maximum": 16384},
            "frame_rate": {"type": "number", "minimum": 0, "maximum": 1000},
            "resize_mode": {"enum": ["none", "crop-and-scale"]},
            "video_inputs": {"type": "integer", "minimum": 0, "maximum": 64},
            "interval_ms_median": {"type": "number", "minimum": 0, "maximum": 60000},
            "interval_ms_p90": {"type": "number", "minimum": 0, "maximum": 60000}}},
    "Feedback": {"type": "object", "properties": {
        **{k: {"type": "boolean"} for k in ("face_found", "one_face", "centred", "too_dark", "too_bright",
                                             "too_far", "blurred", "ok")},
        "hint": {"type": "string"}, "message": {"type": "string"},
        "issues": {"type": "array", "items": {"type": "string"}},
        "nose": {"type": ["array", "null"], "items": {"type": "number"},
                 "description": "nose position in this frame's pixels: the centre of its patch"}}},
    "UploadResult": {"type": "object", "properties": {
        "accepted": {"type": "integer"}, "last_seq": {"type": "integer"},
        "frames": {"type": "array", "items": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "t": {"type": "number"}, "feedback": _ref("Feedback")}}},
        "patches": {"type": "array", "items": {"type": "object", "properties": {
            "seq": {"type": "integer"},
            "outcome": {"enum": [*PATCH_OUTCOMES, "frame_unavailable"]}}}},
        "feedback": _ref("Feedback"), "progress": {"type": "object"}, "capture_complete": {"type": "boolean"},
        "expires_in_s": {"type": "number"}}},
    "SessionStatus": {"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"enum": ["created", "capturing", "deciding", "decided", "expired"]},
        "frames_received": {"type": "integer"}, "expires_in_s": {"type": "number"},
        "llm_mode": {"enum": ["live", "offline"]},
        "result": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "decision": {"enum": ["pass", "fail", "review"]},
            "guidance": {"enum": ["pass", "fail", "retry", "review"]},
            "message": {"type": "string"}, "can_retry": {"type": "boolean"}, "note": {"type": "string"}}}]}}},
    "Alert": {"type": "object", "properties": {
        "id": {"type": "integer"}, "severity": {"enum": ["low", "medium", "high", "critical"]},
        "cause": {"type": "string"}, "message": {"type": "string"}, "session_id": {"type": ["string", "null"]},
        "created_at": {"type": "number"}, "acknowledged_at": {"type": ["number", "null"]},
        "acknowledged_by": {"type": ["string", "null"]}}},
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict on each call)."""
    session_path = {"parameters": [_SESSION_ID]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kyc-llm liveness service", "version": "1.0.0",
                 "description": "Challenge-response video liveness: create a session, upload webcam frames "
                                "while the user follows the challenge, complete it for a decision."},
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/sessions": {"post": {
                "summary": "Start a session", "operationId": "createSession",
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "maxProperties": 0, "description": "empty or {}: no options yet"}}}},
                "responses": {"201": _json(_ref("SessionCreated"), "Session issued"), **_errors(400, 415, 429)}}},
            "/api/v1/sessions/{session_id}": {**session_path, "get": {
                "summary": "Status and user-facing result", "operationId": "getSession", "security": _TOKEN,
                "responses": {"200": _json(_ref("SessionStatus"), "Status"), **_errors(401, 403, 404)}}},
            "/api/v1/sessions/{session_id}/frames": {**session_path, "post": {
                "summary": "Upload frames (JSON batch of data URLs or multipart JPEG files)",
                "operationId": "uploadFrames", "security": _TOKEN,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FrameBatch")},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "frame": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "seq": {"type": "array", "items": {"type": "integer"}},
                        "t": {"type": "array", "items": {"type": "number"}},
                        "patch": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "patch_seq": {"type": "array", "items": {"type": "integer"}},
                        "patch_x": {"type": "array", "items": {"type": "integer"}},
                        "patch_y": {"type": "array", "items": {"type": "integer"}}}}}}},
                "responses": {"200": _json(_ref("UploadResult"), "Frames accepted, with feedback"),
                              **_errors(400, 401, 403, 404, 409, 410, 413, 415)}}},
            "/api/v1/sessions/{session_id}/complete": {**session_path, "post": {
                "summary": "Finish the capture and decide", "operationId": "completeSession", "security": _TOKEN,
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"camera": _ref("CameraReport")}}}}},
                "responses": {"200": _json(_ref("SessionStatus"), "Decided"),
                              "202": _json(_ref("SessionStatus"), "Still deciding: poll GET /sessions/{id}"),
                              **_errors(401, 403, 404, 409, 410)}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                             "responses": {"200": {"description": "OpenAPI document"}}}},
            "/healthz": {"get": {
                "summary": "Liveness and readiness (the database and the frame store can take a session)",
                "operationId": "healthz",
                "responses": {"200": {"description": "Ready: status ok, database ok, frames ok, "
                                                     "llm_mode offline or live"},
                              "503": {"description": "Degraded: database or frames unavailable"}}}},
            "/api/v1/operator/sessions": {"get": {
                "summary": "List sessions", "operationId": "operatorListSessions", "security": _OPERATOR,
                "parameters": [{"name": n, "in": "query", "schema": {"type": t}} for n, t in (
                    ("status", "string"), ("decision", "string"), ("since", "number"), ("until", "number"),
                    ("limit", "integer"), ("offset", "integer"))],
                "responses": {"200": {"description": "Sessions, newest first"}, **_errors(400, 401)}}},
            "/api/v1/operator/sessions/{session_id}": {**session_path, "get": {
                "summary": "One session's full evidence", "operationId": "operatorSession", "security": _OPERATOR,
                "responses": {"200": {"description": "Challenge, decision, per-action evidence, keyframes, "
                                                     "LLM calls, timeline, alerts, audit log"},
                              **_errors(401, 404)}}},
            "/api/v1/operator/sessions/{session_id}/frames/{seq}": {"get": {
                "summary": "A kept frame", "operationId": "operatorFrame", "security": _OPERATOR,
                "parameters": [_SESSION_ID, {"name": "seq", "in": "path", "required": True,
                                             "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}, **_errors(401, 404)}}},
            "/api/v1/operator/alerts": {"get": {
                "summary": "List alerts", "operationId": "operatorAlerts", "security": _OPERATOR,
                "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                               for n in ("severity", "acknowledged", "session_id")],
                "responses": {"200": _json({"type": "object", "properties": {
                    "alerts": {"type": "array", "items": _ref("Alert")}}}, "Alerts, newest first"),
                    **_errors(400, 401)}}},
            "/api/v1/operator/alerts/{alert_id}/ack": {"post": {
                "summary": "Acknowledge an alert", "operationId": "operatorAckAlert", "security": _OPERATOR,
                "parameters": [{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _json({"type": "object", "properties": {"alert": _ref("Alert")}}, "Acknowledged"),
                              **_errors(401, 404)}}},
            "/api/v1/operator/stats": {"get": {
                "summary": "Statistics", "operationId": "operatorStats", "security": _OPERATOR,
                "responses": {"200": {"description": "Counts by status, decision and reason; latency"},
                              **_errors(400, 401)}}},
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "sessionToken": {"type": "http", "scheme": "bearer", "description": "the token from createSession"},
                "operatorKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
