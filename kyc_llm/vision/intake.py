"""Frame intake: bytes, data URLs or arrays in, one validated BGR uint8 array out.

Everything from a client passes through here first, so every refusal is a ``FrameError``
with a message a developer can act on. Dimensions are read from the header before any pixel
is decoded, which is what stops a decompression bomb (a tiny file declaring 20000x20000).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import FrameError

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
MIN_SIDE = 32
# Analysis runs on at most this long edge: FaceMesh works on 192 px crops anyway, and larger
# frames only cost decode and texture time.
ANALYSIS_LONG_EDGE = 960

_DATA_URL = re.compile(r"^data:(image/(?:jpeg|jpg|png));base64,", re.IGNORECASE)
_ACCEPTED_FORMATS = {"JPEG", "PNG"}


def decode_data_url(url: str) -> bytes:
    """Return the image bytes of a ``data:image/jpeg|png;base64,...`` URL.

    Raises ``FrameError`` for another media type, a missing prefix or bad base64.
    """
    if not isinstance(url, str):
        raise FrameError("frame must be a data URL string")
    match = _DATA_URL.match(url)
    if not match:
        raise FrameError("frame must be a data URL of type image/jpeg or image/png")
    payload = url[match.end():]
    if len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise FrameError(f"frame is larger than {MAX_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError("frame data URL is not valid base64") from None


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG or PNG bytes into a BGR uint8 array of shape (h, w, 3).

    EXIF orientation is applied. Raises ``FrameError`` for empty, oversized or undecodable
    bytes, another format, dimensions outside [MIN_SIDE, MAX_PIXELS], or images that are not
    three-channel colour (grayscale, palette, RGBA and CMYK are refused, not guessed at).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("frame must be bytes")
    if len(data) == 0:
        raise FrameError("frame is empty")
    if len(data) > MAX_BYTES:
        raise FrameError(f"frame is larger than {MAX_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x the limit raises) on huge images; we check ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
            fmt, (width, height), mode = header.format, header.size, header.mode
    except Image.DecompressionBombError:
        raise FrameError(f"frame declares more than {MAX_PIXELS} pixels; at most {MAX_PIXELS} are accepted") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise FrameError("frame is not a decodable JPEG or PNG image") from None
    if fmt not in _ACCEPTED_FORMATS:
        raise FrameError(f"frame format {fmt} is not accepted (JPEG or PNG only)")
    _check_dimensions(width, height)
    if mode not in ("RGB", "YCbCr"):
        raise FrameError(f"frame must be 3-channel colour, got mode {mode}")
    image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameError("frame is not a decodable JPEG or PNG image (truncated or corrupt)")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FrameError("frame must be 8-bit 3-channel colour")
    return _apply_exif_orientation(image, header)


def _apply_exif_orientation(image: np.ndarray, header: Image.Image) -> np.ndarray:
    # IMREAD_UNCHANGED skips EXIF rotation (IMREAD_COLOR would also convert grayscale silently).
    if "exif" not in header.info:  # webcam frames carry none: skip the parse
        return image
    try:
        orientation = header.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: keep pixels as stored
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


def check_array(image: np.ndarray) -> np.ndarray:
    """Validate an already-decoded BGR frame (from a video reader or a test).

    Returns it contiguous. Raises ``FrameError`` for a wrong dtype, channel count or size.
    """
    if not isinstance(image, np.ndarray):
        raise FrameError("frame must be a numpy array")
    if image.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(f"frame must be (h, w, 3) colour, got shape {image.shape}")
    _check_dimensions(image.shape[1], image.shape[0])
    return np.ascontiguousarray(image)


def normalise_for_analysis(image: np.ndarray) -> np.ndarray:
    """Downscale (never upscale) so the long edge is at most ``ANALYSIS_LONG_EDGE``."""
    h, w = image.shape[:2]
    long_edge = max(h, w)
    if long_edge <= ANALYSIS_LONG_EDGE:
        return image
    scale = ANALYSIS_LONG_EDGE / long_edge
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def load_frame(source: bytes | str | np.ndarray) -> np.ndarray:
    """Bytes, a data URL or an array -> a validated BGR array ready for analysis."""
    if isinstance(source, np.ndarray):
        image = check_array(source)
    elif isinstance(source, str):
        image = decode_image(decode_data_url(source))
    else:
        image = decode_image(source)
    return normalise_for_analysis(image)


def _check_dimensions(width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise FrameError(f"frame is {width}x{height}; each side must be at least {MIN_SIDE} px")
    if width * height > MAX_PIXELS:
        raise FrameError(f"frame is {width}x{height}; at most {MAX_PIXELS} pixels are accepted")
