"""The page's camera report: validated as the client's word, stored, and a known virtual camera
(an injected video feed) sends the session to review, or fails it by configuration."""

from __future__ import annotations

import json

import pytest

from kyc_llm.camera import CameraReport, virtual_camera_match
from kyc_llm.config import Config
from kyc_llm.decision import Policy, decide
from kyc_llm.errors import ConfigError
from kyc_llm.vision.thresholds import load_thresholds
from test_api_support import Api, clip_frames, db_rows, live_spec
from test_decision import evidence

OBS = {"label": "OBS Virtual Camera", "width": 640, "height": 480, "frame_rate": 30.0, "resize_mode": "none",
       "video_inputs": 2, "interval_ms_median": 33.3, "interval_ms_p90": 34.1}


def test_a_known_virtual_camera_is_a_review_or_a_fail_by_policy() -> None:
    th = load_thresholds()
    d = decide(evidence(), th, virtual_camera="obs virtual")
    assert (d.decision, d.reasons) == ("review", ["VIRTUAL_CAMERA"]) and d.details["virtual_camera"] == "obs virtual"
    assert decide(evidence(), th, policy=Policy(virtual_camera="fail"), virtual_camera="obs virtual").decision == "fail"
    assert decide(evidence(), th).decision == "pass"


def test_labels_match_by_part_without_case_and_the_test_camera_only_in_production() -> None:
    dev, prod = Config.from_env({}), Config.from_env({"KYC_ENV": "production"})
    assert virtual_camera_match(CameraReport(label="OBS Virtual Camera"), dev.virtual_camera_patterns) == "obs virtual"
    assert virtual_camera_match(CameraReport(label="ManyCam Virtual Webcam"), dev.virtual_camera_patterns)
    assert virtual_camera_match(CameraReport(label="Integrated Camera (04f2:b6dd)"), prod.virtual_camera_patterns) is None
    assert virtual_camera_match(CameraReport(), prod.virtual_camera_patterns) is None
    for label in ("fake_device_0", "/tmp/clip.y4m"):  # Chromium's test camera, with or without a file
        assert virtual_camera_match(CameraReport(label=label), dev.virtual_camera_patterns) is None
        assert virtual_camera_match(CameraReport(label=label), prod.virtual_camera_patterns) is not None
    # Compatibility forms and white space do not hide a name.
    for label in ("ＯＢＳ Virtual Camera", "OBS\u00a0Virtual", "OBS   virtual cam"):
        assert virtual_camera_match(CameraReport(label=label), dev.virtual_camera_patterns) == "obs virtual"
    own = Config.from_env({"KYC_VIRTUAL_CAMERA_LABELS": "Acme Cam, vcam"})
    assert own.virtual_camera_labels == ("acme cam", "vcam")
    assert virtual_camera_match(CameraReport(label="OBS Virtual Camera"), own.virtual_camera_patterns) is None


@pytest.mark.parametrize("env", [{"KYC_VIRTUAL_CAMERA": "block"}, {"KYC_VIRTUAL_CAMERA_LABELS": "obs,,x"},
                                 {"KYC_VIRTUAL_CAMERA_LABELS": "x" * 101}])
def test_bad_virtual_camera_settings_are_refused(env) -> None:
    with pytest.raises(ConfigError, match="KYC_VIRTUAL_CAMERA"):
        Config.from_env(env)


def _completed(client, clock, shared_data, camera):
    api = Api(client, clock)
    api.upload_clip(clip_frames(live_spec(shared_data)), batch=4)
    r = client.post(f"/api/v1/sessions/{api.id}/complete", json={"camera": camera}, headers=api.auth)
    return api, r


def test_the_report_is_stored_and_a_virtual_camera_goes_to_review(app, client, clock, shared_data):
    api, r = _completed(client, clock, shared_data, OBS)
    assert r.status_code == 200 and r.get_json()["result"]["decision"] == "review"
    assert "virtual" not in json.dumps(r.get_json()).lower()  # nothing tells the user what was seen
    decision = db_rows(app, "SELECT reasons, evidence FROM decisions")[0]
    assert json.loads(decision["reasons"]) == ["VIRTUAL_CAMERA"]
    stored = json.loads(decision["evidence"])
    assert stored["camera"] == OBS and stored["decision_details"]["virtual_camera"] == "obs virtual"
    assert json.loads(db_rows(app, "SELECT report FROM camera_reports")[0]["report"]) == OBS
    assert [a["cause"] for a in db_rows(app, "SELECT cause FROM alerts")].count("injection_suspected") == 1
    assert "camera_reported" in [e["event"] for e in db_rows(app, "SELECT event FROM audit_log")]


def test_an_ordinary_camera_passes(app, client, clock, shared_data):
    _, r = _completed(client, clock, shared_data, {"label": "HD Pro Webcam C920", "video_inputs": 1})
    assert r.get_json()["result"]["decision"] == "pass"


def test_a_virtual_camera_fails_where_configured(app_config, clock, shared_data):
    from kyc_llm.web import create_app

    app = create_app(app_config | {"virtual_camera": "fail"}, environ={}, clock=clock)
    _, r = _completed(app.test_client(), clock, shared_data, OBS)
    assert r.get_json()["result"]["decision"] == "fail"


@pytest.mark.parametrize("camera, message", [
    ("OBS", "'camera' must be an object"),
    ({"label": "x", "driver": "y"}, "unknown field(s) 'driver'"),
    ({"label": "x" * 201}, "at most 200"),
    ({"width": True}, "camera.width must be an integer"),
    ({"width": 0}, "camera.width must be an integer"),
    ({"frame_rate": "30"}, "camera.frame_rate must be a number"),
    ({"frame_rate": 1e309}, "camera.frame_rate must be a number"),
    ({"frame_rate": 10 ** 400}, "camera.frame_rate must be a number"),  # no float holds it
    ({"resize_mode": "stretch"}, "camera.resize_mode"),
    ({"video_inputs": 65}, "camera.video_inputs"),
])
def test_a_malformed_report_is_refused_and_nothing_is_decided(app, client, clock, shared_data, camera, message):
    api, r = _completed(client, clock, shared_data, camera)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    assert message in r.get_json()["error"]["message"]
    assert db_rows(app, "SELECT COUNT(*) AS n FROM decisions")[0]["n"] == 0
    assert api.status().get_json()["status"] == "capturing"


def test_invisible_characters_are_dropped_from_the_label_not_refused(app, client, clock, shared_data):
    # A zero-width space inside the name, a soft hyphen, a lone surrogate: the check goes on.
    _, r = _completed(client, clock, shared_data, {"label": "O\u200bBS Virtual\u00ad Camera\ud800"})
    assert r.status_code == 200 and r.get_json()["result"]["decision"] == "review"
    assert json.loads(db_rows(app, "SELECT report FROM camera_reports")[0]["report"]) == {"label": "OBS Virtual Camera"}


def test_the_first_report_counts(app, client, clock, shared_data):
    api = Api(client, clock)
    api.upload_clip(clip_frames(live_spec(shared_data)), batch=4)
    svc = app.extensions["kyc"].sessions
    assert svc.store.set_camera_report(api.id, {"label": "HD Webcam"}, clock.now)
    assert not svc.store.set_camera_report(api.id, OBS, clock.now)
    r = client.post(f"/api/v1/sessions/{api.id}/complete", json={"camera": OBS}, headers=api.auth)
    assert r.get_json()["result"]["decision"] == "pass"
