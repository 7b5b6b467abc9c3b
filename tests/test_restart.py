"""A session survives the server process being killed: upload half, kill -9, restart, finish.

Runs ``python server.py`` as a real process on 127.0.0.1 (tens of seconds: two start-ups and
real-time uploads of a shared clip).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from kyc_llm.loadtest import free_port
from test_api_support import clip_frames, data_url, live_spec

ROOT = Path(__file__).resolve().parent.parent


def call(base: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None
        self.base = f"http://127.0.0.1:{env['KYC_PORT']}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if call(self.base, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("server did not start: " + self.log.read_text()[-2000:])

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_session_continues_after_the_server_is_killed(tmp_path, shared_data):
    frames = clip_frames(live_spec(shared_data))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("KYC_", "AWS_", "ANTHROPIC_"))},
           "KYC_PORT": str(free_port()), "KYC_DATABASE": str(tmp_path / "kyc.sqlite3"),
           "KYC_FRAME_DIR": str(tmp_path / "frames"), "KYC_FIXED_CHALLENGE": "turn_left:1.8,open_mouth:2.1",
           "KYC_LEAD_IN_S": "0.3", "KYC_TAIL_S": "0", "KYC_MAX_UPLOAD_LAG_S": "30"}
    server = Server(env, tmp_path / "server.log")
    server.start()
    try:
        status, s = call(server.base, "POST", "/api/v1/sessions", {})
        assert status == 201
        half = len(frames) // 2
        started = time.monotonic()

        pending: list = []  # the page's patch of the last answered frame, sent with the next

        def upload(i: int) -> None:
            f = frames[i]
            time.sleep(max(0.0, started + f.t - time.monotonic()))
            item = {"seq": i, "t": f.t, "image": data_url(f.jpeg)}
            st, body = call(server.base, "POST", f"/api/v1/sessions/{s['id']}/frames",
                            {"frames": [item], "patches": pending}, s["token"])
            assert st == 200, body
            nose = body["feedback"]["nose"]
            pending[:] = [f.patch(i, nose)] if i % s["upload"]["patch_every"] == 0 and nose else []

        for i in range(half):
            upload(i)
        server.kill()
        db = sqlite3.connect(tmp_path / "kyc.sqlite3")
        assert db.execute("SELECT status, n_frames FROM sessions").fetchone() == ("capturing", half)
        db.close()

        server.start()
        started = time.monotonic() - frames[half].t  # the client resumes where it stopped
        status, body = call(server.base, "GET", f"/api/v1/sessions/{s['id']}", token=s["token"])
        assert status == 200 and body["status"] == "capturing" and body["frames_received"] == half
        status, body = call(server.base, "POST", f"/api/v1/sessions/{s['id']}/frames",
                            {"frames": [{"seq": half - 1, "t": frames[half - 1].t,
                                         "image": data_url(frames[half].jpeg)}]}, s["token"])
        assert status == 409 and body["error"]["code"] == "out_of_sequence"  # the sequence survived too
        for i in range(half, len(frames)):
            upload(i)
        status, body = call(server.base, "POST", f"/api/v1/sessions/{s['id']}/complete", token=s["token"])
        assert status == 200 and body["result"]["decision"] == "pass", body
        db = sqlite3.connect(tmp_path / "kyc.sqlite3")
        assert db.execute("SELECT n_frames, decision FROM sessions").fetchone() == (len(frames), "pass")
        db.close()
    finally:
        server.kill()
    log = (tmp_path / "server.log").read_text()
    assert s["token"] not in log  # no tokens in logs
