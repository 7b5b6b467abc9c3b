"""The production server as configured in the repo (``gunicorn -c gunicorn.conf.py``)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from kyc_llm.loadtest import children, free_port

ROOT = Path(__file__).resolve().parent.parent


def healthz(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def assert_closed_by_server(socks: list[socket.socket]) -> None:
    """Each connection gets end-of-file within 5 s: the server closed it."""
    for s in socks:
        s.settimeout(5)
        assert s.recv(1) == b""


@contextmanager
def gunicorn(tmp_path: Path, workers: int, threads: int, client_timeout_s: float,
             pin_workers: str | None = None) -> Iterator[tuple[int, int]]:
    """gunicorn with the repo's settings on a free port; yields the port and the arbiter's pid
    once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYC_", "AWS_", "ANTHROPIC_"))}
    env.update({"KYC_PORT": str(port), "KYC_WORKERS": str(workers), "KYC_THREADS": str(threads),
                "KYC_CLIENT_TIMEOUT_S": str(client_timeout_s),
                "KYC_DATABASE": str(tmp_path / "kyc.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "frames")})
    if pin_workers is not None:
        env["KYC_PIN_WORKERS"] = pin_workers
    with open(tmp_path / "gunicorn.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "server:app"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        time.sleep(2.0)  # every worker up, not only the first
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_idle_connections_do_not_stop_the_server_and_are_closed(tmp_path: Path) -> None:
    """Clients that connect and send nothing (a slow phone, or on purpose) must not keep the
    workers from serving others: with gthread's connection cap at its thread count, 8 such
    connections spun both workers at 100% CPU and the server answered nobody. And they are
    closed after the client timeout, not kept for good."""
    with gunicorn(tmp_path, workers=2, threads=4, client_timeout_s=1) as (port, _):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # 2 per thread
        try:
            time.sleep(0.3)  # both workers have accepted some of them
            for _ in range(4):
                assert healthz(port, 5) == 200
            assert_closed_by_server(idle)
        finally:
            for s in idle:
                s.close()


def test_clients_that_stall_mid_request_are_dropped(tmp_path: Path) -> None:
    """A connection that sends one byte holds a request thread while gthread waits for the
    rest; a few of them held every thread for good. Now each is dropped after the client timeout."""
    with gunicorn(tmp_path, workers=2, threads=4, client_timeout_s=1) as (port, _):
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # 2 per thread
        try:
            for s in stalled:
                s.sendall(b"G")
            started = time.monotonic()
            assert healthz(port, 10) == 200
            assert time.monotonic() - started < 5
            assert_closed_by_server(stalled)
        finally:
            for s in stalled:
                s.close()
    # Each drop is one warning line, not an error with a traceback.
    log = (tmp_path / "gunicorn.log").read_text()
    assert log.count("[WARNING] client stalled for more than 1 s: connection closed") == 16
    assert "Traceback" not in log and "[ERROR]" not in log


def test_a_busy_worker_leaves_new_requests_to_a_free_one(tmp_path: Path) -> None:
    """One worker's only thread is held by an upload whose body is still arriving; every new
    request must be served by the other worker at once, not queue behind it (plain gthread
    accepts into the busy worker about half the time)."""
    with gunicorn(tmp_path, workers=2, threads=1, client_timeout_s=30) as (port, _):
        slow = socket.create_connection(("127.0.0.1", port))
        try:
            slow.sendall(b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")  # 99 bytes still to come
            time.sleep(0.5)  # a worker's thread now waits for the rest of the body
            for _ in range(8):
                started = time.monotonic()
                assert healthz(port, 5) == 200
                assert time.monotonic() - started < 3
            slow.settimeout(0.2)
            with pytest.raises(socket.timeout):
                slow.recv(1)  # still held, unanswered: the test did test a busy worker
        finally:
            slow.close()


def test_requests_gunicorn_refuses_get_the_json_error_shape(tmp_path: Path) -> None:
    """A request line or headers over gunicorn's limits are refused by gunicorn itself, before
    Flask: the answer is still the API's JSON error, not an HTML page."""
    import json

    with gunicorn(tmp_path, workers=1, threads=2, client_timeout_s=5) as (port, _):
        cases = [(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_http_request"),
                 (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(60)) + b"\r\n",
                  431, "headers_too_large"),
                 (b"NOT A REQUEST\r\n\r\n", 400, "bad_http_request")]
        for raw, status, code in cases:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(raw)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == str(status).encode(), head
            assert b"content-type: application/json" in head.lower()
            assert json.loads(body)["error"]["code"] == code
        assert healthz(port, 5) == 200


def test_a_body_that_ends_before_its_content_length_is_incomplete(tmp_path: Path) -> None:
    """The client sends a whole JSON object but fewer bytes than its Content-Length, then
    closes its side: gunicorn passed the short body on as if complete (a session was created)."""
    import json

    with gunicorn(tmp_path, workers=1, threads=2, client_timeout_s=5) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{}")
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"400", head
        assert json.loads(body)["error"]["code"] == "incomplete_body"


def cpus_allowed(pid: int) -> set[str]:
    """The CPU lists of all the threads of a process (each as /proc shows it, e.g. "1")."""
    lists = set()
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and at least 2 CPUs")
def test_pinned_workers_run_on_a_core_each_and_a_replacement_takes_the_freed_one(tmp_path: Path) -> None:
    cpus = {str(c) for c in sorted(os.sched_getaffinity(0))[:2]}
    with gunicorn(tmp_path, workers=2, threads=4, client_timeout_s=5, pin_workers="1") as (port, arbiter):
        workers = {pid: cpus_allowed(pid) for pid in children(arbiter)}
        assert len(workers) == 2
        # Every thread of a worker on one core, and the two workers on the two cores.
        assert all(len(lists) == 1 for lists in workers.values()), workers
        assert {next(iter(lists)) for lists in workers.values()} == cpus
        assert cpus_allowed(arbiter) == cpus_allowed(os.getpid())  # the arbiter is not pinned

        # The worker on the higher core, the younger one: a replacement numbered by its age
        # alone would land on the other core.
        killed, freed = max(workers.items(), key=lambda item: int(next(iter(item[1]))))
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            fresh = set(children(arbiter)) - set(workers)
            if fresh and cpus_allowed(next(iter(fresh))) == freed:
                break
            assert time.monotonic() < deadline, f"no replacement on CPU {freed}: {fresh}"
            time.sleep(0.2)
        assert healthz(port, 5) == 200


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and at least 2 CPUs")
def test_by_default_workers_are_pinned_only_with_one_worker_per_core(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    for sub in "abc":
        (tmp_path / sub).mkdir()
    with gunicorn(tmp_path / "a", workers=cores, threads=4, client_timeout_s=5) as (_, arbiter):
        workers = children(arbiter)
        assert len(workers) == cores and all(len(cpus_allowed(pid)) == 1 for pid in workers)
    with gunicorn(tmp_path / "b", workers=cores - 1, threads=4, client_timeout_s=5) as (_, arbiter):
        workers = children(arbiter)  # fewer workers than cores: pinned, they would leave one unused
        assert len(workers) == cores - 1
        assert all(cpus_allowed(pid) == cpus_allowed(os.getpid()) for pid in workers)
    with gunicorn(tmp_path / "c", workers=cores, threads=4, client_timeout_s=5, pin_workers="0") as (_, arbiter):
        assert all(cpus_allowed(pid) == cpus_allowed(os.getpid()) for pid in children(arbiter))


@pytest.mark.parametrize("name,value,says", [
    ("KYC_WORKERS", "0", "gunicorn.conf.py: KYC_WORKERS must be"),
    ("KYC_WORKERS", "abc", "gunicorn.conf.py: KYC_WORKERS must be"),
    ("KYC_THREADS", "0", "gunicorn.conf.py: KYC_THREADS must be"),
    ("KYC_KEEPALIVE", "abc", "gunicorn.conf.py: KYC_KEEPALIVE must be"),
    ("KYC_ACCESS_LOG", "yes", "gunicorn.conf.py: KYC_ACCESS_LOG must be"),
    ("KYC_LOG_LEVEL", "verbose", "gunicorn.conf.py: KYC_LOG_LEVEL must be"),
    ("KYC_PIN_WORKERS", "yes", "gunicorn.conf.py: KYC_PIN_WORKERS must be"),
    ("KYC_CLIENT_TIMEOUT_S", "abc", "gunicorn.conf.py: KYC_CLIENT_TIMEOUT_S must be"),  # was a 24-line traceback
    # The service's own settings and templates, checked before any worker boots (each worker
    # printed a traceback, then gunicorn "Worker failed to boot").
    ("KYC_FOO", "1", "error: unknown setting(s): KYC_FOO"),
    ("KYC_LLM_PROMPTS_DIR", "/nonexistent", "error: /nonexistent: prompts directory not found"),
])
def test_a_bad_setting_stops_the_gunicorn_start_with_one_line(tmp_path: Path, name: str, value: str,
                                                              says: str) -> None:
    """KYC_WORKERS=0 used to start a server with no worker that never answered; "abc" gave a
    traceback; KYC_ACCESS_LOG=yes silently logged nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYC_", "AWS_", "ANTHROPIC_"))}
    env.update({"KYC_PORT": str(free_port()), "KYC_DATABASE": str(tmp_path / "kyc.sqlite3"),
                "KYC_FRAME_DIR": str(tmp_path / "frames"), name: value})
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "server:app"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert says in done.stderr and "Traceback" not in done.stderr and "Worker failed" not in done.stderr


def test_python_server_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYC_", "AWS_", "ANTHROPIC_"))}
    env.update({"KYC_DATABASE": str(tmp_path / "kyc.sqlite3"), "KYC_FRAME_DIR": str(tmp_path / "frames"),
                "KYC_OPERATOR_KEY": "x" * 20})
    done = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("error: unknown setting(s): KYC_OPERATOR_KEY "
                                        "(did you mean KYC_OPERATOR_API_KEY?)")
    env["KYC_LLM_PROMPTS_DIR"] = str(tmp_path / "nowhere")  # a template problem: one line too
    env.pop("KYC_OPERATOR_KEY")
    done = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("prompts directory not found")
