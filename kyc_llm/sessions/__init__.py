"""Session lifecycle, storage, frame store, retention, alerts and rate limits.

``Services`` wires them together for one app. Everything that opens a file, a connection or a
model graph is built on first use, in the process that uses it (after gunicorn forks).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

from ..config import Config, database_path
from ..errors import ConfigError
from ..llm.providers import Provider
from ..prompts import Templates
from ..vision.thresholds import Thresholds
from .analysis import FrameAnalyzers
from .decider import Decider
from .framestore import FrameStoreError, LocalFrameStore, open_frame_store
from .lifecycle import SessionService
from .limits import RateLimiter
from .sqlite_store import SQLiteStore
from .store import Store
from .workflow import Workflow


def open_store(path: str | Path) -> Store:
    """The store for a database path (only SQLite today). The file's folder is created."""
    return SQLiteStore(Path(path))


class Services:
    """The per-app service objects, built lazily and closed with ``close``."""

    def __init__(self, config: Config, thresholds: Thresholds, templates: Templates, *,
                 clock: Callable[[], float] | None = None, llm_provider: Provider | None = None) -> None:
        self.config = config
        self.thresholds = thresholds
        self.templates = templates
        self.clock = clock or time.time
        self._llm_provider = llm_provider
        self._lock = threading.Lock()
        self._service: SessionService | None = None
        self._workflow: Workflow | None = None

    @property
    def workflow(self) -> Workflow:
        """The LLM/decision workflow (built eagerly enough to validate LLM settings at start-up)."""
        with self._lock:
            if self._workflow is None:
                self._workflow = Workflow(self.config, self.thresholds, self.templates, self._llm_provider,
                                          self.clock)
            return self._workflow

    def check_storage(self) -> None:
        """Open the database and the local frame folder once, then let go of both: a database
        path that is a folder or not SQLite, or a frame folder that cannot be written, stops
        the start (it started, and then failed every request or dropped every frame). Raises
        ``ConfigError`` naming the variable. An S3 store is checked by its first frame."""
        cfg = self.config
        path = database_path(cfg)
        try:
            open_store(path).close()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"KYC_DATABASE {path}: cannot be opened as the service's database ({exc})") from None
        if cfg.frame_store == "local":
            try:
                LocalFrameStore(cfg.frame_dir).ping()
            except FrameStoreError as exc:
                raise ConfigError(f"KYC_FRAME_DIR: {exc.message}") from None

    @property
    def sessions(self) -> SessionService:
        """The ``SessionService`` (opens the database and the frame store on first use)."""
        workflow = self.workflow
        with self._lock:
            if self._service is None:
                cfg = self.config
                store = open_store(database_path(cfg))
                frames = open_frame_store(cfg.frame_store, frame_dir=cfg.frame_dir, bucket=cfg.s3_bucket,
                                          prefix=cfg.s3_prefix, region=cfg.s3_region,
                                          endpoint_url=cfg.s3_endpoint_url)
                analyzers = FrameAnalyzers(self.thresholds)
                limiter = RateLimiter(cfg, store)
                decider = Decider(cfg, store, frames, workflow, limiter, self.clock)
                self._service = SessionService(cfg, store, frames, analyzers, workflow, self.thresholds,
                                               decider, limiter, self.clock)
            return self._service

    def close(self) -> None:
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            service.decider.close()
            service.analyzers.close()
            service.store.close()
