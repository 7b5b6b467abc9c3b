"""The gunicorn worker class: gthread that takes a new connection only while a thread is free,
and drops clients that stall.

Every request is CPU work (FaceMesh), so the workers must share them evenly. gthread's main
thread accepts whatever arrives even when all its request threads are busy, so requests wait
in a busy worker's queue while another worker idles: the tail of upload latency under load.
This worker stops accepting while every thread is handling a request and starts again as soon
as one is free; meanwhile new connections wait in the kernel's backlog for whichever worker is
free first. Only requests being handled count, not connections: gunicorn's own cap
(``worker_connections``) counts accepted connections, and a few idle ones then spin gthread's
loop at 100% CPU.

gthread also waits without limit for a client: a connection that never sends a byte stays
open for good, and one that sends a byte and stops holds a request thread for good (a few of
those stop a server). Here a connection must start its request within ``KYC_CLIENT_TIMEOUT_S``
(default 10 s) of being accepted, and every read or write of a request may stall that long at
most; each drop is one warning line in the log. Slow clients still belong to a buffering
reverse proxy in production; this bounds what reaches gunicorn directly. tests/test_gunicorn.py
covers each case.

gunicorn answers a request it cannot parse (a request line or headers over the limits of
``gunicorn.conf.py``, a malformed request line) itself, with an HTML page; this worker's
processes answer those with the API's one JSON error shape instead (``json_http_error``).

Used by ``gunicorn.conf.py`` (``worker_class``); the gthread worker is otherwise unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import time
from functools import partial
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import TConn, ThreadWorker

from ..errors import ConfigError


def _client_timeout() -> float:
    raw = os.environ.get("KYC_CLIENT_TIMEOUT_S") or "10"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 300:
        raise ConfigError(f"KYC_CLIENT_TIMEOUT_S must be 0.1-300 seconds, not {raw!r}")
    return value


CLIENT_TIMEOUT_S = _client_timeout()


class StalledClientLog(logging.Filter):
    """gthread logs a client dropped for stalling as an ERROR with a 20-line traceback; a few
    slow phones, or a slow-client attack, would bury real errors. One warning line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError) and record.msg == "Socket error processing request.":
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"client stalled for more than {CLIENT_TIMEOUT_S:g} s: connection closed"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


# gunicorn's own refusals, by status: a fixed message (gunicorn's echoes the request line).
_HTTP_ERRORS = {
    400: ("bad_http_request", "the request line or a header could not be read, or is over its size limit"),
    403: ("forbidden", "request forbidden"),
    431: ("headers_too_large", "too many request headers, or one too large"),
    501: ("unsupported_transfer_coding", "this transfer coding is not supported"),
}


def json_http_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error`` with the API's error shape instead of an HTML page."""
    code, message = _HTTP_ERRORS.get(status_int, ("internal_error", "internal error"))
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


class BalancedThreadWorker(ThreadWorker):
    def init_process(self) -> None:
        self._busy = 0  # requests submitted to the thread pool and not finished
        self._paused: list[selectors.SelectorKey] | None = None  # listeners taken off the poller
        self.log.error_log.addFilter(StalledClientLog())
        # gunicorn's handle_error calls util.write_error by module attribute; this process
        # is a worker of this class only (after the fork), so the arbiter is untouched.
        gunicorn_util.write_error = json_http_error
        super().init_process()

    def accept(self, server: Any, listener: Any) -> None:
        # The main thread. An event the poller returned before the pause may still come here.
        if self._paused is not None:
            return
        try:
            sock, client = listener.accept()
        except (BlockingIOError, ConnectionAbortedError, InterruptedError):
            return
        conn = TConn(self.cfg, sock, client, server)
        conn.timeout = time.time() + CLIENT_TIMEOUT_S  # gthread's idle sweep closes it then
        self.nr_conns += 1
        with self._lock:
            self._keep.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        # The main thread: a new connection has data, so it leaves the idle sweep (a kept-alive
        # one is taken out of it by gthread itself).
        if not conn.initialized:
            with self._lock:
                try:
                    self._keep.remove(conn)
                except ValueError:  # swept and closed already
                    return
        super().on_client_socket_readable(conn, client)

    def enqueue_req(self, conn: Any) -> None:
        # The main thread, once a connection has data: it takes a thread from here on.
        with self._lock:
            self._busy += 1
            if self._busy >= self.cfg.threads and self._paused is None:
                self._paused = [self.poller.unregister(sock) for sock in self.sockets]
        try:
            super().enqueue_req(conn)
        except BaseException:
            self._request_done()
            raise

    def handle(self, conn: Any) -> Any:
        # A request thread: every read and write of this request may stall CLIENT_TIMEOUT_S.
        conn.sock.settimeout(CLIENT_TIMEOUT_S)
        return super().handle(conn)

    def finish_request(self, fs: Any) -> None:
        # A request thread as its future completes, or the main thread if it already had.
        try:
            super().finish_request(fs)
        finally:
            self._request_done()

    def _request_done(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._paused is None or self._busy >= self.cfg.threads:
                return
            paused, self._paused = self._paused, None
            try:
                for key in paused:
                    self.poller.register(key.fileobj, selectors.EVENT_READ, key.data)
            except (ValueError, OSError, KeyError):
                pass  # shutting down: the loop closed the poller and the listeners
