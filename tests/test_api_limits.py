"""Rate limits and the start-up refusals of the configuration."""

from __future__ import annotations

import pytest

from kyc_llm.errors import ConfigError
from kyc_llm.web import create_app
from test_api import assert_error
from test_api_support import Api, db_rows, noise_jpeg


def _fail_once(client, clock, seed: int) -> None:
    api = Api(client, clock)
    api.post_frames([(i, i / 8, noise_jpeg(seed * 10 + i)) for i in range(3)])
    assert api.complete().get_json()["result"]["decision"] == "fail"


def test_five_failures_in_three_minutes_lock_the_client_out(app, client, clock):
    for k in range(5):
        _fail_once(client, clock, k)
        clock.advance(20)
    r = client.post("/api/v1/sessions")
    assert_error(r, 429, "locked_out")
    assert 0 < int(r.headers["Retry-After"]) <= 900
    assert db_rows(app, "SELECT COUNT(*) AS n FROM sessions")[0]["n"] == 5  # nothing created
    alerts = db_rows(app, "SELECT severity, cause FROM alerts WHERE cause = 'client_locked_out'")
    assert [(a["severity"], a["cause"]) for a in alerts] == [("high", "client_locked_out")]
    clock.advance(901)
    assert client.post("/api/v1/sessions").status_code == 201


def test_failures_spread_over_more_than_the_window_do_not_lock(client, clock):
    for k in range(6):
        _fail_once(client, clock, k)
        clock.advance(50)  # five failures span 200 s > 180 s
    assert client.post("/api/v1/sessions").status_code == 201


def test_other_clients_are_not_locked_out(client, clock):
    for k in range(5):
        _fail_once(client, clock, k)
    assert_error(client.post("/api/v1/sessions"), 429, "locked_out")
    r = client.post("/api/v1/sessions", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert r.status_code == 201


def test_sessions_per_minute(app_config, clock):
    app_config["sessions_per_minute"] = 2
    app = create_app(app_config, environ={}, clock=clock)
    client = app.test_client()
    assert client.post("/api/v1/sessions").status_code == 201
    assert client.post("/api/v1/sessions").status_code == 201
    r = client.post("/api/v1/sessions")
    assert_error(r, 429, "too_many_sessions")
    assert r.headers["Retry-After"] == "60"
    clock.advance(61)
    assert client.post("/api/v1/sessions").status_code == 201
    app.extensions["kyc"].close()


def test_create_and_complete_refuse_a_malformed_body_or_options(client, clock):
    assert_error(client.post("/api/v1/sessions", data=b"{nope", content_type="application/json"),
                 400, "malformed_json")
    assert_error(client.post("/api/v1/sessions", data=b"x=1", content_type="text/plain"),
                 415, "unsupported_media_type")
    assert client.post("/api/v1/sessions", json={}).status_code == 201
    assert_error(client.post("/api/v1/sessions", json={"actions": ["blink"]}), 400, "bad_request")  # not an option
    api = Api(client, clock)
    api.post_frames([(0, 0.0, noise_jpeg(1))])
    assert_error(client.post(f"/api/v1/sessions/{api.id}/complete", json={"force": True}, headers=api.auth),
                 400, "bad_request")
    assert_error(client.post(f"/api/v1/sessions/{api.id}/complete", data=b"{{{", content_type="application/json",
                             headers=api.auth), 400, "malformed_json")


def test_fixed_challenge_is_refused_in_production(app_config):
    with pytest.raises(ConfigError, match="production"):
        create_app(app_config, environ={"KYC_ENV": "production"})


@pytest.mark.parametrize("env,match", [
    ({"KYC_SESSION_TTL_S": "soon"}, "KYC_SESSION_TTL_S"),
    ({"KYC_FRAME_STORE": "ftp"}, "KYC_FRAME_STORE"),
    ({"KYC_FRAME_STORE": "s3"}, "KYC_S3_BUCKET"),
    ({"KYC_FIXED_CHALLENGE": "wave:2"}, "unknown action"),
    ({"KYC_OPERATOR_API_KEY": "short"}, "at least 16"),
    ({"KYC_LLM_PROVIDER": "oracle"}, "KYC_LLM_PROVIDER"),
    # nan compares false with everything: sessions would never expire
    ({"KYC_SESSION_TTL_S": "nan"}, "KYC_SESSION_TTL_S must be a finite number"),
    ({"KYC_DECISION_TIMEOUT_S": "inf"}, "KYC_DECISION_TIMEOUT_S must be a finite number"),
    ({"KYC_DECISION_TIMEOUT_S": "90"}, "at most 45 s"),
    ({"KYC_LOCKOUT_S": "-1"}, "KYC_LOCKOUT_S must be zero or more"),
    ({"KYC_SESSIONS_PER_MINUTE": "-1"}, "KYC_SESSIONS_PER_MINUTE must be zero or more"),
    ({"KYC_CLOCK_TOLERANCE_S": "-0.5"}, "KYC_CLOCK_TOLERANCE_S must be zero or more"),
    ({"KYC_REVIEW_RETENTION_DAYS": "-1"}, "KYC_REVIEW_RETENTION_DAYS must be zero or more"),
    ({"KYC_MIN_JUDGE_CONFIDENCE": "1.5"}, "KYC_MIN_JUDGE_CONFIDENCE must be between 0 and 1"),
    # a misspelt variable must not leave its setting at the default
    ({"KYC_OPERATOR_KEY": "x" * 20}, r"unknown setting\(s\): KYC_OPERATOR_KEY \(did you mean KYC_OPERATOR_API_KEY\?\)"),
    ({"KYC_REQUIRE_LLMS": "1"}, "did you mean KYC_REQUIRE_LLM"),
    ({"KYC_LLM_MAX_ATEMPTS": "2"}, "did you mean KYC_LLM_MAX_ATTEMPTS"),
    ({"KYC_PORT": "99999"}, "KYC_PORT must be from 1 to 65535"),
    ({"KYC_FPS_HINT": "1e308"}, "KYC_FPS_HINT must be at most 30"),
    ({"KYC_DECISION_WORKERS": "100000"}, "KYC_DECISION_WORKERS must be at most 64"),
    ({"KYC_REVIEW_RETENTION_DAYS": "1e308"}, "KYC_REVIEW_RETENTION_DAYS must be at most 3,650"),  # kept for good
    ({"KYC_LOCKOUT_S": "1e308"}, "KYC_LOCKOUT_S must be at most 86,400"),
    ({"KYC_MAX_FAILURES": "99999999999999999999"}, "KYC_MAX_FAILURES must be at most 1,000,000"),
    ({"KYC_FPS_HINT": "20", "KYC_MAX_FRAMES": "60"}, "fewer than the page uploads in a capture"),
    # empty is not unset: an empty KYC_ENV started in development mode
    ({"KYC_ENV": ""}, "KYC_ENV is set but empty"),
    ({"KYC_SESSION_TTL_S": " "}, "KYC_SESSION_TTL_S is set but empty"),
])
def test_bad_environment_stops_the_start(tmp_path, env, match):
    base = {"KYC_DATABASE": str(tmp_path / "db.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "f")}
    with pytest.raises(ConfigError, match=match):
        create_app(environ={**base, **env})


def test_storage_that_cannot_work_stops_the_start(tmp_path):
    """Each of these started, then failed every request (500) or dropped every frame."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a database, not a folder")
    base = {"KYC_DATABASE": str(tmp_path / "db.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "f")}
    for env, match in [({"KYC_DATABASE": str(tmp_path)}, "KYC_DATABASE .* cannot be opened"),
                       ({"KYC_DATABASE": str(a_file)}, "KYC_DATABASE .*file is not a database"),
                       ({"KYC_FRAME_DIR": str(a_file)}, "KYC_FRAME_DIR: frames cannot be written"),
                       ({"KYC_FRAME_DIR": str(a_file / "frames")}, "KYC_FRAME_DIR: frames cannot be written")]:
        with pytest.raises(ConfigError, match=match):
            create_app(environ={**base, **env})
    assert a_file.read_text() == "not a database, not a folder"
    assert not list(tmp_path.rglob(".write-check-*"))  # the probe is removed


def test_environment_settings_are_read(tmp_path, clock):
    env = {"KYC_DATABASE": f"sqlite:///{tmp_path}/env.sqlite3", "KYC_FRAME_DIR": str(tmp_path / "f"),
           "KYC_FIXED_CHALLENGE": "blink:2, smile:3", "KYC_SESSION_TTL_S": "60", "KYC_FPS_HINT": "10"}
    app = create_app(environ=env, clock=clock)
    body = app.test_client().post("/api/v1/sessions").get_json()
    assert [s["action"] for s in body["challenge"]["steps"]] == ["blink", "smile"]
    assert body["expires_in_s"] == 60 and body["upload"]["fps"] == 10
    assert (tmp_path / "env.sqlite3").is_file()
    app.extensions["kyc"].close()
