"""Operator endpoints: API-key refusals, session listing and evidence, alerts, statistics."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from test_api import assert_error
from test_api_support import OP, Api, clip_frames, db_rows, live_spec, noise_jpeg

OPERATOR_URLS = ["/api/v1/operator/sessions", "/api/v1/operator/sessions/" + "0" * 32,
                 "/api/v1/operator/alerts", "/api/v1/operator/stats",
                 "/api/v1/operator/sessions/" + "0" * 32 + "/frames/0"]


@pytest.mark.parametrize("url", OPERATOR_URLS)
def test_operator_api_refuses_without_the_right_key(client, url):
    r = client.get(url)
    assert_error(r, 401, "unauthorized")
    assert "X-API-Key" in r.headers["WWW-Authenticate"]
    assert_error(client.get(url, headers={"X-API-Key": "test-operator-key-012345678"}), 401, "unauthorized")
    assert_error(client.get(url, headers={"X-API-Key": ""}), 401, "unauthorized")
    assert_error(client.post("/api/v1/operator/alerts/1/ack"), 401, "unauthorized")


def test_operator_api_is_closed_when_no_key_is_configured(app_config, clock):
    from kyc_llm.web import create_app

    app_config.pop("operator_api_key")
    app = create_app(app_config, environ={}, clock=clock)
    r = app.test_client().get("/api/v1/operator/sessions", headers={"X-API-Key": "anything-at-all-123"})
    assert_error(r, 401, "unauthorized")
    app.extensions["kyc"].close()


def _failed_session(client, clock, seed: int = 0) -> Api:
    api = Api(client, clock)
    api.post_frames([(i, i / 8, noise_jpeg(100 + 10 * seed + i)) for i in range(4)])
    assert api.complete().get_json()["result"]["decision"] == "fail"
    return api


def test_sessions_list_filters_and_detail(app, client, clock, shared_data):
    failed = _failed_session(client, clock)
    live = Api(client, clock)
    live.upload_clip(clip_frames(live_spec(shared_data)), batch=4)
    assert live.complete().get_json()["result"]["decision"] == "pass"
    open_one = Api(client, clock)

    listed = client.get("/api/v1/operator/sessions", headers=OP).get_json()["sessions"]
    assert [s["id"] for s in listed] == [open_one.id, live.id, failed.id]
    assert all("token_hash" not in s and "client_key" not in s for s in listed)
    only_fail = client.get("/api/v1/operator/sessions?decision=fail", headers=OP).get_json()["sessions"]
    assert [s["id"] for s in only_fail] == [failed.id]
    created = client.get("/api/v1/operator/sessions?status=created", headers=OP).get_json()["sessions"]
    assert [s["id"] for s in created] == [open_one.id]
    assert_error(client.get("/api/v1/operator/sessions?decision=maybe", headers=OP), 400, "bad_request")
    assert_error(client.get("/api/v1/operator/sessions?limit=0", headers=OP), 400, "bad_request")
    assert_error(client.get("/api/v1/operator/sessions?limit=%C2%B2", headers=OP), 400, "bad_request")  # was a 500
    assert_error(client.get("/api/v1/operator/sessions?limit=" + "1" * 4400, headers=OP), 400, "bad_request")
    assert_error(client.get("/api/v1/operator/sessions?since=yesterday", headers=OP), 400, "bad_request")
    for odd in ("1_0", "%D9%A1%D9%A2", "nan"):  # float() reads the first two as 10 and 12
        assert_error(client.get(f"/api/v1/operator/sessions?since={odd}", headers=OP), 400, "bad_request")

    d = client.get(f"/api/v1/operator/sessions/{live.id}", headers=OP).get_json()
    assert d["decision"]["decision"] == "pass" and d["decision"]["llm_used"] is False
    assert [a["verdict"] for a in d["actions"]] == ["performed", "performed"]
    assert d["decision"]["evidence"]["signals"]["planarity"]["available"] is True
    assert len(d["timeline"]) == live.body["upload"]["fps"] * 4 + 2 and "yaw" in d["timeline"][5]
    labels = [k["label"] for k in d["decision"]["keyframes"]]
    assert labels[0] == "baseline" and any("turn_left" in lab for lab in labels)
    assert all(k["url"] is None for k in d["decision"]["keyframes"])  # passed: frames deleted
    assert [e["event"] for e in d["audit"]][-1] == "frames_deleted"
    assert_error(client.get("/api/v1/operator/sessions/" + "f" * 32, headers=OP), 404, "session_not_found")


def test_kept_frames_are_served_as_keyframes(app_config, clock, shared_data):
    from kyc_llm.web import create_app

    app_config["fixed_challenge"] = "turn_left:1.8,turn_right:2.1"  # no turn to the right
    app_config["frame_retention"] = "all"
    app = create_app(app_config, environ={}, clock=clock)
    client = app.test_client()
    api = Api(client, clock)
    api.upload_clip(clip_frames(live_spec(shared_data)), batch=4)
    assert api.complete().get_json()["result"]["decision"] == "fail"
    d = client.get(f"/api/v1/operator/sessions/{api.id}", headers=OP).get_json()
    assert "ACTION_MISSING" in d["decision"]["reasons"]
    url = d["decision"]["keyframes"][0]["url"]
    img = client.get(url, headers=OP)
    assert img.status_code == 200 and img.mimetype == "image/jpeg" and img.data[:2] == b"\xff\xd8"
    assert_error(client.get(url, headers={}), 401, "unauthorized")
    assert_error(client.get(f"/api/v1/operator/sessions/{api.id}/frames/9999", headers=OP), 404,
                 "session_not_found")
    app.extensions["kyc"].close()


def test_a_kept_png_frame_is_served_as_png(client, clock):
    api = Api(client, clock)
    png = cv2.imencode(".png", np.random.default_rng(3).integers(0, 255, (96, 96, 3), dtype=np.uint8))[1].tobytes()
    assert api.post_frames([(0, 0.0, noise_jpeg(1)), (1, 0.1, png)]).status_code == 200
    jpeg_frame = client.get(f"/api/v1/operator/sessions/{api.id}/frames/0", headers=OP)
    png_frame = client.get(f"/api/v1/operator/sessions/{api.id}/frames/1", headers=OP)
    assert (jpeg_frame.mimetype, png_frame.mimetype) == ("image/jpeg", "image/png") and png_frame.data == png


def test_alerts_list_filter_and_acknowledge(app, client, clock):
    api = Api(client, clock)
    api.post_frames([(0, 0.0, noise_jpeg(1))])
    api.post_frames([(1, 0.1, noise_jpeg(1))])  # replayed: a high alert
    alerts = client.get("/api/v1/operator/alerts", headers=OP).get_json()["alerts"]
    assert [(a["severity"], a["cause"], a["session_id"]) for a in alerts] == [("high", "replayed_frame", api.id)]
    assert "client_key" not in alerts[0]
    assert client.get("/api/v1/operator/alerts?severity=critical", headers=OP).get_json()["alerts"] == []
    assert_error(client.get("/api/v1/operator/alerts?severity=urgent", headers=OP), 400, "bad_request")

    clock.advance(5)
    r = client.post(f"/api/v1/operator/alerts/{alerts[0]['id']}/ack", json={"by": "alice"}, headers=OP)
    assert r.status_code == 200
    assert r.get_json()["alert"]["acknowledged_by"] == "alice"
    row = db_rows(app, "SELECT acknowledged_at, acknowledged_by FROM alerts")[0]
    assert row["acknowledged_at"] == clock.now and row["acknowledged_by"] == "alice"
    assert client.get("/api/v1/operator/alerts?acknowledged=false", headers=OP).get_json()["alerts"] == []
    events = [r["event"] for r in db_rows(app, "SELECT event FROM audit_log WHERE session_id = ?", api.id)]
    assert events[-2:] == ["alert_raised", "alert_acknowledged"]
    last = db_rows(app, "SELECT detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert json.loads(last["detail"])["by"] == "alice"
    assert_error(client.post("/api/v1/operator/alerts/999/ack", headers=OP), 404, "alert_not_found")
    # Unicode digits in a path are no number (werkzeug read "\u0661" as 1 and acknowledged alert 1).
    assert_error(client.post("/api/v1/operator/alerts/%D9%A1/ack", headers=OP), 404, "not_found")
    assert_error(client.post(f"/api/v1/operator/alerts/{alerts[0]['id']}/ack", json={"bY": "alice"}, headers=OP),
                 400, "bad_request")  # a misspelt field is not ignored
    # Ids past SQLite's integers are unknown ids, not a database overflow (was a 500).
    assert_error(client.post("/api/v1/operator/alerts/99999999999999999999999/ack", headers=OP), 404, "not_found")
    assert_error(client.get(f"/api/v1/operator/sessions/{api.id}/frames/99999999999999999999999", headers=OP),
                 404, "not_found")
    assert_error(client.post(f"/api/v1/operator/alerts/{alerts[0]['id']}/ack", json={"by": ""}, headers=OP),
                 400, "bad_request")
    # A lone surrogate (SQLite cannot store it: was a 500) and control characters are no name.
    for raw in (b'{"by": "\\ud800x"}', b'{"by": "a\\u0000"}', b'{"by": "a\\nb"}'):
        assert_error(client.post(f"/api/v1/operator/alerts/{alerts[0]['id']}/ack", data=raw,
                                 content_type="application/json", headers=OP), 400, "bad_request")
    assert_error(client.post(f"/api/v1/operator/alerts/{alerts[0]['id']}/ack", data=b"{",
                             content_type="application/json", headers=OP), 400, "malformed_json")


def test_stats(client, clock):
    _failed_session(client, clock)
    Api(client, clock)
    s = client.get("/api/v1/operator/stats", headers=OP).get_json()
    assert s["sessions"] == 2 and s["by_status"] == {"decided": 1, "created": 1}
    assert s["by_decision"] == {"fail": 1} and s["pass_rate"] == 0.0
    assert s["reasons"]["NO_FACE"] == 1 and s["decision_ms_p50"] is not None
    later = client.get(f"/api/v1/operator/stats?since={clock.now + 1}", headers=OP).get_json()
    assert later["sessions"] == 0


def test_operator_page_is_served(client):
    r = client.get("/operator")
    assert r.status_code == 200 and b'id="login"' in r.data
