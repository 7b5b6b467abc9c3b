"""Helpers shared by the ``test_api*`` modules (this module holds no tests).

``Api`` drives one session through the Flask test client the way the page does, moving the
fake clock with the frames so server time agrees with client time.
"""

from __future__ import annotations

import base64
import io
import sqlite3
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from conftest import OPERATOR_KEY, FakeClock

OP = {"X-API-Key": OPERATOR_KEY}


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def noise_jpeg(seed: int, size: int = 96) -> bytes:
    """A decodable JPEG with no face in it (distinct bytes per seed)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@dataclass(frozen=True)
class ClipFrame:
    t: float
    jpeg: bytes  # as the page encodes it (quality 80)
    bgr: np.ndarray  # the decoded frame, to cut the lossless texture patch from

    def patch(self, seq: int, nose: list[float] | None) -> dict[str, Any]:
        """The page's PNG patch of this frame (its ``seq``) centred on ``nose`` (where the
        server's answer for the frame put it), as JSON."""
        from kyc_llm.upload import LatePatch, patch_png

        png, x, y = patch_png(self.bgr, nose)
        return LatePatch(seq, self.jpeg, png, x, y).json()


@lru_cache(maxsize=4)
def clip_frames(spec_path: str, fps: float = 8.0) -> tuple[ClipFrame, ...]:
    """The frames of a shared session spec sampled at ``fps``, as the page would upload them."""
    import cv2

    from kyc_llm.sessionspec import load_spec, sample_frames
    from kyc_llm.upload import JPEG_QUALITY

    spec = replace(load_spec(spec_path), fps=fps)
    return tuple(ClipFrame(t, cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes(), bgr)
                 for t, bgr in sample_frames(spec))


def db_rows(app: Any, sql: str, *args: Any) -> list[sqlite3.Row]:
    """Rows of a query on the app's database file (a separate connection, as an auditor would)."""
    conn = sqlite3.connect(app.config["KYC"].database)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


class Api:
    """One session through the test client."""

    def __init__(self, client: Any, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.created = clock.now
        r = client.post("/api/v1/sessions")
        assert r.status_code == 201, r.get_json()
        self.body = r.get_json()
        self.id = self.body["id"]
        self.token = self.body["token"]
        self.start: float | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post_frames(self, frames: list[tuple[int, float | None, bytes]],
                    patches: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
        """POST a JSON batch; the clock is first moved to the time of the last frame."""
        times = [t for _, t, _ in frames if t is not None]
        if times:
            if self.start is None:
                self.start = self.clock.now
            self.clock.now = max(self.clock.now, self.start + max(times))
        body: dict[str, Any] = {"frames": [{"seq": s, "t": t, "image": data_url(d)} for s, t, d in frames]}
        if patches:
            body["patches"] = patches
        return self.client.post(f"/api/v1/sessions/{self.id}/frames", json=body, headers=self.auth, **kw)

    def upload_clip(self, frames: tuple[ClipFrame, ...], batch: int = 1) -> list[Any]:
        """Upload a clip as the page does: JPEGs, and for every ``patch_every``-th frame with a
        face a PNG patch around the nose the server's answer gave for it, sent with the next
        request (the last one alone before completing). Returns the answers to the frames."""
        every = self.body["upload"]["patch_every"]
        pending: list[dict[str, Any]] = []
        out = []
        for i in range(0, len(frames), batch):
            chunk = [(i + j, f.t, f.jpeg) for j, f in enumerate(frames[i:i + batch])]
            r = self.post_frames(chunk, pending)
            assert r.status_code == 200, r.get_json()
            out.append(r.get_json())
            pending = [frames[f["seq"]].patch(f["seq"], f["feedback"]["nose"]) for f in out[-1]["frames"]
                       if every and f["seq"] % every == 0 and f["feedback"]["nose"]]
        if pending:
            r = self.post_frames([], pending)
            assert r.status_code == 200, r.get_json()
        return out

    def complete(self) -> Any:
        return self.client.post(f"/api/v1/sessions/{self.id}/complete", headers=self.auth)

    def status(self) -> Any:
        return self.client.get(f"/api/v1/sessions/{self.id}", headers=self.auth)


def live_spec(shared_data: Path) -> str:
    return str(shared_data / "sessions" / "live-lp_d3-turnleft-mouth.json")
