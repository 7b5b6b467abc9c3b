"""The production server as configured in the repo (``gunicorn -c gunicorn.conf.py``)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def test_idle_connections_do_not_stop_the_server(tmp_path: Path) -> None:
    """Clients that connect and send nothing (a slow phone, or on purpose) must not keep the
    workers from serving others: with gthread's connection cap at its thread count, 8 such
    connections spun both workers at 100% CPU and the server answered nobody."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYC_", "AWS_", "ANTHROPIC_"))}
    env.update({"KYC_PORT": str(port), "KYC_WORKERS": "2", "KYC_THREADS": "4",
                "KYC_DATABASE": str(tmp_path / "kyc.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "frames")})
    with open(tmp_path / "gunicorn.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "server:app"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if healthz(port, 2) == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # 2 per thread
        time.sleep(0.5)  # both workers have accepted some of them
        for _ in range(4):
            assert healthz(port, 5) == 200
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
