"""The public JSON API through the Flask test client: the happy path and every refusal."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest

from kyc_llm.web import services
from test_api_support import Api, ClipFrame, clip_frames, data_url, db_rows, live_spec, noise_jpeg


def assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]


# -- create, status, health, document -------------------------------------------------------

def test_create_session_issues_challenge_token_and_hints(app, client, clock):
    r = client.post("/api/v1/sessions")
    assert r.status_code == 201
    body = r.get_json()
    assert r.headers["Location"] == f"/api/v1/sessions/{body['id']}"
    assert len(body["id"]) == 32 and len(body["token"]) >= 40
    steps = body["challenge"]["steps"]
    assert [(s["action"], s["start_s"], s["end_s"]) for s in steps] == [("turn_left", 0.3, 2.1),
                                                                      ("open_mouth", 2.1, 4.2)]
    assert all(s["instruction"] for s in steps)
    assert body["challenge"]["capture_s"] == pytest.approx(4.2)
    assert body["upload"]["fps"] == 8 and body["expires_in_s"] == 180 and body["upload"]["max_lag_s"] == 10
    assert body["llm_mode"] == "offline"
    rows = db_rows(app, "SELECT * FROM sessions")
    assert len(rows) == 1 and rows[0]["status"] == "created" and rows[0]["expires_at"] == clock.now + 180
    assert body["token"] not in json.dumps([dict(r) for r in rows])  # only its hash is stored
    assert [r["event"] for r in db_rows(app, "SELECT event FROM audit_log")] == ["session_created"]


def test_drawn_challenges_are_random_and_never_repeat_an_action_back_to_back(app_config, clock):
    from kyc_llm.web import create_app

    app_config.pop("fixed_challenge")
    app = create_app(app_config, environ={}, clock=clock)
    client = app.test_client()
    seqs = set()
    for _ in range(12):
        steps = client.post("/api/v1/sessions").get_json()["challenge"]["steps"]
        actions = [s["action"] for s in steps]
        assert len(actions) == 3 and all(a != b for a, b in zip(actions, actions[1:]))
        assert steps[0]["start_s"] == 0.3 and all(s["duration_s"] == 2.5 for s in steps)
        seqs.add(tuple(actions))
    assert len(seqs) > 3
    app.extensions["kyc"].close()


def test_status_before_any_frame(client):
    r = client.post("/api/v1/sessions").get_json()
    g = client.get(f"/api/v1/sessions/{r['id']}", headers={"Authorization": f"Bearer {r['token']}"})
    assert g.status_code == 200
    assert g.get_json()["status"] == "created" and g.get_json()["result"] is None


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json()["status"] == "ok" and r.get_json()["llm_mode"] == "offline"


def test_healthz_says_degraded_when_the_database_does_not_answer(app, client, monkeypatch, caplog):
    import sqlite3

    def broken() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(app.extensions["kyc"].sessions.store, "ping", broken)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.get_json()["database"] == "unavailable"
    assert "disk I/O error" in caplog.text  # the reason is in the log, not in the answer
    assert "disk I/O error" not in r.get_data(as_text=True)


def test_healthz_sees_storage_that_answers_reads_but_cannot_take_a_session(app, client, monkeypatch, app_config):
    """It said ok with the database file deleted (connections kept writing to the deleted
    inode), with a frame folder that could not be written, and with a full disk."""
    from kyc_llm.sessions import framestore

    assert client.get("/healthz").status_code == 200
    usage = framestore.shutil.disk_usage
    monkeypatch.setattr(framestore.shutil, "disk_usage",
                        lambda p: usage(p)._replace(free=framestore.MIN_FREE_BYTES - 1))
    r = client.get("/healthz")
    assert r.status_code == 503 and r.get_json()["frames"] == "unavailable"
    monkeypatch.undo()
    frame_dir = Path(app_config["frame_dir"])
    frame_dir.rename(frame_dir.with_name("moved"))
    frame_dir.write_text("a file where the frame folder was")
    assert client.get("/healthz").get_json() | {"llm_mode": None} == {
        "status": "degraded", "database": "ok", "frames": "unavailable", "llm_mode": None}
    frame_dir.unlink()
    assert client.get("/healthz").status_code == 200  # the folder is created again
    Path(app_config["database"]).unlink()
    assert client.get("/healthz").get_json()["database"] == "unavailable"


def test_openapi_document_lists_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") and rule.rule != "/healthz":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)  # <int(max=9):seq> -> {seq}
        assert path in doc["paths"], path
        methods = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
        assert methods <= set(doc["paths"][path]), (path, methods)
    from jsonschema import Draft202012Validator

    batch = Draft202012Validator(doc["components"]["schemas"]["FrameBatch"])
    assert batch.is_valid({"frames": [{"seq": 1, "t": 0.0, "image": "data:image/jpeg;base64,AA"}],
                           "patches": [{"seq": 0, "image": "data:image/png;base64,AA", "x": 1, "y": 2}]})
    assert not batch.is_valid({"patches": [{"seq": 0, "image": "data:image/png;base64,AA"}]})
    assert not batch.is_valid({"frames": [{"seq": -1, "image": "x"}]})


def test_unknown_field_names_are_quoted_in_part(client):
    fields = {"x" * 5_000_000: 1, **{f"f{i}": 1 for i in range(20)}}
    r = client.post("/api/v1/sessions", json=fields)
    assert_error(r, 400, "bad_request")
    message = r.get_json()["error"]["message"]
    assert len(r.data) < 1000 and "'f0', 'f1', 'f10'" in message and "and 16 more" in message


@pytest.mark.parametrize("error,status,code", [
    (sqlite3.OperationalError("database or disk is full"), 503, "storage_unavailable"),
    (sqlite3.DatabaseError("file is not a database"), 503, "storage_unavailable"),
    (sqlite3.IntegrityError("UNIQUE constraint failed"), 500, "internal_error"),  # our bug, not the disk
])
def test_a_failing_database_is_a_503_the_client_may_retry(app, client, monkeypatch, error, status, code):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(app.extensions["kyc"].sessions.store, "create_session", failing)
    r = client.post("/api/v1/sessions")
    assert_error(r, status, code)
    assert (r.headers.get("Retry-After") == "5") == (status == 503)


def test_unknown_route_and_wrong_method_answer_json(client):
    assert_error(client.get("/api/v1/nope"), 404, "not_found")
    assert_error(client.get("/api/v1/sessions"), 405, "method_not_allowed")
    assert_error(client.post("/api/v1//sessions"), 404, "not_found")  # was a 308 with an HTML body


# -- tokens ----------------------------------------------------------------------------------

def test_token_refusals(client):
    a = client.post("/api/v1/sessions").get_json()
    b = client.post("/api/v1/sessions").get_json()
    url = f"/api/v1/sessions/{a['id']}"
    r = client.get(url)
    assert_error(r, 401, "token_missing")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get(url, headers={"Authorization": "Bearer wrong"}), 403, "token_invalid")
    assert_error(client.get(url, headers={"Authorization": f"Bearer {b['token']}"}), 403, "token_invalid")
    assert_error(client.get(url, headers={"Authorization": f"Basic {a['token']}"}), 401, "token_missing")
    assert_error(client.get("/api/v1/sessions/" + "0" * 32, headers={"Authorization": "Bearer x"}),
                 404, "session_not_found")
    assert_error(client.get("/api/v1/sessions/../../etc", headers={"Authorization": "Bearer x"}), 404,
                 "not_found")
    assert_error(client.post(f"{url}/frames", json={"frames": []}), 401, "token_missing")
    assert_error(client.post(f"{url}/complete", headers={"Authorization": "Bearer nope"}), 403, "token_invalid")


# -- bad frame uploads -----------------------------------------------------------------------

BAD_UPLOADS = [
    ("malformed json", dict(data=b'{"frames": [', content_type="application/json"), 400, "malformed_json"),
    ("nan in json", dict(data=b'{"frames": [{"seq": 0, "t": NaN, "image": "x"}]}',
                         content_type="application/json"), 400, "bad_request"),
    ("wrong content type", dict(data=b"hello", content_type="text/plain"), 415, "unsupported_media_type"),
    ("no content type", dict(data=b"hello"), 415, "unsupported_media_type"),
    ("body not an object", dict(json=[1, 2]), 400, "bad_request"),
    ("body is null", dict(data=b"null", content_type="application/json"), 400, "bad_request"),
    ("multipart without its boundary",
     dict(data=b"--x\r\nContent-Disposition: form-data; name=seq\r\n\r\n0\r\n--x--\r\n",
          content_type="multipart/form-data"), 400, "bad_request"),
    ("frames not a list", dict(json={"frames": "x"}), 400, "bad_request"),
    ("empty frames", dict(json={"frames": []}), 400, "no_frames"),
    ("unknown top field", dict(json={"frames": [], "x": 1}), 400, "bad_request"),
    ("frame not object", dict(json={"frames": [3]}), 400, "bad_request"),
    ("missing seq", dict(json={"frames": [{"image": "data:image/jpeg;base64,AAAA"}]}), 400, "bad_request"),
    ("bool seq", dict(json={"frames": [{"seq": True, "image": "x"}]}), 400, "bad_request"),
    ("string seq", dict(json={"frames": [{"seq": "0", "image": "x"}]}), 400, "bad_request"),
    ("deeply nested json", dict(data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json"),
     400, "malformed_json"),
    ("negative seq", dict(json={"frames": [{"seq": -1, "image": "x"}]}), 400, "bad_request"),
    ("string t", dict(json={"frames": [{"seq": 0, "t": "soon", "image": "x"}]}), 400, "bad_request"),
    ("unknown frame field", dict(json={"frames": [{"seq": 0, "image": "x", "n": 1}]}), 400, "bad_request"),
    ("not a data url", dict(json={"frames": [{"seq": 0, "image": "hello"}]}), 400, "bad_frame"),
    ("wrong media type", dict(json={"frames": [{"seq": 0, "image": "data:image/gif;base64,R0lG"}]}),
     400, "bad_frame"),
    ("bad base64", dict(json={"frames": [{"seq": 0, "image": "data:image/jpeg;base64,@@@!"}]}), 400, "bad_frame"),
    ("undecodable image", dict(json={"frames": [{"seq": 0, "image": data_url(b"\xff\xd8not a jpeg")}]}),
     400, "bad_frame"),
    ("image is a number", dict(json={"frames": [{"seq": 0, "image": 7}]}), 400, "bad_frame"),
    ("body shorter than its length", dict(data=b'{"frames": [', content_type="application/json",
                                          environ_overrides={"CONTENT_LENGTH": "1000"}), 400, "incomplete_body"),
    ("huge integer as t", dict(data=b'{"frames": [{"seq": 0, "t": 1' + b"0" * 400 + b', "image": "x"}]}',
                               content_type="application/json"), 400, "bad_request"),
    ("gzip transfer coding", dict(json={"frames": []}, headers={"Transfer-Encoding": "gzip"}),
     501, "unsupported_transfer_coding"),
]


@pytest.mark.parametrize("case,kwargs,status,code", BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_bad_uploads_are_refused_in_json_and_store_nothing(app, client, case, kwargs, status, code):
    s = client.post("/api/v1/sessions").get_json()
    kwargs = dict(kwargs)
    headers = {"Authorization": f"Bearer {s['token']}", **kwargs.pop("headers", {})}
    r = client.post(f"/api/v1/sessions/{s['id']}/frames", headers=headers, **kwargs)
    assert_error(r, status, code)
    assert db_rows(app, "SELECT COUNT(*) AS n FROM frames")[0]["n"] == 0


def test_tiny_grayscale_and_truncated_images_are_refused(app, client, clock):
    import io

    from PIL import Image

    api = Api(client, clock)
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, format="JPEG")
    assert_error(api.post_frames([(0, 0.0, buf.getvalue())]), 400, "bad_frame")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    assert_error(api.post_frames([(0, 0.0, buf.getvalue())]), 400, "bad_frame")
    assert_error(api.post_frames([(0, 0.0, noise_jpeg(1)[:200])]), 400, "bad_frame")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    tiny_patch = [{"seq": 0, "image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                   "x": 0, "y": 0}]
    r = api.post_frames([(0, 0.0, noise_jpeg(1))], tiny_patch)
    assert_error(r, 400, "bad_frame")
    assert r.get_json()["error"]["message"].startswith("frame 0, texture patch: ")  # the patch, not the frame
    assert db_rows(app, "SELECT COUNT(*) AS n FROM frames")[0]["n"] == 0


def test_multipart_upload_and_its_refusals(app, client, clock):
    import io

    api = Api(client, clock)
    url = f"/api/v1/sessions/{api.id}/frames"
    files = {"frame": [(io.BytesIO(noise_jpeg(1)), "a.jpg", "image/jpeg"),
                       (io.BytesIO(noise_jpeg(2)), "b.jpg", "image/jpeg")], "seq": ["0", "1"], "t": ["0", "0.1"]}
    clock.advance(0.1)
    r = client.post(url, data=files, headers=api.auth, content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["accepted"] == 2 and body["last_seq"] == 1
    assert body["feedback"]["face_found"] is False and body["feedback"]["hint"] == "no_face"
    rows = db_rows(app, "SELECT seq, t, n_faces, stored_key FROM frames ORDER BY seq")
    assert [(r["seq"], r["t"], r["n_faces"]) for r in rows] == [(0, 0.0, 0), (1, 0.1, 0)]
    with app.app_context():  # the frame store gives back the bytes as uploaded
        assert [services().sessions.frames.get(r["stored_key"]) for r in rows] == [noise_jpeg(1), noise_jpeg(2)]
    bad = {"frame": [(io.BytesIO(noise_jpeg(3)), "c.jpg", "image/jpeg")], "seq": ["2", "3"]}
    assert_error(client.post(url, data=bad, headers=api.auth, content_type="multipart/form-data"),
                 400, "bad_request")
    for digit in ("\u00b2", "\u0663", "9" * 5000):  # superscript two (int() refuses it), Arabic-Indic
        # three (int() takes it), more digits than int() converts (each was a 500 or a number)
        odd = {"frame": [(io.BytesIO(noise_jpeg(3)), "c.jpg", "image/jpeg")], "seq": [digit]}
        assert_error(client.post(url, data=odd, headers=api.auth, content_type="multipart/form-data"),
                     400, "bad_request")
    gif = {"frame": [(io.BytesIO(b"GIF89a"), "c.gif", "image/gif")], "seq": ["2"]}
    assert_error(client.post(url, data=gif, headers=api.auth, content_type="multipart/form-data"),
                 415, "unsupported_media_type")
    assert_error(client.post(url, data={"seq": ["2"]}, headers=api.auth, content_type="multipart/form-data"),
                 400, "no_frames")


def test_texture_patches_are_checked_and_feed_the_screen_cue(app, client, clock, shared_data):
    import base64

    import cv2

    # The page cuts each patch from its own frame around the nose the server's answer gave
    # for that frame, and sends it with a later request.
    frames = clip_frames(live_spec(shared_data))[-5:]
    api = Api(client, clock)
    r = api.post_frames([(0, 0.0, frames[0].jpeg)])
    assert r.status_code == 200
    nose = r.get_json()["feedback"]["nose"]
    assert nose and 0 < nose[0] < frames[0].bgr.shape[1] and 0 < nose[1] < frames[0].bgr.shape[0]
    good = frames[0].patch(0, nose)
    small = cv2.imencode(".png", frames[0].bgr[:64, :64])[1].tobytes()
    bad = [({**good, "image": data_url(frames[0].jpeg[:4000])}, 400, "bad_frame"),  # a JPEG is not lossless
           ({**good, "x": 10_000}, 400, "bad_frame"),  # outside the frame
           ({**good, "x": -1}, 400, "bad_request"),
           ({**good, "seq": 8}, 400, "patch_without_frame"),  # a frame not uploaded (yet)
           ({"image": good["image"], "x": 0, "y": 0}, 400, "bad_request"),  # no seq
           ("patch", 400, "bad_request"),
           ({**good, "image": "data:image/png;base64," + base64.b64encode(small).decode()},
            400, "bad_frame")]  # under 96 px a side
    for patch, status, code in bad:
        assert_error(api.post_frames([(1, 0.125, frames[1].jpeg)], [patch]), status, code)
    assert_error(api.post_frames([(1, 0.125, frames[1].jpeg)], [good, good]), 400, "bad_request")  # twice
    r = api.post_frames([(1, 0.125, frames[1].jpeg)], [good])  # frame 0's patch, with frame 1
    assert r.status_code == 200 and r.get_json()["patches"] == [{"seq": 0, "outcome": "checked"}]
    # Again (a retry after a lost answer): the first patch of a frame counts.
    r = api.post_frames([], [good])
    assert r.status_code == 200 and r.get_json()["patches"] == [{"seq": 0, "outcome": "duplicate"}]
    assert "feedback" not in r.get_json() and r.get_json()["accepted"] == 0
    # A patch that is not its frame's pixels (a smoothed copy hides a screen's grid).
    r = api.post_frames([(2, 0.25, frames[2].jpeg), (3, 0.375, frames[3].jpeg), (4, 0.5, frames[4].jpeg)])
    nose4 = r.get_json()["feedback"]["nose"]
    smoothed = ClipFrame(frames[4].t, frames[4].jpeg, cv2.GaussianBlur(frames[4].bgr, (0, 0), 0.8))
    r = api.post_frames([], [smoothed.patch(4, nose4)])
    assert r.get_json()["patches"] == [{"seq": 4, "outcome": "mismatch"}]
    rows = [json.loads(r["summary"]) for r in db_rows(app, "SELECT summary FROM frames ORDER BY seq")]
    assert [x["texture"]["lossless"] for x in rows] == [True, False, False, False, False]
    assert [x.get("patch_mismatch", False) for x in rows] == [False, False, False, False, True]
    # Once the session is decided, no patch changes its evidence.
    assert api.complete().status_code in (200, 202)
    assert_error(api.post_frames([], [good]), 409, "session_closed")


def test_patches_are_taken_of_due_frames_once_and_must_hold_the_face(app, client, clock, shared_data):
    frames = clip_frames(live_spec(shared_data))[:6]
    api = Api(client, clock)
    r = api.post_frames([(0, frames[0].t, frames[0].jpeg), (1, frames[1].t, frames[1].jpeg)])
    nose = [f["feedback"]["nose"] for f in r.get_json()["frames"]]
    svc = app.extensions["kyc"].sessions
    assert (api.id, 0) in svc._awaiting_patch  # frame 0's JPEG, kept for its patch
    # Only every patch_every-th frame: a client may not pick the frames to show.
    assert_error(api.post_frames([], [frames[1].patch(1, nose[1])]), 400, "patch_not_due")
    # A refused request leaves frame 0 waiting for its patch.
    outside = {**frames[0].patch(0, nose[0]), "x": 10_000}
    assert_error(api.post_frames([], [frames[0].patch(0, nose[0]) | {"seq": 0}, outside | {"seq": 4}]),
                 400, "patch_without_frame")
    assert (api.id, 0) in svc._awaiting_patch
    # The frame's own pixels, but away from the face: measured nothing, and said so.
    corner = ClipFrame(frames[0].t, frames[0].jpeg, frames[0].bgr).patch(0, [64, 64])
    assert api.post_frames([], [corner]).get_json()["patches"] == [{"seq": 0, "outcome": "off_face"}]
    assert api.post_frames([], [frames[0].patch(0, nose[0])]).get_json()["patches"] == [
        {"seq": 0, "outcome": "checked"}]
    assert (api.id, 0) not in svc._awaiting_patch
    # Two requests racing with a patch each for one frame: the store keeps the first.
    summary = json.loads(db_rows(app, "SELECT summary FROM frames WHERE seq = 0")[0]["summary"])
    assert not svc.store.set_frame_summary(api.id, 0, summary | {"patch_mismatch": True})
    r = api.post_frames([(4, frames[4].t, frames[4].jpeg)])
    assert r.status_code == 200 and (api.id, 4) in svc._awaiting_patch
    assert api.complete().status_code in (200, 202)
    assert (api.id, 4) not in svc._awaiting_patch  # a closed session's frames leave memory


# -- session rules ---------------------------------------------------------------------------

def test_out_of_sequence_and_replayed_frames(app, client, clock):
    api = Api(client, clock)
    assert api.post_frames([(0, 0.0, noise_jpeg(1)), (1, 0.1, noise_jpeg(2))]).status_code == 200
    assert_error(api.post_frames([(1, 0.2, noise_jpeg(3))]), 409, "out_of_sequence")
    assert_error(api.post_frames([(5, 0.2, noise_jpeg(4)), (4, 0.3, noise_jpeg(5))]), 409, "out_of_sequence")
    assert_error(api.post_frames([(2, 0.2, noise_jpeg(1))]), 409, "replayed_frame")
    assert_error(api.post_frames([(2, 0.2, noise_jpeg(7)), (3, 0.3, noise_jpeg(7))]), 409, "replayed_frame")
    assert db_rows(app, "SELECT COUNT(*) AS n FROM frames")[0]["n"] == 2
    alerts = db_rows(app, "SELECT severity, cause FROM alerts")
    assert [(a["severity"], a["cause"]) for a in alerts] == [("high", "replayed_frame")]  # one open alert per session
    assert api.post_frames([(7, 0.3, noise_jpeg(8))]).status_code == 200  # gaps are allowed
    # Up to the largest number a frame's store key holds: a frame that could not be kept would
    # reach the decision without an image for the judge.
    assert_error(api.post_frames([(1_000_000, 0.4, noise_jpeg(9))]), 400, "seq_out_of_range")
    assert api.post_frames([(999_999, 0.4, noise_jpeg(9))]).status_code == 200


def test_client_time_is_bounded_by_server_time(client, clock):
    api = Api(client, clock)
    assert api.post_frames([(0, 0.0, noise_jpeg(1))]).status_code == 200
    body = {"frames": [{"seq": 1, "t": 5.0, "image": data_url(noise_jpeg(2))}]}  # 5 s ahead, clock still
    assert_error(client.post(f"/api/v1/sessions/{api.id}/frames", json=body, headers=api.auth),
                 409, "bad_timestamp")
    clock.advance(30)  # the client claims t=1 but uploads 30 s later
    body = {"frames": [{"seq": 1, "t": 1.0, "image": data_url(noise_jpeg(2))}]}
    assert_error(client.post(f"/api/v1/sessions/{api.id}/frames", json=body, headers=api.auth),
                 409, "bad_timestamp")
    body = {"frames": [{"seq": 1, "t": 29.5, "image": data_url(noise_jpeg(2))},
                       {"seq": 2, "t": 29.0, "image": data_url(noise_jpeg(3))}]}
    assert_error(client.post(f"/api/v1/sessions/{api.id}/frames", json=body, headers=api.auth),
                 409, "bad_timestamp")
    body = {"frames": [{"seq": 1, "image": data_url(noise_jpeg(2))}]}  # no t: server time is used
    r = client.post(f"/api/v1/sessions/{api.id}/frames", json=body, headers=api.auth)
    assert r.status_code == 200 and r.get_json()["frames"][0]["t"] == 30.0


def test_the_capture_must_start_soon_after_the_challenge(app, client, clock):
    """A challenge is shown at creation: a first frame 31 s later (a video made to order?) is
    refused; once the capture has started, the session's own limits apply."""
    late = Api(client, clock)
    clock.advance(31)
    assert_error(late.post_frames([(0, None, noise_jpeg(1))]), 410, "session_expired")
    gone = late.status().get_json()
    assert (gone["status"], gone["expires_in_s"]) == ("expired", 0.0)  # not 'created' for 3 minutes
    audit = db_rows(app, "SELECT detail FROM audit_log WHERE session_id = ? AND event = 'session_expired'", late.id)
    assert json.loads(audit[0]["detail"]) == {"reason": "capture_not_started"}
    prompt = Api(client, clock)
    clock.advance(29)
    assert prompt.post_frames([(0, None, noise_jpeg(2))]).status_code == 200
    clock.advance(5)
    assert prompt.post_frames([(1, None, noise_jpeg(3))]).status_code == 200


def test_size_and_count_limits(app_config, clock):
    from kyc_llm.web import create_app

    app_config.update(max_frames=3, max_batch=2, max_frame_bytes=4000, fps_hint=0.5)  # 3 frames fit a capture
    app = create_app(app_config, environ={}, clock=clock)
    client = app.test_client()
    api = Api(client, clock)
    big = noise_jpeg(1, size=200)
    assert len(big) > 4000
    assert_error(api.post_frames([(0, 0.0, big)]), 413, "frame_too_large")
    assert_error(api.post_frames([(i, 0.0, noise_jpeg(i)) for i in range(3)]), 413, "too_many_in_batch")
    small = [noise_jpeg(i, size=40) for i in range(10, 14)]
    assert all(len(d) < 4000 for d in small)
    assert api.post_frames([(0, 0.0, small[0]), (1, 0.1, small[1])]).status_code == 200
    assert api.post_frames([(2, 0.2, small[2])]).status_code == 200
    assert_error(api.post_frames([(3, 0.3, small[3])]), 409, "too_many_frames")
    r = client.post(f"/api/v1/sessions/{api.id}/frames", data=b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1),
                    headers=api.auth, content_type="application/json")
    assert_error(r, 413, "payload_too_large")
    app.extensions["kyc"].close()


def test_expired_session_refuses_frames_and_completion(app, client, clock):
    api = Api(client, clock)
    assert api.post_frames([(0, 0.0, noise_jpeg(1))]).status_code == 200
    clock.advance(181)
    assert_error(api.post_frames([(1, 181.0, noise_jpeg(2))]), 410, "session_expired")
    assert_error(api.complete(), 410, "session_expired")
    assert api.status().get_json()["status"] == "expired"
    assert db_rows(app, "SELECT status FROM sessions")[0]["status"] == "expired"
    assert "session_expired" in [r["event"] for r in db_rows(app, "SELECT event FROM audit_log")]


def test_complete_without_frames_is_refused(client, clock):
    assert_error(Api(client, clock).complete(), 409, "no_frames")


def test_no_face_session_fails_and_is_closed_afterwards(app, client, clock):
    api = Api(client, clock)
    api.post_frames([(i, i / 8, noise_jpeg(i)) for i in range(6)])
    r = api.complete()
    assert r.status_code == 200
    result = r.get_json()["result"]
    assert result["decision"] == "fail" and result["guidance"] == "fail"
    assert set(result) <= {"decision", "guidance", "message", "can_retry", "note"}  # no scores, no codes
    assert "without the AI judge" in result["note"]
    assert_error(api.post_frames([(9, 1.0, noise_jpeg(99))]), 409, "session_closed")
    row = db_rows(app, "SELECT decision, reasons FROM decisions")[0]
    assert row["decision"] == "fail" and "NO_FACE" in json.loads(row["reasons"])
    assert api.complete().get_json()["result"] == result  # completing again returns the stored result


def test_a_frame_stored_while_its_session_was_decided_goes_with_the_others(app, client, clock):
    """An upload that passed the open-session check as the decision purged the session's
    frames is refused, and its bytes do not outlive the purge."""
    from kyc_llm.sessions.errors import SessionClosed
    from kyc_llm.sessions.lifecycle import Upload

    api = Api(client, clock)
    api.post_frames([(i, i / 8, noise_jpeg(i)) for i in range(6)])
    with app.app_context():
        svc = services().sessions
        before_decision = svc.store.get_session(api.id)
        assert api.complete().get_json()["result"]["decision"] == "fail"  # frames deleted
        with pytest.raises(SessionClosed):
            svc.add_frames(before_decision, [Upload(6, 0.75, noise_jpeg(60))])
    assert not any(Path(app.config["KYC"].frame_dir).glob(f"{api.id}*"))


# -- the real thing --------------------------------------------------------------------------

def test_live_clip_passes_and_frames_are_deleted_after_the_decision(app, client, clock, shared_data):
    frames = clip_frames(live_spec(shared_data))
    api = Api(client, clock)
    replies = api.upload_clip(frames, batch=2)
    assert replies[0]["progress"]["phase"] == "lead_in"
    assert any(r["progress"].get("action") == "turn_left" for r in replies)
    assert replies[-1]["progress"]["action"] == "open_mouth" and replies[-1]["progress"]["fraction"] > 0.9
    assert all(r["feedback"]["face_found"] and r["feedback"]["one_face"] for r in replies)
    r = api.complete()
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "decided" and body["result"]["decision"] == "pass", body
    decision = db_rows(app, "SELECT * FROM decisions")[0]
    assert decision["llm_used"] == 0 and "without the LLM" in decision["rationale"]
    actions = db_rows(app, "SELECT action, verdict FROM action_evidence ORDER BY idx")
    assert [(a["action"], a["verdict"]) for a in actions] == [("turn_left", "performed"),
                                                             ("open_mouth", "performed")]
    kept = db_rows(app, "SELECT COUNT(*) AS n FROM frames WHERE landmarks IS NOT NULL OR stored_key IS NOT NULL")
    assert kept[0]["n"] == 0
    assert not any(Path(app.config["KYC"].frame_dir).glob(f"{api.id}*"))
    events = [r["event"] for r in db_rows(app, "SELECT event FROM audit_log WHERE session_id = ?", api.id)]
    assert events == ["session_created", "capture_started", "decision_started", "decided", "frames_deleted"]


def test_uploads_spread_over_two_workers_are_measured_as_by_one(app, client, clock, app_config, shared_data):
    """gunicorn sends each upload to whichever worker accepts it: a session's frames, split
    between two workers (two apps on one database), get the numbers one worker gives them."""
    from kyc_llm.web import create_app

    other = create_app(app_config, environ={}, clock=clock)
    try:
        frames = clip_frames(live_spec(shared_data))
        alone = Api(client, clock)
        alone.upload_clip(frames)
        clock.advance(1)
        split = Api(client, clock)
        every = split.body["upload"]["patch_every"]
        pending: list = []
        for seq, frame in enumerate(frames):
            split.client = (client, other.test_client())[seq % 2]
            r = split.post_frames([(seq, frame.t, frame.jpeg)], pending)
            assert r.status_code == 200, r.get_json()
            nose = r.get_json()["feedback"]["nose"]
            pending = [frame.patch(seq, nose)] if seq % every == 0 and nose else []
        if pending:
            assert split.post_frames([], pending).status_code == 200
        summaries = {sid: [row["summary"] for row in db_rows(app, "SELECT summary FROM frames WHERE session_id = ? "
                                                                 "ORDER BY seq", sid)]
                     for sid in (alone.id, split.id)}
        assert len(summaries[split.id]) == len(frames) and summaries[split.id] == summaries[alone.id]
        assert split.complete().get_json()["result"]["decision"] == "pass"
    finally:
        other.extensions["kyc"].close()


# -- what the user is told, and what operators are alerted to -------------------------------

@pytest.mark.parametrize("decision,reasons,guidance", [
    ("pass", [], "pass"),
    ("fail", ["PLANAR_MOTION"], "fail"),
    ("review", ["LOW_QUALITY"], "retry"),
    ("review", ["ACTION_UNCLEAR", "LOW_QUALITY"], "retry"),
    ("review", ["ACTION_UNCLEAR", "LLM_DISAGREES"], "review"),
    ("review", ["SCREEN_UNCHECKED"], "review"),
    ("review", [], "review"),
])
def test_review_becomes_retry_only_when_the_user_can_fix_it(decision, reasons, guidance):
    from kyc_llm.sessions.results import guidance_for, user_result

    assert guidance_for(decision, reasons) == guidance
    shown = user_result(decision, guidance, "live")
    assert set(shown) == {"decision", "guidance", "message", "can_retry"} and shown["message"]


def test_alert_severity_follows_the_cause():
    from kyc_llm.sessions.alerts import decision_alerts

    def causes(decision, guidance, reasons, judgment=None):
        return [(a.severity, a.cause) for a in decision_alerts("s", "c", decision, guidance, reasons, judgment, 0.0)]

    assert causes("fail", "fail", ["PLANAR_MOTION", "ACTION_MISSING"]) == [("critical", "presentation_attack")]
    assert causes("review", "review", ["DEEPFAKE_SUSPECTED"]) == [("critical", "deepfake_suspected")]
    assert causes("review", "review", ["LLM_UNAVAILABLE"], {"outcome": "llm_unavailable"}) == [("low", "llm_unavailable")]
    assert causes("review", "review", ["SIGNAL_BORDERLINE"]) == [("medium", "manual_review")]
    assert causes("review", "retry", ["LOW_QUALITY"]) == []
    assert causes("pass", "pass", []) == []
