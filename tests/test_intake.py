"""Frame intake: every bad input is refused with a FrameError, good frames decode."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from kyc_llm.errors import FrameError
from kyc_llm.vision import intake


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img)[1].tobytes()


def _png(mode: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _ihdr(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but holds no pixels: what a decompression bomb looks like."""
    return _ihdr(width, height) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def test_colour_jpeg_decodes_to_bgr() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :, 2] = 200  # red in BGR
    out = intake.decode_image(_jpeg(img))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert out[..., 2].mean() > 150 and out[..., 0].mean() < 50


def test_data_url_round_trip() -> None:
    data = _jpeg(np.full((40, 40, 3), 128, np.uint8))
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    assert intake.load_frame(url).shape == (40, 40, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"not an image at all", "not a decodable"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not a decodable"),  # a JPEG that stops after its marker
        (_png("RGB", (1, 1)), "at least"),
        (_png_header_only(20000, 20000), "at most"),
        (_png("L", (64, 64)), "3-channel"),
        (_png("RGBA", (64, 64)), "3-channel"),
        (_png("P", (64, 64)), "3-channel"),
    ],
    ids=["empty", "garbage", "truncated-jpeg", "1x1", "20000x20000-header", "grayscale", "rgba", "palette"],
)
def test_bad_bytes_raise_frame_error(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        intake.decode_image(data)


def test_grayscale_jpeg_is_refused() -> None:
    gray = cv2.imencode(".jpg", np.full((64, 64), 100, np.uint8))[1].tobytes()
    with pytest.raises(FrameError, match="3-channel"):
        intake.decode_image(gray)


def test_truncated_jpeg_body_is_refused() -> None:
    data = _jpeg((np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8))
    with pytest.raises(FrameError):
        intake.decode_image(data[: len(data) // 3])


def test_oversized_bytes_are_refused_before_decoding() -> None:
    with pytest.raises(FrameError, match="larger than"):
        intake.decode_image(b"\xff" * (intake.MAX_BYTES + 1))


@pytest.mark.parametrize(
    "url, message",
    [
        ("data:image/gif;base64,R0lGOD", "image/jpeg or image/png"),
        ("data:image/jpeg;base64,!!!not base64!!!", "base64"),
        ("https://example.invalid/x.jpg", "data URL"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        intake.load_frame(url)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((64, 64), np.uint8), "shape"),
        (np.zeros((64, 64, 4), np.uint8), "shape"),
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((1, 1, 3), np.uint8), "at least"),
    ],
    ids=["grayscale", "4-channel", "float", "1x1"],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        intake.load_frame(array)


def test_large_frames_are_downscaled_for_analysis() -> None:
    out = intake.load_frame(np.zeros((1080, 1920, 3), np.uint8))
    assert max(out.shape[:2]) == intake.ANALYSIS_LONG_EDGE
    assert out.shape[1] / out.shape[0] == pytest.approx(1920 / 1080, rel=0.01)


@pytest.mark.parametrize("orientation, red_on_top", [(6, True), (8, False)])
def test_exif_orientation_is_applied(orientation: int, red_on_top: bool) -> None:
    img = Image.new("RGB", (80, 40), (0, 0, 200))
    img.paste((200, 0, 0), (0, 0, 40, 40))  # left half red
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: rotate clockwise to display; 8: counter-clockwise
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    out = intake.decode_image(buf.getvalue())
    assert out.shape[:2] == (80, 40)
    top_is_red = out[:30, :, 2].mean() > out[:30, :, 0].mean()  # BGR: index 2 is red
    assert top_is_red == red_on_top


def _pil_bytes(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (_pil_bytes(Image.new("RGB", (64, 64), (9, 90, 200)), "JPEG", progressive=True), "baseline only"),
        (_pil_bytes(Image.new("CMYK", (64, 64)), "JPEG"), "3-channel"),
        (_pil_bytes(Image.new("I;16", (64, 64)), "PNG"), "3-channel|8-bit"),
        (_png_header_only(5000, 5000), "at most"),  # under Pillow's own bomb limit: ours must act
        (_png_header_only(4000, 40), "differ by at most"),
        (_pil_bytes(Image.new("RGB", (64, 64)), "GIF"), "not a decodable"),
        (_pil_bytes(Image.new("RGB", (64, 64)), "BMP"), "not a decodable"),
    ],
    ids=["progressive-jpeg", "cmyk-jpeg", "16-bit-png", "5000x5000-header", "thin-strip", "gif", "bmp"],
)
def test_formats_and_layouts_a_browser_never_sends(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        intake.decode_image(data)


@pytest.mark.parametrize(
    "data, message",
    [
        # 41 bytes found by fuzzing: OpenCV reserved the declared 4 GB and took 6 s to refuse it.
        (_ihdr(128, 128) + b"\xff\xff\xff\x00abCd", "truncated chunk"),
        (_ihdr(128, 128) + struct.pack(">I", 0x7FFFFFFF) + b"IDAT" + b"\x00" * 100, "longer than the file"),
        (_ihdr(128, 128) + _chunk(b"tEXt", b"") * (intake.MAX_PNG_CHUNKS + 1) + _chunk(b"IEND", b""), "chunks"),
        (_ihdr(128, 128) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)), "truncated chunk"),  # no IEND
    ],
    ids=["4gb-chunk-41-bytes", "chunk-longer-than-file", "too-many-chunks", "no-iend"],
)
def test_png_chunk_lengths_are_checked_before_decoding(data: bytes, message: str, monkeypatch) -> None:
    def imdecode(*args: object) -> None:
        raise AssertionError("decoded before its chunks were checked")

    monkeypatch.setattr(intake.cv2, "imdecode", imdecode)
    with pytest.raises(FrameError, match=message):
        intake.decode_image(data, allow_alpha=True)


def test_jpeg_with_extra_scans_is_refused() -> None:
    data = _jpeg(np.full((64, 64, 3), 90, np.uint8))
    end = data.rindex(b"\xff\xd9")
    scan = data[data.index(b"\xff\xda"):end]
    with pytest.raises(FrameError, match="too many scans"):
        intake.decode_image(data[:end] + scan * 5 + b"\xff\xd9")


def _png_of(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def test_patch_is_lossless_and_keeps_its_position() -> None:
    crop = (np.random.default_rng(3).random((128, 128, 3)) * 255).astype(np.uint8)
    patch = intake.load_patch(_png_of(crop), 40, 60)
    assert (patch.x, patch.y) == (40, 60) and np.array_equal(patch.pixels, crop)
    assert patch.fits(168, 188) and not patch.fits(167, 188)


@pytest.mark.parametrize(
    "data, xy, message",
    [
        (_jpeg(np.zeros((128, 128, 3), np.uint8)), (0, 0), "PNG"),
        (_png_of(np.zeros((64, 64, 3), np.uint8)), (0, 0), "96 to 512"),
        (_png_of(np.zeros((128, 128, 3), np.uint8)), (-1, 0), "non-negative"),
        (_png_of(np.zeros((128, 128, 3), np.uint8)), (1.5, 0), "non-negative"),
    ],
    ids=["jpeg", "too-small", "negative", "float"],
)
def test_bad_patches(data: bytes, xy: tuple, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        intake.load_patch(data, *xy)


def test_patch_accepts_the_browsers_opaque_rgba_png_but_not_transparency() -> None:
    rgba = np.zeros((128, 128, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = 255
    patch = intake.load_patch(_png_of(rgba), 0, 0)
    assert patch.pixels.shape == (128, 128, 3)
    rgba[5, 5, 3] = 10
    with pytest.raises(FrameError, match="opaque"):
        intake.load_patch(_png_of(rgba), 0, 0)
    with pytest.raises(FrameError, match="3-channel"):  # frames stay 3-channel only
        intake.decode_image(_png_of(np.dstack([rgba[..., :3], np.full((128, 128), 255, np.uint8)])))
