"""What the browser says about the camera it captured from, and whether that is a virtual camera.

Most deepfake attacks on remote onboarding do not hold a screen up to a camera: they feed the
generated video through a virtual camera (OBS, ManyCam, XSplit, Snap Camera and the like),
which a page sees as an ordinary webcam. The page reports what the browser knows: the video
track's label and settings (size, frame rate, resize mode), how many video inputs the device
has, and the spread of the intervals between the frames it grabbed. All of it is the
client's word, so it is validated here as untrusted input, stored with the session for the
operator, and used only to send a session to review (or to fail it, by configuration) when
the label names a known virtual camera: a clean report proves nothing, a custom client can
send any label (and letters that only look alike, Cyrillic for Latin, are not matched).
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Sequence

# Substrings of known virtual-camera labels (lower case); KYC_VIRTUAL_CAMERA_LABELS replaces them.
DEFAULT_VIRTUAL_LABELS = ("obs virtual", "obs-camera", "manycam", "xsplit", "snap camera", "splitcam",
                          "droidcam", "epoccam", "camtwist", "e2esoft", "vcam", "youcam", "virtual camera",
                          "virtual webcam", "akvcam", "v4l2loopback", "dummy video device")
# Chromium's test camera (--use-fake-device-for-media-stream; labelled with the video file's
# path when it plays one): a virtual camera like any other in production; outside it the
# tests and the demo use it.
FAKE_CAMERA_LABELS = ("fake_device", ".y4m", ".mjpeg")

MAX_LABEL = 200
RESIZE_MODES = ("none", "crop-and-scale")


@dataclass(frozen=True)
class CameraReport:
    """The page's account of its camera (every field optional: browsers differ)."""

    label: str | None = None  # MediaStreamTrack.label
    width: int | None = None  # the track's settings
    height: int | None = None
    frame_rate: float | None = None
    resize_mode: str | None = None  # "none" (the camera's own frames) or "crop-and-scale"
    video_inputs: int | None = None  # video inputs enumerateDevices() lists
    interval_ms_median: float | None = None  # between the frames the page grabbed
    interval_ms_p90: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


FIELDS = tuple(CameraReport.__dataclass_fields__)


def virtual_camera_match(report: CameraReport | None, labels: Sequence[str]) -> str | None:
    """The known virtual-camera label pattern the report's label contains, or None. Both are
    compared in compatibility form, case-folded, with runs of white space as one space
    (full-width letters, no-break spaces and doubled spaces do not hide a name)."""
    if report is None or not report.label:
        return None
    label = _comparable(report.label)
    return next((pattern for pattern in labels if pattern and _comparable(pattern) in label), None)


def _comparable(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
