"""Shared fixtures: ``app`` and ``client`` (the Flask test client), a ``clock`` tests move by
hand, and ``shared_data`` (the real clips in ../shared/data, skipped clearly when absent).

Keep this file small and generic; module-specific fixtures live in their test modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()
OPERATOR_KEY = "test-operator-key-0123456789"


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app_config(tmp_path: Path) -> dict[str, Any]:
    """Settings of the test app; a test may change them before asking for ``app``."""
    return {
        "database": str(tmp_path / "kyc.sqlite3"),
        "frame_dir": str(tmp_path / "frames"),
        "fixed_challenge": "turn_left:1.8,open_mouth:2.1",
        "lead_in_s": 0.3,
        "tail_s": 0.0,
        "operator_api_key": OPERATOR_KEY,
    }


@pytest.fixture
def app(app_config: dict[str, Any], clock: FakeClock) -> Iterator[Any]:
    """The app with a temporary database and frame folder, an empty environment (so the
    developer's AWS or LLM variables never leak in: the LLM layer is offline) and ``clock``."""
    from kyc_llm.web import create_app

    app = create_app(app_config, environ={}, clock=clock)
    app.config["TESTING"] = True
    yield app
    app.extensions["kyc"].close()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}: tests on real clips skipped")
    return SHARED_DATA
