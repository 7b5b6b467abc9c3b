"""Keyframe choice and sizing: baseline, peaks, contrast frames, within the image budget."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kyc_llm.challenge import Step
from kyc_llm.llm.errors import JudgmentInputError
from kyc_llm.llm.keyframes import MAX_LONG_EDGE, MIN_SHORT_EDGE, select_keyframes
from kyc_llm.llm.usage import image_tokens
from kyc_llm.vision.evidence import ActionEvidence, VisionEvidence

TWO_STEPS = (Step("turn_left", 1.0, 2.0), Step("blink", 2.0, 3.0))
FOUR_STEPS = (Step("turn_left", 0.5, 1.5), Step("look_up", 1.5, 2.5),
              Step("blink", 2.5, 3.5), Step("smile", 3.5, 4.5))


def _frames(n: int, height: int = 480, width: int = 640) -> list[tuple[float, np.ndarray]]:
    return [(i / 10, np.full((height, width, 3), i % 256, np.uint8)) for i in range(n)]


def _evidence(steps: tuple[Step, ...], peaks: list[int | None], baseline: int | None = 5,
              verdicts: list[str] | None = None, n: int = 50) -> VisionEvidence:
    verdicts = verdicts or ["performed"] * len(steps)
    actions = [ActionEvidence(s.action, s.start_s, s.end_s, v, "m", peak_index=p)  # type: ignore[arg-type]
               for s, p, v in zip(steps, peaks, verdicts)]
    return VisionEvidence(n, n, 0, baseline, actions, {}, {})


def test_baseline_peaks_then_contrast_frames_in_time_order() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35),
                            _evidence(TWO_STEPS, [15, None], verdicts=["performed", "unclear"]),
                            budget=3000, max_images=8)
    got = [(k.id, k.index, k.role, k.window, k.action) for k in plan.keyframes]
    assert got == [
        ("F1", 5, "baseline", None, None),
        ("F2", 10, "contrast", 1, "turn_left"),  # farthest from the peak inside [1.0, 2.0)
        ("F3", 15, "peak", 1, "turn_left"),
        ("F4", 20, "contrast", 2, "blink"),      # t=2.0 belongs to the second window only
        ("F5", 25, "peak", 2, "blink"),          # no peak from vision: the window's middle
    ]
    assert plan.dropped == 0 and all(k.width == 640 and k.height == 480 for k in plan.keyframes)


def test_the_image_cap_keeps_baseline_and_peaks_first() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35), _evidence(TWO_STEPS, [15, 25]),
                            budget=3000, max_images=3)
    assert [(k.index, k.role) for k in plan.keyframes] == [(5, "baseline"), (15, "peak"),
                                                            (25, "peak")]
    assert plan.dropped == 2


def test_unclear_windows_get_their_contrast_frame_first() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35),
                            _evidence(TWO_STEPS, [15, 25], verdicts=["performed", "not_performed"]),
                            budget=3000, max_images=4)
    assert [k.index for k in plan.keyframes if k.role == "contrast"] == [20]


def test_a_missing_baseline_falls_back_to_the_last_frame_before_the_first_window() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35), _evidence(TWO_STEPS, [15, 25], baseline=None),
                            budget=3000, max_images=3)
    assert plan.keyframes[0].index == 9 and plan.keyframes[0].role == "baseline"


def test_images_shrink_together_to_fit_the_budget() -> None:
    plan = select_keyframes(FOUR_STEPS, _frames(50, 720, 1280),
                            _evidence(FOUR_STEPS, [10, 20, 30, 40]), budget=3000, max_images=8)
    sizes = {(k.width, k.height) for k in plan.keyframes}
    assert len(plan.keyframes) == 8 and plan.dropped == 1 and len(sizes) == 1
    (width, height), = sizes
    assert abs(width / height - 16 / 9) < 0.01
    assert 0.95 * 3000 <= plan.image_tokens <= 3000
    assert plan.image_tokens == sum(image_tokens(k.width, k.height) for k in plan.keyframes)


def test_a_tight_budget_drops_contrast_frames_rather_than_shrink_below_200_px() -> None:
    plan = select_keyframes(FOUR_STEPS, _frames(50, 720, 1280),
                            _evidence(FOUR_STEPS, [10, 20, 30, 40]), budget=500, max_images=8)
    assert [k.role for k in plan.keyframes] == ["baseline", "peak", "peak", "peak", "peak"]
    assert plan.image_tokens <= 500
    assert min(k.height for k in plan.keyframes) >= MIN_SHORT_EDGE


def test_a_budget_too_small_for_several_images_keeps_the_baseline_only() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35), _evidence(TWO_STEPS, [15, 25]),
                            budget=20, max_images=8)
    assert [k.role for k in plan.keyframes] == ["baseline"] and plan.image_tokens <= 20


def test_small_frames_are_never_enlarged_nor_dropped() -> None:
    plan = select_keyframes(TWO_STEPS, _frames(35, 120, 160), _evidence(TWO_STEPS, [15, 25]),
                            budget=3000, max_images=8)
    assert len(plan.keyframes) == 5
    assert {(k.width, k.height) for k in plan.keyframes} == {(160, 120)}


def test_very_large_frames_are_capped_at_the_long_edge_claude_uses() -> None:
    steps = (Step("blink", 0.0, 1.0),)
    plan = select_keyframes(steps, _frames(5, 1000, 2000), _evidence(steps, [2], baseline=0, n=5),
                            budget=20000, max_images=1)
    assert (plan.keyframes[0].width, plan.keyframes[0].height) == (MAX_LONG_EDGE, 784)


def test_jpeg_is_rgb_and_has_the_reported_size() -> None:
    blue_bgr = np.zeros((120, 160, 3), np.uint8)
    blue_bgr[:, :, 0] = 255
    steps = (Step("blink", 0.0, 1.0),)
    plan = select_keyframes(steps, [(0.0, blue_bgr), (0.5, blue_bgr)],
                            _evidence(steps, [1], baseline=0, n=2), budget=3000, max_images=2)
    for k in plan.keyframes:
        image = Image.open(io.BytesIO(k.jpeg))
        assert (image.format, image.size) == ("JPEG", (k.width, k.height))
        red, green, blue = image.convert("RGB").getpixel((80, 60))
        assert blue > 240 and red < 15 and green < 15


@pytest.mark.parametrize(
    ("frames", "evidence", "message"),
    [
        ([], _evidence(TWO_STEPS, [15, 25]), "no frames"),
        (_frames(35), _evidence(TWO_STEPS[::-1], [15, 25]), "does not describe this challenge"),
        (_frames(35), _evidence(TWO_STEPS, [15, 99]), "outside the 35 frames"),
        ([(i / 10, np.zeros((48, 64), np.uint8)) for i in range(35)],
         _evidence(TWO_STEPS, [15, 25]), "not a BGR uint8 image"),
        ([(i / 10, np.zeros((48, 64, 3), np.float32)) for i in range(35)],
         _evidence(TWO_STEPS, [15, 25]), "not a BGR uint8 image"),
    ],
)
def test_inputs_that_do_not_fit_raise(frames: list, evidence: VisionEvidence, message: str) -> None:
    with pytest.raises(JudgmentInputError, match=message):
        select_keyframes(TWO_STEPS, frames, evidence, budget=3000, max_images=8)


class _CountingFrames:
    """A stored session: times known up front, each frame 'decoded' only when indexed."""

    def __init__(self, n: int) -> None:
        self._frames = _frames(n)
        self.times = [t for t, _ in self._frames]
        self.decoded: list[int] = []

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> tuple[float, np.ndarray]:
        self.decoded.append(index)
        return self._frames[index]


def test_a_stored_session_decodes_only_the_chosen_frames_once() -> None:
    frames = _CountingFrames(35)
    plan = select_keyframes(TWO_STEPS, frames, _evidence(TWO_STEPS, [15, 25]), budget=3000, max_images=8)
    assert sorted(frames.decoded) == sorted(k.index for k in plan.keyframes)
