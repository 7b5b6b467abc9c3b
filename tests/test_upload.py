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
