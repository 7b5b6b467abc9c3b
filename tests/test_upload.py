"""The page emulator: what the evaluation feeds the pipeline is what the page uploads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kyc_llm.errors import FrameError
from kyc_llm.upload import PATCH_SIZE, PageEmulator, patch_origin
from kyc_llm.vision.facemesh import FaceMesh
from kyc_llm.vision.pipeline import SessionAnalyzer
from kyc_llm.vision.thresholds import load_thresholds


def test_patch_is_centred_on_the_nose_and_kept_inside_the_frame() -> None:
    assert patch_origin((480, 640), (300, 200)) == (300 - PATCH_SIZE // 2, 200 - PATCH_SIZE // 2)
    assert patch_origin((480, 640), None) == (320 - PATCH_SIZE // 2, 240 - PATCH_SIZE // 2)
    assert patch_origin((480, 640), (5, 470)) == (0, 480 - PATCH_SIZE)


def test_every_fourth_frame_carries_a_lossless_patch() -> None:
    frame = (np.random.default_rng(5).random((480, 640, 3)) * 255).astype(np.uint8)
    page = PageEmulator()
    uploads = [page.encode(frame, k, (320, 240)) for k in range(8)]
    assert [p is not None for _, p in uploads] == [True, False, False, False] * 2
    jpeg, patch = uploads[0]
    assert jpeg[:2] == b"\xff\xd8"
    assert np.array_equal(patch.pixels, frame[patch.y:patch.y + PATCH_SIZE, patch.x:patch.x + PATCH_SIZE])
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert not np.array_equal(decoded, frame)  # the frame itself is lossy


def test_a_patch_outside_its_frame_is_refused() -> None:
    page = PageEmulator()
    small = np.zeros((200, 200, 3), np.uint8)
    _, patch = page.encode(np.zeros((480, 640, 3), np.uint8), 0, (600, 400))
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        with pytest.raises(FrameError, match="outside"):
            analyzer.add(cv2.imencode(".jpg", small)[1].tobytes(), 0.0, patch)


def test_upload_centres_the_next_patch_on_the_reported_nose(shared_data) -> None:
    photo = cv2.imread(str(shared_data / "photos" / "ghost_mark.jpg"))
    framed = np.zeros((480, 640, 3), np.uint8)
    framed[:photo.shape[0], :photo.shape[1]] = photo[:480, :640]  # the face off the frame centre
    page = PageEmulator(patch_every=1)
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        first = page.upload(analyzer, framed, 0.0)
        second = page.upload(analyzer, framed, 0.1)
    assert first.nose is not None
    assert not first.texture.lossless  # the first patch, at the frame centre, misses the nose
    assert second.texture.lossless  # the next one is centred on the nose the server reported


def test_a_patch_must_show_its_own_frame(shared_data) -> None:
    """The page's patch matches the JPEG it came with; a patch from another moment, a
    smoothed one, or the decoded JPEG itself sent back as PNG (the last two would hide a
    screen's pixel grid) does not, and the analyzer then ignores it and marks the frame."""
    from test_api_support import clip_frames, live_spec

    from kyc_llm.upload import patch_png
    from kyc_llm.vision.intake import load_frame_unscaled, load_patch

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
    smoothed = load_patch(*patch_png(cv2.GaussianBlur(frames[0].bgr, (0, 0), 0.8), None))
    with FaceMesh() as mesh:
        analyzer = SessionAnalyzer(mesh, load_thresholds())
        obs = analyzer.add(frames[0].jpeg, 0.0, smoothed)
        assert obs.patch_mismatch and not obs.texture.lossless
        assert analyzer.add(frames[1].jpeg, 0.125, None).patch_mismatch is False
