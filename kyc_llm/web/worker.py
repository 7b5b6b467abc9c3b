"""The gunicorn worker class: gthread that takes a new connection only while a thread is free.

Every request is CPU work (FaceMesh), so the workers must share them evenly. gthread's main
thread accepts whatever arrives even when all its request threads are busy, so requests wait
in a busy worker's queue while another worker idles: the tail of upload latency under load.
This worker stops listening while every thread is handling a request and listens again as
soon as one is free; meanwhile new connections wait in the kernel's backlog for whichever
worker is free first. Only requests being handled count, not connections: gunicorn's own cap
(``worker_connections``) counts accepted connections, and a few idle ones then spin gthread's
loop at 100% CPU (tests/test_gunicorn.py).

Used by ``gunicorn.conf.py`` (``worker_class``); the gthread worker is otherwise unchanged.
"""

from __future__ import annotations

import selectors
from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    def init_process(self) -> None:
        self._busy = 0  # requests submitted to the thread pool and not finished
        self._paused: list[selectors.SelectorKey] | None = None  # listeners taken off the poller
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        # The main thread, once a connection has data: it takes a thread from here on.
        with self._lock:
            self._busy += 1
            if self._busy >= self.cfg.threads and self._paused is None:
                self._paused = [self.poller.unregister(sock) for sock in self.sockets]
        super().enqueue_req(conn)

    def finish_request(self, fs: Any) -> None:
        # A request thread, as its future completes (gunicorn registers sockets from here too).
        try:
            super().finish_request(fs)
        finally:
            with self._lock:
                self._busy -= 1
                # (Not while shutting down: the loop closes the poller without waiting for us.)
                if self._paused is not None and self._busy < self.cfg.threads and self.alive:
                    for key in self._paused:
                        self.poller.register(key.fileobj, selectors.EVENT_READ, key.data)
                    self._paused = None
