"""Reading what clients send: JSON bodies, frame batches (multipart or JSON), tokens, query args.

Each reader returns plain values or raises a typed error the JSON handler renders as a 4xx.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from flask import request
from werkzeug.routing import IntegerConverter

from ..camera import FIELDS, MAX_LABEL, RESIZE_MODES, CameraReport
from ..errors import FrameError
from ..sessions.errors import BadRequest
from ..sessions.lifecycle import PatchUpload, Upload
from ..vision.intake import decode_data_url
from .errors import MalformedJSON, UnsupportedMediaType


def json_body(optional: bool = False, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request's JSON object. An empty body is ``{}`` when ``optional``; with ``fields``,
    any other top-level field is refused (a field nobody reads is a client's mistake).

    Raises ``UnsupportedMediaType`` (not application/json), ``MalformedJSON`` (does not parse)
    or ``BadRequest`` (not an object, or an unknown field).
    """
    if optional and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser's stack: not a frame batch
        data = None
    if data is None:
        if request.get_data(cache=True).strip() == b"null":  # valid JSON, the wrong value
            raise BadRequest("the JSON body must be an object")
        raise MalformedJSON("the body is not valid JSON")
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    unknown = sorted(set(data) - set(fields)) if fields is not None else []
    if unknown:
        reads = f"only {', '.join(fields)} is read" if fields else "the body must be empty or {}"
        raise BadRequest(f"unknown field(s): {_names(unknown)}; {reads}")
    return data


def _names(names: list[str], shown: int = 5, length: int = 40) -> str:
    """Field names for an error message, in part: the message must not grow with what a
    client sends (a 5 MB key came back as a 5 MB error)."""
    out = ", ".join(repr(n if len(n) <= length else n[:length] + "…") for n in names[:shown])
    return out + (f" and {len(names) - shown} more" if len(names) > shown else "")


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def frame_uploads() -> tuple[list[Upload], list[PatchUpload]]:
    """The frames of an upload request, in the order sent, and the texture patches.

    Multipart: files in field ``frame`` with matching ``seq`` fields and optional ``t``
    fields (client time in seconds); patches as files ``patch`` with matching ``patch_seq``,
    ``patch_x`` and ``patch_y`` fields. JSON: ``{"frames": [{"seq", "t", "image": data URL}],
    "patches": [{"seq", "image": PNG data URL, "x", "y"}]}``. A patch is the lossless crop
    of the frame ``seq``, sent in the same request or an earlier one (the page sends it once
    the server has said where the face is in that frame); either list may be empty, not both.
    Raises ``UnsupportedMediaType``, ``MalformedJSON``, ``BadRequest`` or ``FrameError`` (bad data URL or base64).
    """
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return _multipart()
    if mimetype == "application/json" or request.is_json:
        return _json_batch()
    raise UnsupportedMediaType("send frames as multipart/form-data or as a JSON batch of data URLs")


def _multipart() -> tuple[list[Upload], list[PatchUpload]]:
    files = request.files.getlist("frame")
    if not request.files and not request.form and request.content_length:
        # werkzeug reads a body without its boundary, or a broken one, as no parts at all
        raise BadRequest("the multipart body could not be read: check its boundary and part headers")
    patches = _multipart_patches()
    if not files and not patches:
        raise BadRequest("no file in field 'frame' or 'patch'", code="no_frames")
    seqs = request.form.getlist("seq")
    times = request.form.getlist("t")
    if len(seqs) != len(files):
        raise BadRequest("send one 'seq' field per 'frame' file")
    if times and len(times) != len(files):
        raise BadRequest("send one 't' field per 'frame' file, or none")
    out = []
    for i, f in enumerate(files):
        if f.mimetype not in ("image/jpeg", "image/png", "application/octet-stream"):
            raise UnsupportedMediaType(f"frame {i} must be image/jpeg, not {f.mimetype}")
        seq = _int(seqs[i], f"seq of frame {i}")
        t = _number(times[i], f"t of frame {i}") if times else None
        out.append(Upload(seq, t, f.read()))
    return out, patches


def _multipart_patches() -> list[PatchUpload]:
    """Texture patches: files ``patch`` with matching ``patch_seq``, ``patch_x``, ``patch_y``."""
    files = request.files.getlist("patch")
    fields = [request.form.getlist(n) for n in ("patch_seq", "patch_x", "patch_y")]
    if any(len(f) != len(files) for f in fields):
        raise BadRequest("send patch_seq, patch_x and patch_y once per 'patch' file")
    return [PatchUpload(_int(fields[0][i], f"patch_seq of patch {i}"), f.read(),
                        _int(fields[1][i], f"patch_x of patch {i}"), _int(fields[2][i], f"patch_y of patch {i}"))
            for i, f in enumerate(files)]


def _json_batch() -> tuple[list[Upload], list[PatchUpload]]:
    body = json_body(fields=("frames", "patches"))
    frames, patches = body.get("frames", []), body.get("patches", [])
    if not isinstance(frames, list):
        raise BadRequest("'frames' must be a list of {seq, t, image}")
    if not isinstance(patches, list):
        raise BadRequest("'patches' must be a list of {seq, image, x, y}")
    if not frames and not patches:
        raise BadRequest("'frames' and 'patches' are both empty or missing", code="no_frames")
    out = []
    for i, item in enumerate(frames):
        if not isinstance(item, dict):
            raise BadRequest(f"frames[{i}] must be an object")
        extra = set(item) - {"seq", "t", "image"}
        if extra:
            hint = " (texture patches go in the batch's 'patches' list)" if "patch" in extra else ""
            raise BadRequest(f"frames[{i}]: unknown field(s) {_names(sorted(extra))}{hint}")
        if "seq" not in item or "image" not in item:
            raise BadRequest(f"frames[{i}] needs 'seq' and 'image'")
        if not isinstance(item["seq"], int):
            raise BadRequest(f"frames[{i}].seq must be a non-negative integer")
        seq = _int(item["seq"], f"frames[{i}].seq")
        t = None if item.get("t") is None else _number(item["t"], f"frames[{i}].t")
        try:
            data = decode_data_url(item["image"])
        except FrameError as exc:
            raise FrameError(f"frames[{i}].image: {exc.message}") from None
        out.append(Upload(seq, t, data))
    return out, [_json_patch(item, f"patches[{i}]") for i, item in enumerate(patches)]


def _json_patch(raw: Any, what: str) -> PatchUpload:
    """``{"seq": int, "image": PNG data URL, "x": int, "y": int}``."""
    if not isinstance(raw, dict) or set(raw) != {"seq", "image", "x", "y"}:
        raise BadRequest(f"{what} must be an object with exactly seq, image, x and y")
    if not all(isinstance(raw[k], int) for k in ("seq", "x", "y")):
        raise BadRequest(f"{what}: seq, x and y must be non-negative integers")
    try:
        data = decode_data_url(raw["image"])
    except FrameError as exc:
        raise FrameError(f"{what}.image: {exc.message}") from None
    return PatchUpload(_int(raw["seq"], f"{what}.seq"), data, _int(raw["x"], f"{what}.x"), _int(raw["y"], f"{what}.y"))


MAX_INT = 10_000_000  # above every count, position and sequence number the service takes


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be an integer")
    if isinstance(value, str):
        value = value.strip()
        # ASCII only: "²".isdigit() is true and int() refuses it; int("٣") is 3. Eight digits
        # at most: int() refuses more than 4,300 (a 500 otherwise), and none is in range.
        if not (value.isascii() and value.isdigit() and len(value) <= 8):
            raise BadRequest(f"{what} must be an integer from 0 to {MAX_INT:,}")
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_INT:
        raise BadRequest(f"{what} must be an integer from 0 to {MAX_INT:,}")
    return value


_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be a number")
    # A decimal in ASCII digits: float() also takes "1_0", Arabic-Indic digits and "nan".
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        raise BadRequest(f"{what} must be a number")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer of 309+ digits
        raise BadRequest(f"{what} must be a number") from None
    if not math.isfinite(out):
        raise BadRequest(f"{what} must be a finite number")
    return out


def camera_report(raw: Any) -> CameraReport:
    """Validate the ``camera`` object of a request. Raises ``BadRequest`` naming the field."""
    if not isinstance(raw, dict):
        raise BadRequest("'camera' must be an object")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise BadRequest(f"camera: unknown field(s) {_names(unknown)}; known: {', '.join(FIELDS)}")
    label = raw.get("label")
    if label is not None:
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise BadRequest(f"camera.label must be a string of at most {MAX_LABEL} characters")
        # Kept as text without control, format (zero-width, direction) or surrogate characters:
        # a device's name may hold any of them, and one must not stop an honest user's check.
        label = "".join(c for c in label if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    mode = raw.get("resize_mode")
    if mode is not None and mode not in RESIZE_MODES:
        raise BadRequest(f"camera.resize_mode must be one of {', '.join(RESIZE_MODES)}")
    return CameraReport(
        label=label, width=_camera_count(raw, "width", 1, 16384), height=_camera_count(raw, "height", 1, 16384),
        frame_rate=_camera_number(raw, "frame_rate", 0.0, 1000.0), resize_mode=mode,
        video_inputs=_camera_count(raw, "video_inputs", 0, 64),
        interval_ms_median=_camera_number(raw, "interval_ms_median", 0.0, 60_000.0),
        interval_ms_p90=_camera_number(raw, "interval_ms_p90", 0.0, 60_000.0),
    )


def _camera_count(raw: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"camera.{name} must be an integer from {low} to {high}")
    return value


def _camera_number(raw: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    # Compared before any conversion: a JSON integer of 400 digits overflows a float.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
            or not math.isfinite(value):
        raise BadRequest(f"camera.{name} must be a number from {low:g} to {high:g}")
    return float(value)


class AsciiIntConverter(IntegerConverter):
    """``<int:...>`` in URLs with ASCII digits only: werkzeug's reads any Unicode digit, so
    /alerts/%D9%A1/ack acknowledged alert 1."""

    regex = r"[0-9]+"


def query_float(name: str) -> float | None:
    raw = request.args.get(name)
    return None if raw in (None, "") else _number(raw, f"query parameter {name}")


def query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    value = _int(raw, f"query parameter {name}")
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name} must be between {low} and {high}")
    return value


def query_choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw not in choices:
        raise BadRequest(f"query parameter {name} must be one of {', '.join(choices)}")
    return raw
