"""Labelled session specs (``../shared/data/sessions/*.json``) and sampling their videos.

The format is defined in ``../shared/data/README.md``. A spec names a video, the part of it
that is the session, the rate a client would upload at, the challenge and the ground truth.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .challenge import Step, parse_challenge
from .errors import ChallengeError, SpecError

TRUTHS = ("live", "attack")
MAX_SESSION_S = 600.0  # a verification session is seconds long; this bounds what a spec can ask
ATTACKS = ("wrong_actions", "print", "screen_replay", "deepfake", "no_face")


@dataclass(frozen=True)
class SessionSpec:
    id: str
    path: Path
    video: Path
    start_s: float
    end_s: float
    fps: float
    challenge: tuple[Step, ...]
    truth: str
    attack: str | None
    notes: str = ""


def load_spec(path: str | Path) -> SessionSpec:
    """Read and validate one spec. Raises ``SpecError`` naming the file and the problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: spec must be a JSON object")
    try:
        spec_id = str(raw["id"])
        video = (path.parent / str(raw["video"])).resolve()
        start_s, end_s, fps = float(raw["start_s"]), float(raw["end_s"]), float(raw["fps"])
        truth, attack = raw["truth"], raw.get("attack")
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{path}: missing or malformed field: {exc}") from None
    if not all(math.isfinite(v) for v in (start_s, end_s, fps)):
        raise SpecError(f"{path}: start_s, end_s and fps must be finite numbers")
    if not (0 <= start_s < end_s) or not (0 < fps <= 60):
        raise SpecError(f"{path}: need 0 <= start_s < end_s and 0 < fps <= 60")
    if end_s - start_s > MAX_SESSION_S:
        raise SpecError(f"{path}: a session is at most {MAX_SESSION_S:g} s long")
    if truth not in TRUTHS:
        raise SpecError(f"{path}: truth must be one of {TRUTHS}, not {truth!r}")
    if truth == "attack" and attack not in ATTACKS:
        raise SpecError(f"{path}: attack must be one of {ATTACKS}, not {attack!r}")
    if truth == "live" and attack is not None:
        raise SpecError(f"{path}: a live session has attack null")
    try:
        challenge = parse_challenge(raw.get("challenge", ()))
    except ChallengeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    if challenge[-1].end_s > end_s - start_s + 1e-6:
        raise SpecError(f"{path}: the challenge ends at {challenge[-1].end_s:g} s, after the session "
                        f"({end_s - start_s:g} s)")
    return SessionSpec(
        id=spec_id, path=path, video=video, start_s=start_s, end_s=end_s, fps=fps,
        challenge=challenge, truth=truth, attack=attack if truth == "attack" else None,
        notes=str(raw.get("notes", "")),
    )


def find_specs(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (their ``*.json``, sorted) into a list of spec paths."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.glob("*.json")))
        else:
            found.append(p)
    return found


def sample_frames(spec: SessionSpec) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(session_time_s, bgr_frame)`` at the spec's fps between start_s and end_s.

    Each sample takes the video frame nearest its time, as a client grabbing frames from a
    running camera would. Raises ``SpecError`` when the video cannot be opened or read.
    """
    if not spec.video.is_file():
        raise SpecError(f"{spec.id}: video {spec.video} not found")
    cap = cv2.VideoCapture(str(spec.video))
    try:
        video_fps = cap.get(cv2.CAP_PROP_FPS)
        if not cap.isOpened() or not video_fps or video_fps <= 0:
            raise SpecError(f"{spec.id}: cannot open video {spec.video}")
        n_samples = int(np.floor((spec.end_s - spec.start_s) * spec.fps + 1e-6))
        wanted = [int(round((spec.start_s + k / spec.fps) * video_fps)) for k in range(n_samples)]
        index, frame = -1, None
        for k, target in enumerate(wanted):
            while index < target:
                if not cap.grab():
                    if k < len(wanted) - 1:  # more than the last sample missing
                        raise SpecError(f"{spec.id}: video {spec.video.name} ends at {index / video_fps:.2f} s, "
                                        f"before the session's end at {spec.end_s:g} s")
                    return
                index += 1
                frame = None
            if frame is None:
                ok, frame = cap.retrieve()
                if not ok:
                    raise SpecError(f"{spec.id}: cannot decode frame {index} of {spec.video}")
            yield k / spec.fps, frame
    finally:
        cap.release()
