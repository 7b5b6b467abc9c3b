"""The page emulator: what the evaluation feeds the pipeline is what the page uploads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kyc_llm.errors import FrameError
from kyc_llm.upload import PATCH_SIZE, PageEmulator, patch_origin
from kyc_llm.vision.facemesh import FaceMesh
from kyc_llm.vision.intake import load_patch
from kyc_llm.vision.pipeline import SessionAnalyzer
from kyc_llm.vision.thresholds import load_thresholds


def test_patch_is_centred_on_the_nose_and_kept_inside_the_frame() -> None:
    assert patch_origin((480, 640), (300, 200)) == (300 - PATCH_SIZE // 2, 200 - PATCH_SIZE // 2)
    assert patch_origin((480, 640), None) == (320 - PATCH_SIZE // 2, 240 - PATCH_SIZE // 2)
    assert patch_origin((480, 640), (5, 470)) == (0, 480 - PATCH_SIZE)


class _Answer:
    """The server's answer for one frame, as the page reads it: where the nose is."""

    def __init__(self, nose: tuple[float, float] | None) -> None:
        self.nose = nose


def test_every_fourth_frame_with_a_face_gets_its_own_patch_with_the_next_upload() -> None:
    rng = np.random.default_rng(5)
    frames = [(rng.random((480, 640, 3)) * 255).astype(np.uint8) for _ in range(10)]
    noses = [(100.0 + 30 * k, 200.0 + 10 * k) for k in range(10)]
    noses[8] = None  # no face in frame 8: nothing to cut
    page = PageEmulator()
    sent = []
    for k, frame in enumerate(frames):
        jpeg, late = page.next_upload(frame)
        assert jpeg[:2] == b"\xff\xd8"
        sent.append(late)
        page.answered(_Answer(noses[k]))
    assert [None if p is None else p.index for p in sent] == [None, 0, None, None, None, 4] + [None] * 4
    for late in sent[1], sent[5]:
        frame, (nx, ny) = frames[late.index], noses[late.index]
        assert (late.x, late.y) == (round(nx - PATCH_SIZE / 2), round(ny - PATCH_SIZE / 2))
        pixels = cv2.imdecode(np.frombuffer(late.png, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(pixels, frame[late.y:late.y + PATCH_SIZE, late.x:late.x + PATCH_SIZE])
        decoded = cv2.imdecode(np.frombuffer(late.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == frame.shape and not np.array_equal(decoded, frame)  # its frame's JPEG, lossy


def test_a_patch_outside_its_frame_is_refused() -> None:
    small = np.zeros((200, 200, 3), np.uint8)
    patch = load_patch(cv2.imencode(".png", np.zeros((PATCH_SIZE, PATCH_SIZE, 3), np.uint8))[1].tobytes(), 100, 100)
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        jpeg = cv2.imencode(".jpg", small)[1].tobytes()
        analyzer.add(jpeg, 0.0)
        with pytest.raises(FrameError, match="outside"):
            analyzer.add_patch(0, jpeg, patch)


def test_patches_land_on_a_face_that_moves_between_frames(shared_data) -> None:
    """A head or a handheld phone moving 60 px between frames: each patch is cut around the
    nose of its own frame, so every one is usable for the screen check."""
    photo = cv2.resize(cv2.imread(str(shared_data / "photos" / "ghost_mark.jpg")), (300, 300))
    page = PageEmulator(patch_every=1)
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        for k in range(6):
            framed = np.full((480, 640, 3), 90, np.uint8)
            x = 30 + 60 * k
            framed[90:390, x:x + 300] = photo
            page.upload(analyzer, framed, k / 8)
        page.finish(analyzer)
    faces = [o for o in analyzer.observations if o.has_face]
    assert len(faces) == 6
    assert all(o.texture.lossless for o in faces)


def test_a_patch_must_show_its_own_frame(shared_data) -> None:
    """The page's patch matches the JPEG it came with; a patch from another moment, a
    smoothed one, or the decoded JPEG itself sent back as PNG (the last two would hide a
    screen's pixel grid) does not, and the analyzer then ignores it and marks the frame."""
    from kyc_llm.upload import patch_png
    from kyc_llm.vision.intake import load_frame_unscaled, load_patch
    from test_api_support import clip_frames, live_spec

    th = load_thresholds().attacks
    frames = clip_frames(live_spec(shared_data))
    limits = (th.patch_max_difference, th.patch_min_detail, th.patch_min_jpeg_difference)
    for i in range(0, len(frames) - 8, 4):
        jpeg_pixels = load_frame_unscaled(frames[i].jpeg)
        nose = (jpeg_pixels.shape[1] / 2, jpeg_pixels.shape[0] / 2)
        assert load_patch(*patch_png(frames[i].bgr, nose)).matches(jpeg_pixels, *limits)
        smoothed = load_patch(*patch_png(cv2.GaussianBlur(frames[i].bgr, (0, 0), 0.8), nose))
        the_jpeg = load_patch(*patch_png(jpeg_pixels, nose))
        elsewhere = load_patch(*patch_png(np.roll(frames[i].bgr, 24, axis=1), nose))  # another place
        for forged in (smoothed, the_jpeg, elsewhere):
            assert not forged.matches(jpeg_pixels, *limits)
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        obs = analyzer.add(frames[0].jpeg, 0.0)
        smoothed = load_patch(*patch_png(cv2.GaussianBlur(frames[0].bgr, (0, 0), 0.8), obs.nose))
        assert analyzer.add_patch(0, frames[0].jpeg, smoothed) == "mismatch"
        assert obs.patch_mismatch and not obs.texture.lossless
        # The first patch of a frame counts: a clean one sent after it changes nothing.
        assert analyzer.add_patch(0, frames[0].jpeg, load_patch(*patch_png(frames[0].bgr, obs.nose))) == "duplicate"
        assert obs.patch_mismatch and not obs.texture.lossless
        second = analyzer.add(frames[1].jpeg, 0.125)
        assert analyzer.add_patch(1, frames[1].jpeg, load_patch(*patch_png(frames[1].bgr, second.nose))) == "checked"
        assert second.texture.lossless and not second.patch_mismatch
