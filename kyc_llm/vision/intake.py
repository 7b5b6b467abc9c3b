"""Frame intake: bytes, data URLs or arrays in, one validated BGR uint8 array out.

Everything from a client passes through here first, so every refusal is a ``FrameError``
with a message a developer can act on. The header is parsed here, before any pixel is
decoded: that is what refuses a decompression bomb (a tiny file declaring a huge image) and a
progressive JPEG (whose scan count, and so its decoding time, an attacker controls: one
165 KB file took 20 s). Browsers' canvas encoders write baseline JPEG and 8-bit RGB PNG,
which is all that is accepted.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..errors import FrameError

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 2_200_000  # a little over 1920x1080; the page sends 640x480
MIN_SIDE = 32
MAX_ASPECT = 4.0  # a camera frame is never a thin strip
# Analysis runs on at most this long edge: FaceMesh works on 192 px crops anyway, and larger
# frames only cost decode and texture time.
ANALYSIS_LONG_EDGE = 960

_DATA_URL = re.compile(r"^data:(image/(?:jpeg|jpg|png));base64,", re.IGNORECASE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_CHUNKS = 4096  # 8 MB in IDAT pieces of 8 KB is 1024
# JPEG start-of-frame markers. Only baseline (C0) and extended sequential (C1) Huffman
# coding are decoded; progressive, lossless and arithmetic-coded frames are refused.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SEQUENTIAL = {0xC0, 0xC1}


# Texture patches: small lossless crops around the face, sent beside the JPEG frames because
# JPEG's colour subsampling erases the fine sub-pixel stripes a screen shows on camera.
PATCH_MIN_SIDE = 96
PATCH_MAX_SIDE = 512


@dataclass(frozen=True)
class Patch:
    """A lossless crop of a frame; ``x``, ``y`` is its top-left corner in frame pixels."""

    pixels: np.ndarray
    x: int
    y: int

    def fits(self, width: int, height: int) -> bool:
        h, w = self.pixels.shape[:2]
        return self.x + w <= width and self.y + h <= height

    def matches(self, frame: np.ndarray, max_difference: float, min_detail: float,
                min_jpeg_difference: float) -> bool:
        """Whether the patch shows what ``frame`` (the decoded JPEG, same pixel grid) shows at
        its place: the same picture at quarter size (JPEG's losses average out there), at
        least ``min_detail`` times the frame's fine detail there (JPEG only removes detail,
        so a smoothed patch has less than its own frame), and not the JPEG's own pixels (a
        lossless source differs from its JPEG by at least ``min_jpeg_difference`` on average:
        the decoded JPEG sent back as PNG would hide a screen as well as JPEG does)."""
        h, w = self.pixels.shape[:2]
        region = frame[self.y:self.y + h, self.x:self.x + w]
        if float(cv2.absdiff(self.pixels, region).mean()) < min_jpeg_difference:
            return False
        small = (max(w // 4, 1), max(h // 4, 1))
        a = cv2.resize(self.pixels, small, interpolation=cv2.INTER_AREA).astype(np.float32)
        b = cv2.resize(region, small, interpolation=cv2.INTER_AREA).astype(np.float32)
        if float(np.abs(a - b).mean()) > max_difference:
            return False
        detail = [cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
                  for img in (self.pixels, region)]
        return float(detail[0]) >= min_detail * float(detail[1])


@dataclass(frozen=True)
class Header:
    format: str  # "JPEG" or "PNG"
    width: int
    height: int
    has_exif: bool = False


def decode_data_url(url: str) -> bytes:
    """Return the image bytes of a ``data:image/jpeg|png;base64,...`` URL.

    Raises ``FrameError`` for another media type, a missing prefix or bad base64.
    """
    if not isinstance(url, str):
        raise FrameError("image must be a data URL string")
    match = _DATA_URL.match(url)
    if not match:
        raise FrameError("image must be a data URL of type image/jpeg or image/png")
    payload = url[match.end():]
    if len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise FrameError(f"image is larger than {MAX_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError("image data URL is not valid base64") from None


def read_header(data: bytes, allow_alpha: bool = False) -> Header:
    """Parse the JPEG or PNG header. Raises ``FrameError`` for anything else, or for a
    progressive JPEG, a non-RGB or non-8-bit image (RGBA PNG only with ``allow_alpha``), or
    dimensions outside the limits."""
    if data.startswith(b"\xff\xd8"):
        header = _jpeg_header(data)
    elif data.startswith(PNG_SIGNATURE):
        header = _png_header(data, allow_alpha)
    else:
        raise FrameError("image is not a decodable JPEG or PNG image")
    check_dimensions(header.width, header.height)
    return header


def _jpeg_header(data: bytes) -> Header:
    i, n, has_exif = 2, len(data), False
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise FrameError("image is not a decodable JPEG image (corrupt marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image or start of scan before any frame header
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2 or i + 2 + length > n:
            raise FrameError("image is not a decodable JPEG image (truncated header)")
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\x00\x00":
            has_exif = True
        if marker in _SOF_MARKERS:
            if marker not in _SEQUENTIAL:
                raise FrameError("progressive, lossless or arithmetic-coded JPEG is not accepted (baseline only)")
            if length < 8:
                raise FrameError("image is not a decodable JPEG image (short frame header)")
            precision, components = data[i + 4], data[i + 9]
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            if precision != 8:
                raise FrameError("image must be an 8-bit JPEG")
            if components != 3:
                raise FrameError(f"image must be 3-channel colour, got {components} channel(s)")
            # A baseline colour JPEG has one to three scans; more is a crafted file.
            if data.count(b"\xff\xda") > components:
                raise FrameError("image is not a decodable JPEG image (too many scans)")
            return Header("JPEG", width, height, has_exif)
        i += 2 + length
    raise FrameError("image is not a decodable JPEG image (no frame header)")


def _png_header(data: bytes, allow_alpha: bool = False) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise FrameError("image is not a decodable PNG image (no IHDR)")
    _check_png_chunks(data)
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    bit_depth, colour_type = data[24], data[25]
    if colour_type != 2 and not (allow_alpha and colour_type == 6):  # 0 grey, 3 palette, 4 grey+alpha, 6 RGBA
        kinds = {0: "greyscale", 3: "palette", 4: "greyscale with alpha", 6: "RGBA"}
        raise FrameError(f"image must be 3-channel colour, got {kinds.get(colour_type, 'an unknown')} PNG")
    if bit_depth != 8:
        raise FrameError(f"image must be 8-bit, got a {bit_depth}-bit PNG")
    return Header("PNG", width, height)


def _check_png_chunks(data: bytes) -> None:
    """Every chunk's declared length must fit in the bytes that follow it, up to IEND.

    OpenCV's PNG reader reserves a chunk's declared length before reading it: a 41-byte file
    declaring a 4 GB chunk took 4 GB of memory and 6 s to be refused. A browser's canvas
    writes a handful of chunks (IDAT in pieces of 8 KB or more), hence the cap on their number.
    """
    i, n = len(PNG_SIGNATURE), len(data)
    for _ in range(MAX_PNG_CHUNKS):
        if i + 12 > n:
            raise FrameError("image is not a decodable PNG image (truncated chunk)")
        length = int.from_bytes(data[i:i + 4], "big")
        if length > n - i - 12:
            raise FrameError("image is not a decodable PNG image (a chunk is longer than the file)")
        if data[i + 4:i + 8] == b"IEND":
            return
        i += 12 + length
    raise FrameError(f"image is not a decodable PNG image (more than {MAX_PNG_CHUNKS} chunks)")


def decode_image(data: bytes, allow_alpha: bool = False) -> np.ndarray:
    """Decode JPEG or PNG bytes into a BGR uint8 array of shape (h, w, 3).

    EXIF orientation is applied. Raises ``FrameError`` for empty, oversized or undecodable
    bytes, another format, dimensions outside the limits, or images that are not 8-bit
    three-channel colour (greyscale, palette, RGBA, CMYK and 16-bit are refused, not guessed
    at). With ``allow_alpha`` an RGBA PNG is accepted when fully opaque (what a browser's
    canvas writes), its alpha dropped.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("image must be bytes")
    data = bytes(data)  # a memoryview of wider items would count elements, not bytes
    if len(data) == 0:
        raise FrameError("image is empty")
    if len(data) > MAX_BYTES:
        raise FrameError(f"image is larger than {MAX_BYTES} bytes")
    header = read_header(data, allow_alpha)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameError(f"image is not a decodable {header.format} image (truncated or corrupt)")
    if allow_alpha and image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        if not (image[..., 3] == 255).all():
            raise FrameError("an image with transparency is not accepted: it must be opaque")
        image = np.ascontiguousarray(image[..., :3])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FrameError("image must be 8-bit 3-channel colour")
    if image.shape[:2] != (header.height, header.width):
        raise FrameError("image size does not match its header")
    return _apply_exif_orientation(image, data) if header.has_exif else image


def _apply_exif_orientation(image: np.ndarray, data: bytes) -> np.ndarray:
    # IMREAD_UNCHANGED skips EXIF rotation (IMREAD_COLOR would also convert greyscale
    # silently), so phones' portrait photos are turned here. Webcam frames carry no EXIF.
    try:
        orientation = Image.open(io.BytesIO(data), formats=("JPEG",)).getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: keep the pixels as stored
        orientation = 1
    ops = {
        2: lambda a: cv2.flip(a, 1),
        3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
        4: lambda a: cv2.flip(a, 0),
        5: lambda a: cv2.flip(cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE), 1),
        6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
        7: lambda a: cv2.flip(cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE), 1),
        8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    op = ops.get(orientation)
    return op(image) if op else image


def encode_jpeg(bgr: np.ndarray, size: tuple[int, int] | None = None, quality: int = 85) -> bytes:
    """A BGR frame as JPEG bytes, first shrunk to ``size`` (width, height) if given.

    Area averaging is the right filter for shrinking (and a tenth of Lanczos' cost).
    Raises ``FrameError`` when the frame cannot be encoded.
    """
    if size is not None and (bgr.shape[1], bgr.shape[0]) != tuple(size):
        bgr = cv2.resize(bgr, tuple(size), interpolation=cv2.INTER_AREA)
    ok, out = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameError("the frame could not be encoded as JPEG")
    return out.tobytes()


def encode_png(bgr: np.ndarray) -> bytes:
    """A BGR image as (lossless) PNG bytes. Raises ``FrameError`` when it cannot be encoded."""
    ok, out = cv2.imencode(".png", bgr)
    if not ok:
        raise FrameError("the image could not be encoded as PNG")
    return out.tobytes()


def check_array(image: np.ndarray) -> np.ndarray:
    """Validate an already-decoded BGR frame (from a video reader or a test).

    Returns it contiguous. Raises ``FrameError`` for a wrong dtype, channel count or size.
    """
    if not isinstance(image, np.ndarray):
        raise FrameError("image must be a numpy array")
    if image.dtype != np.uint8:
        raise FrameError(f"image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(f"image must be (h, w, 3) colour, got shape {image.shape}")
    check_dimensions(image.shape[1], image.shape[0])
    return np.ascontiguousarray(image)


def normalise_for_analysis(image: np.ndarray) -> np.ndarray:
    """Downscale (never upscale) so the long edge is at most ``ANALYSIS_LONG_EDGE``."""
    h, w = image.shape[:2]
    long_edge = max(h, w)
    if long_edge <= ANALYSIS_LONG_EDGE:
        return image
    scale = ANALYSIS_LONG_EDGE / long_edge
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_patch(source: bytes | str, x: int, y: int) -> Patch:
    """A PNG (bytes or data URL; RGB, or opaque RGBA as browsers write it) texture patch at
    (x, y). Raises ``FrameError`` for JPEG or anything else lossy, a bad position, or sides
    outside [PATCH_MIN_SIDE, PATCH_MAX_SIDE]."""
    data = decode_data_url(source) if isinstance(source, str) else source
    if not isinstance(data, (bytes, bytearray, memoryview)) or not bytes(data[:8]) == PNG_SIGNATURE:
        raise FrameError("a texture patch must be a PNG image (lossless)")
    if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, int) or not isinstance(y, int) or x < 0 or y < 0:
        raise FrameError("a texture patch position must be two non-negative integers")
    # The header first: a small file may declare millions of pixels, which decoding would spend.
    header = read_header(bytes(data), allow_alpha=True)
    w, h = header.width, header.height
    if not (PATCH_MIN_SIDE <= min(h, w) and max(h, w) <= PATCH_MAX_SIDE):
        raise FrameError(f"a texture patch must be {PATCH_MIN_SIDE} to {PATCH_MAX_SIDE} px a side, got {w}x{h}")
    pixels = decode_image(data, allow_alpha=True)
    return Patch(pixels, x, y)


def load_frame_unscaled(source: bytes | str | np.ndarray) -> np.ndarray:
    """Bytes, a data URL or an array -> a validated BGR array at its own size."""
    if isinstance(source, np.ndarray):
        return check_array(source)
    if isinstance(source, str):
        return decode_image(decode_data_url(source))
    return decode_image(source)


def load_frame(source: bytes | str | np.ndarray) -> np.ndarray:
    """Bytes, a data URL or an array -> a validated BGR array ready for analysis."""
    return normalise_for_analysis(load_frame_unscaled(source))


def check_dimensions(width: int, height: int) -> None:
    """Raise ``FrameError`` unless both sides, the pixel count and the aspect are in bounds."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise FrameError(f"image is {width}x{height}; each side must be at least {MIN_SIDE} px")
    if width * height > MAX_PIXELS:
        raise FrameError(f"image is {width}x{height}; at most {MAX_PIXELS} pixels are accepted")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise FrameError(f"image is {width}x{height}; its sides may differ by at most {MAX_ASPECT:g}x")
