"""Service settings: one ``Config`` read from the environment with safe defaults.

Order of precedence (as in the Flask tutorial's factory): the defaults below, then the
environment (``KYC_*`` variables), then a test override dict whose keys are field names.
Nothing here opens a file or a connection; ``validate()`` is called by the app factory and
refuses combinations that must never run (a fixed demo challenge in production mode).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .camera import DEFAULT_VIRTUAL_LABELS, FAKE_CAMERA_LABELS
from .challenge import ACTIONS
from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RETENTION_MODES = ("review", "none", "all")
FRAME_STORES = ("local", "s3")
# Environment variables handed to the LLM layer as they are (LLMSettings.from_env reads them).
LLM_ENV_PREFIXES = ("KYC_LLM_", "AWS_", "ANTHROPIC_", "BEDROCK_")
# KYC_* variables read outside ``Config``: by gunicorn.conf.py and its worker class, and by
# the load test's app. The KYC_LLM_* ones belong to the LLM layer, which checks its own.
PROCESS_ENV = frozenset({"KYC_WORKERS", "KYC_THREADS", "KYC_CLIENT_TIMEOUT_S", "KYC_KEEPALIVE",
                         "KYC_PIN_WORKERS", "KYC_ACCESS_LOG", "KYC_LOG_LEVEL", "KYC_LOADTEST_LLM_DELAY_S"})
# The page's JPEG qualities (percent) the screen cue and the patch check (thresholds.toml)
# are calibrated for.
JPEG_QUALITY_RANGE = (70, 95)
# A /complete request holds a worker thread while it waits for the decision (then answers
# 202): at most this long, under the 60 s read timeout reverse proxies commonly use.
MAX_DECISION_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Config:
    """Every setting of the service. Field docs name the environment variable that sets it."""

    env: str = "development"  # KYC_ENV: development | production
    host: str = "127.0.0.1"  # KYC_HOST (python server.py only)
    port: int = 8000  # KYC_PORT
    database: str = str(ROOT / "instance" / "kyc.sqlite3")  # KYC_DATABASE: path or sqlite:///path
    thresholds_path: str | None = None  # KYC_THRESHOLDS_PATH: None = the vision layer's calibrated file
    # Frames: where the JPEGs live until the retention policy deletes them.
    frame_store: str = "local"  # KYC_FRAME_STORE: local | s3
    frame_dir: str = str(ROOT / "instance" / "frames")  # KYC_FRAME_DIR
    s3_bucket: str | None = None  # KYC_S3_BUCKET
    s3_prefix: str = "frames/"  # KYC_S3_PREFIX
    s3_region: str | None = None  # KYC_S3_REGION
    s3_endpoint_url: str | None = None  # KYC_S3_ENDPOINT_URL
    frame_retention: str = "review"  # KYC_FRAME_RETENTION: review | none | all
    review_retention_days: float = 30.0  # KYC_REVIEW_RETENTION_DAYS
    # Sessions and challenges.
    session_ttl_s: float = 180.0  # KYC_SESSION_TTL_S
    # The challenge is shown when the session starts: a capture that starts much later could
    # be a video made to order for it.
    start_within_s: float = 30.0  # KYC_START_WITHIN_S: the first frame must arrive this soon
    action_duration_s: float = 2.5  # KYC_ACTION_DURATION_S
    lead_in_s: float = 1.0  # KYC_LEAD_IN_S: neutral frames before the first action
    tail_s: float = 0.5  # KYC_TAIL_S
    fixed_challenge: tuple[tuple[str, float], ...] | None = None  # KYC_FIXED_CHALLENGE "blink:2,smile:2.5"
    # Frame upload hints and limits.
    fps_hint: float = 8.0  # KYC_FPS_HINT
    frame_width: int = 640  # KYC_FRAME_WIDTH
    frame_height: int = 480  # KYC_FRAME_HEIGHT
    jpeg_quality: float = 0.8  # KYC_JPEG_QUALITY
    max_frame_bytes: int = 600_000  # KYC_MAX_FRAME_BYTES
    max_frames: int = 400  # KYC_MAX_FRAMES per session
    max_batch: int = 16  # KYC_MAX_BATCH frames per request
    clock_tolerance_s: float = 1.5  # KYC_CLOCK_TOLERANCE_S: client time ahead of server time
    max_upload_lag_s: float = 10.0  # KYC_MAX_UPLOAD_LAG_S: client time behind server time
    # Decision. The number of drawn actions is the LLM layer's KYC_LLM_CHALLENGE_LENGTH.
    require_llm: bool = False  # KYC_REQUIRE_LLM: an unavailable/invalid LLM answer -> review
    min_judge_confidence: float = 0.5  # KYC_MIN_JUDGE_CONFIDENCE: a less confident LLM verdict -> review
    # A camera the page reports as a known virtual camera (an injected video feed): review or
    # fail. KYC_VIRTUAL_CAMERA_LABELS: comma-separated label substrings, replacing the default
    # list (kyc_llm.camera); Chromium's test camera is added in production mode.
    virtual_camera: str = "review"  # KYC_VIRTUAL_CAMERA: review | fail
    virtual_camera_labels: tuple[str, ...] = DEFAULT_VIRTUAL_LABELS  # KYC_VIRTUAL_CAMERA_LABELS
    decision_timeout_s: float = 25.0  # KYC_DECISION_TIMEOUT_S
    decision_workers: int = 4  # KYC_DECISION_WORKERS
    # Operators and limits.
    # Secrets stay out of repr(): a logged or printed Config must not carry them.
    operator_api_key: str | None = field(default=None, repr=False)  # KYC_OPERATOR_API_KEY; None = closed
    max_failures: int = 5  # KYC_MAX_FAILURES per client within the window
    failure_window_s: float = 180.0  # KYC_FAILURE_WINDOW_S
    lockout_s: float = 900.0  # KYC_LOCKOUT_S
    sessions_per_minute: int = 30  # KYC_SESSIONS_PER_MINUTE per client; 0 = unlimited
    trust_proxy: bool = False  # KYC_TRUST_PROXY: take the client address from X-Forwarded-For
    llm_env: Mapping[str, str] = field(default_factory=dict, repr=False)  # KYC_LLM_*, AWS_*, ANTHROPIC_*

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def virtual_camera_patterns(self) -> tuple[str, ...]:
        """The label substrings that make a camera virtual here (the test camera in production)."""
        return self.virtual_camera_labels + (FAKE_CAMERA_LABELS if self.production else ())

    @property
    def capture_s(self) -> float:
        """Length of the capture for the configured challenge (lead-in, actions, tail)."""
        if self.fixed_challenge:
            return self.lead_in_s + sum(d for _, d in self.fixed_challenge) + self.tail_s
        return self.lead_in_s + 4 * self.action_duration_s + self.tail_s  # the longest drawn challenge

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> "Config":
        """Defaults, then ``environ`` (default ``os.environ``), then ``overrides``.

        Returns a validated Config. Raises ``ConfigError`` naming the variable or key that is
        malformed, unknown (a ``KYC_*`` variable no part of the service reads) or out of range.
        """
        environ = os.environ if environ is None else environ
        names = {"KYC_" + f.name.upper() for f in fields(cls) if f.name != "llm_env"}
        ConfigError.check_known((k for k in environ if k.startswith("KYC_") and not k.startswith("KYC_LLM_")),
                                names | PROCESS_ENV)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "llm_env":
                continue
            name = "KYC_" + f.name.upper()
            raw = environ.get(name)
            if raw is not None:
                # Set but empty is refused, not read as unset: KYC_ENV= from a template whose
                # value went missing would otherwise start a production server in development.
                if not raw.strip():
                    raise ConfigError(f"{name} is set but empty: unset it for the default, or give a value")
                values[f.name] = _parse(f.name, raw)
        values["llm_env"] = {k: v for k, v in environ.items() if k.startswith(LLM_ENV_PREFIXES)}
        config = cls(**values)
        if overrides:
            known = {f.name for f in fields(cls)}
            unknown = set(overrides) - known
            if unknown:
                raise ConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
            fixed = dict(overrides)
            if isinstance(fixed.get("fixed_challenge"), str):
                fixed["fixed_challenge"] = parse_fixed_challenge(fixed["fixed_challenge"])
            config = replace(config, **fixed)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ConfigError`` for values out of range or combinations that must not run."""
        if self.env not in ("development", "production"):
            raise ConfigError(f"KYC_ENV must be development or production, not {self.env!r}")
        if self.production and self.fixed_challenge:
            raise ConfigError("KYC_FIXED_CHALLENGE is for demos and tests; refused in production mode")
        if self.frame_store not in FRAME_STORES:
            raise ConfigError(f"KYC_FRAME_STORE must be one of {FRAME_STORES}")
        if self.frame_store == "s3" and not self.s3_bucket:
            raise ConfigError("KYC_FRAME_STORE=s3 needs KYC_S3_BUCKET")
        if self.frame_retention not in RETENTION_MODES:
            raise ConfigError(f"KYC_FRAME_RETENTION must be one of {RETENTION_MODES}")
        positive = ("session_ttl_s", "start_within_s", "action_duration_s", "fps_hint", "max_frame_bytes", "max_frames",
                    "max_batch", "decision_timeout_s", "decision_workers",
                    "max_failures", "failure_window_s", "frame_width", "frame_height")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"KYC_{name.upper()} must be a positive number")
        not_negative = ("lead_in_s", "tail_s", "clock_tolerance_s", "max_upload_lag_s", "lockout_s",
                        "review_retention_days", "sessions_per_minute")
        for name in not_negative:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"KYC_{name.upper()} must be zero or more")
        if not 1 <= self.port <= 65535:
            raise ConfigError("KYC_PORT must be from 1 to 65535")
        # Upper bounds: beyond them a setting is a typo, and would exhaust memory or threads.
        # The time limits: a day is far beyond any sensible value (a session, a lockout), ten
        # years beyond any retention a regulator asks for; 1e308 days kept review frames for good.
        for name, high in (("fps_hint", 30), ("frame_width", 1920), ("frame_height", 1920),
                           ("max_frame_bytes", 5_000_000), ("max_frames", 2000), ("max_batch", 64),
                           ("decision_workers", 64), ("session_ttl_s", 86_400), ("start_within_s", 86_400),
                           ("action_duration_s", 60), ("lead_in_s", 60), ("tail_s", 60),
                           ("clock_tolerance_s", 60), ("max_upload_lag_s", 600), ("lockout_s", 86_400),
                           ("failure_window_s", 86_400), ("review_retention_days", 3650),
                           ("max_failures", 1_000_000), ("sessions_per_minute", 1_000_000)):
            if getattr(self, name) > high:
                raise ConfigError(f"KYC_{name.upper()} must be at most {high:,}")
        # The page uploads fps_hint frames a second for the whole capture: they must all fit.
        if self.fps_hint * self.capture_s > self.max_frames:
            raise ConfigError(f"KYC_MAX_FRAMES ({self.max_frames}) is fewer than the page uploads in a capture "
                              f"({self.fps_hint:g} fps x {self.capture_s:g} s)")
        if self.virtual_camera not in ("review", "fail"):
            raise ConfigError(f"KYC_VIRTUAL_CAMERA must be review or fail, not {self.virtual_camera!r}")
        if not 0.0 <= self.min_judge_confidence <= 1.0:
            raise ConfigError("KYC_MIN_JUDGE_CONFIDENCE must be between 0 and 1")
        if self.decision_timeout_s > MAX_DECISION_TIMEOUT_S:
            raise ConfigError(f"KYC_DECISION_TIMEOUT_S must be at most {MAX_DECISION_TIMEOUT_S:g} s: a "
                              "/complete request holds a worker thread that long (the decision goes on)")
        low, high = (q / 100 for q in JPEG_QUALITY_RANGE)  # the screen cue's and patch check's calibration
        if not low <= self.jpeg_quality <= high:
            raise ConfigError(f"KYC_JPEG_QUALITY must be between {low:g} and {high:g}")
        if self.session_ttl_s < self.capture_s:
            raise ConfigError("KYC_SESSION_TTL_S is shorter than the capture itself")
        if self.start_within_s + self.capture_s > self.session_ttl_s:
            raise ConfigError("KYC_START_WITHIN_S plus the capture must fit in KYC_SESSION_TTL_S")
        if self.operator_api_key is not None and len(self.operator_api_key) < 16:
            raise ConfigError("KYC_OPERATOR_API_KEY must be at least 16 characters")

    def public_summary(self) -> dict[str, Any]:
        """Non-secret settings for the start-up log line (no keys, no credentials)."""
        return {
            "env": self.env, "database": _database_path(self.database), "frame_store": self.frame_store,
            "frame_retention": self.frame_retention, "session_ttl_s": self.session_ttl_s,
            "fixed_challenge": bool(self.fixed_challenge), "operator_api": self.operator_api_key is not None,
        }


def database_path(config: Config) -> Path:
    """The SQLite file of ``config.database``. Raises ``ConfigError`` for another scheme."""
    return Path(_database_path(config.database))


def _database_path(value: str) -> str:
    if "://" not in value:
        return value
    if value.startswith("sqlite:///"):
        return value[len("sqlite:///"):] if value.startswith("sqlite:////") else value[len("sqlite://"):]
    raise ConfigError("KYC_DATABASE: only SQLite (a path or sqlite:///path) is implemented")


def parse_fixed_challenge(raw: str) -> tuple[tuple[str, float], ...]:
    """``"turn_left:2.5,blink:2"`` -> ``(("turn_left", 2.5), ("blink", 2.0))``.

    Raises ``ConfigError`` for an unknown action, a missing or non-positive duration, or an
    empty list.
    """
    steps: list[tuple[str, float]] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        action, _, duration = part.partition(":")
        action = action.strip()
        if action not in ACTIONS:
            raise ConfigError(f"KYC_FIXED_CHALLENGE: unknown action {action!r}")
        try:
            seconds = float(duration)
        except ValueError:
            raise ConfigError(f"KYC_FIXED_CHALLENGE: {part!r} needs action:seconds") from None
        if not 0.5 <= seconds <= 30:
            raise ConfigError(f"KYC_FIXED_CHALLENGE: duration of {action} must be 0.5-30 s")
        steps.append((action, seconds))
    if not steps:
        raise ConfigError("KYC_FIXED_CHALLENGE is empty")
    return tuple(steps)


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _parse(name: str, raw: str) -> Any:
    default = Config.__dataclass_fields__[name].type
    var = "KYC_" + name.upper()
    if name == "fixed_challenge":
        return parse_fixed_challenge(raw)
    if name == "virtual_camera_labels":
        labels = tuple(part.strip().casefold() for part in raw.split(","))
        if not all(labels) or any(len(x) > 100 for x in labels):
            raise ConfigError(f"{var} must be comma-separated label parts of 1-100 characters")
        return labels
    if name in ("trust_proxy", "require_llm"):
        if raw.strip().lower() not in _BOOL:
            raise ConfigError(f"{var} must be true or false")
        return _BOOL[raw.strip().lower()]
    try:
        if default == "int":
            return int(raw)
        if default in ("float",):
            value = float(raw)
            if not math.isfinite(value):  # nan compares false with everything: no limit would hold
                raise ValueError
            return value
    except ValueError:
        raise ConfigError(f"{var} must be a finite number, not {raw!r}") from None
    return raw
