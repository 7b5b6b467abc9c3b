"""Rate limits per client, in the spirit of bank practice.

- At most ``max_failures`` failed sessions within ``failure_window_s`` (default 5 in 3
  minutes); reaching it locks the client out for ``lockout_s`` from the last of them.
- At most ``sessions_per_minute`` sessions created per client (0 = no limit).

The counts come from the sessions table, so every worker and a restarted server agree.
"""

from __future__ import annotations

from ..config import Config
from .errors import RateLimited
from .store import Store


class RateLimiter:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    def lockout_until(self, client: str, now: float) -> float | None:
        """End of the client's lockout if it is locked out at ``now``, else None."""
        cfg = self.config
        fails = self.store.failures_since(client, now - cfg.failure_window_s - cfg.lockout_s)
        n = cfg.max_failures
        until = None
        for i in range(len(fails) - n + 1):
            if fails[i + n - 1] - fails[i] <= cfg.failure_window_s:
                end = fails[i + n - 1] + cfg.lockout_s
                until = end if until is None else max(until, end)
        return until if until is not None and until > now else None

    def check_create(self, client: str, now: float) -> None:
        """Raise ``RateLimited`` (with ``retry_after``) if the client may not start a session."""
        until = self.lockout_until(client, now)
        if until is not None:
            raise RateLimited("too many failed verifications; please try again later",
                              retry_after=until - now, code="locked_out")
        limit = self.config.sessions_per_minute
        if limit and self.store.sessions_created_since(client, now - 60.0) >= limit:
            raise RateLimited("too many sessions started; please wait a minute", retry_after=60.0,
                              code="too_many_sessions")
