"""Thresholds of the vision layer, loaded from a TOML file so they live in configuration.

``kyc_llm/thresholds.toml`` holds the calibrated defaults (calibrated on the practice
sessions in ../shared/data; see docs/calibration.md); ``load_thresholds(path)`` reads another file,
refusing unknown or missing keys, wrong types, non-finite or negative values, shares above 1
and inverted ranges with a ``ConfigError``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "thresholds.toml"


@dataclass(frozen=True)
class ActionThresholds:
    baseline_min_frames: int
    min_face_share: float
    min_hold_s: float
    grace_s: float
    lead_s: float
    unclear_fraction: float
    max_neutral_deg: float
    turn_deg: float
    look_up_deg: float
    look_down_deg: float
    mouth_delta: float
    mouth_open_min: float
    smile_delta: float
    blink_closed_ratio: float
    blink_eye_ratio: float
    blink_deep_ratio: float
    blink_open_ratio: float
    blink_max_s: float


@dataclass(frozen=True)
class AttackThresholds:
    planarity_min_anisotropy: float
    planarity_min_frames: int
    planarity_residual_live: float
    planarity_residual_flat: float
    screen_min_patches: int
    screen_peak_live: float
    screen_peak_attack: float
    screen_luma_offset: float
    patch_max_difference: float
    patch_min_detail: float
    patch_min_jpeg_difference: float
    print_chroma_live: float
    print_chroma_flat: float
    still_motion: float
    still_share_live: float
    still_share_attack: float
    temporal_ratio_cv_live: float
    temporal_ratio_cv_attack: float
    temporal_jitter_live: float
    temporal_jitter_attack: float
    fail_score: float
    review_score: float


@dataclass(frozen=True)
class QualityThresholds:
    min_face_frames_share: float
    max_multi_face_share: float
    min_brightness: float
    max_brightness: float
    min_sharpness: float
    min_face_size: float
    max_centre_offset: float
    max_low_quality_share: float


@dataclass(frozen=True)
class Thresholds:
    actions: ActionThresholds
    attacks: AttackThresholds
    quality: QualityThresholds


T = TypeVar("T")

# Values that are shares or scores: they must lie in [0, 1].
_FRACTIONS = {
    "min_face_share", "unclear_fraction", "blink_closed_ratio", "blink_eye_ratio", "blink_deep_ratio",
    "blink_open_ratio",
    "planarity_min_anisotropy", "fail_score", "review_score", "min_face_frames_share",
    "max_multi_face_share", "max_low_quality_share", "max_centre_offset", "min_face_size",
    "still_share_live", "still_share_attack",
}
# (low, high) pairs where low must be below high, or the ramp between them inverts.
_ORDERED = (
    ("review_score", "fail_score"), ("planarity_residual_flat", "planarity_residual_live"),
    ("screen_peak_live", "screen_peak_attack"), ("print_chroma_flat", "print_chroma_live"),
    ("temporal_ratio_cv_live", "temporal_ratio_cv_attack"), ("temporal_jitter_live", "temporal_jitter_attack"),
    ("min_brightness", "max_brightness"), ("still_share_live", "still_share_attack"), ("blink_closed_ratio", "blink_open_ratio"),
    ("blink_deep_ratio", "blink_closed_ratio"),
)


def _section(cls: type[T], raw: Any, name: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"thresholds: [{name}] section is missing")
    names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]  # every T here is a dataclass
    unknown = set(raw) - set(names)
    if unknown:
        raise ConfigError(f"thresholds: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    missing = set(names) - set(raw)
    if missing:
        raise ConfigError(f"thresholds: missing key(s) in [{name}]: {', '.join(sorted(missing))}")
    values = {}
    for key, f in names.items():
        v = raw[key]
        want = int if f.type in ("int", int) else float
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (want is int and not isinstance(v, int)):
            raise ConfigError(f"thresholds: [{name}].{key} must be a number ({want.__name__})")
        v = want(v)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"thresholds: [{name}].{key} must be finite and not negative, got {v}")
        if want is int and v < 1:
            raise ConfigError(f"thresholds: [{name}].{key} must be at least 1")
        if key in _FRACTIONS and v > 1:
            raise ConfigError(f"thresholds: [{name}].{key} is a share or score and must be at most 1")
        values[key] = v
    for low, high in _ORDERED:
        if low in values and high in values and not values[low] < values[high]:
            raise ConfigError(f"thresholds: [{name}].{low} must be below {high}")
    return cls(**values)


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read thresholds from ``path`` (default: the calibrated file in the package)."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"thresholds: cannot read {path}: {exc}") from None
    unknown = set(raw) - {"actions", "attacks", "quality"}
    if unknown:
        raise ConfigError(f"thresholds: unknown section(s): {', '.join(sorted(unknown))}")
    return Thresholds(
        actions=_section(ActionThresholds, raw.get("actions"), "actions"),
        attacks=_section(AttackThresholds, raw.get("attacks"), "attacks"),
        quality=_section(QualityThresholds, raw.get("quality"), "quality"),
    )
