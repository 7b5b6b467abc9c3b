"""The only module that imports mediapipe: a thin adapter around FaceMesh.

FaceMesh runs with iris refinement (478 landmarks) in MediaPipe's static-image mode: every
frame is found and measured on its own, so a frame's landmarks do not depend on which frames
the graph saw before. That is what lets any server worker (or a restarted one) analyse any
frame of a session: with tracking, a session whose uploads alternate between two workers had
two graphs each tracking half its frames, and live sessions went to review under load. It
costs nothing here: with room for two faces, the video mode ran face detection on every
frame too (measured: 7.4 ms per frame in both modes, same evaluation figures).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import cv2
import mediapipe as mp
import numpy as np

N_LANDMARKS = 478


class FaceMesh:
    """FaceMesh with tuning in the constructor and one ``process`` method.

    Use as a context manager, or call ``close()``. Not thread-safe: one instance per thread
    at a time (``GraphPool`` hands them out). Building one costs ~100 ms.
    """

    def __init__(self, max_faces: int = 2, min_detection_confidence: float = 0.5) -> None:
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        # max_faces=2 so that a second person in view is seen, not silently ignored.
        self._graph = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
        )

    def process(self, bgr: np.ndarray) -> list[np.ndarray]:
        """Find faces in a BGR uint8 frame.

        Returns one (478, 3) float32 array per face, in pixels: x right, y down, z in the same
        scale as x (smaller is nearer the camera). Raises ``ValueError`` for a non-BGR input.
        """
        if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError("FaceMesh.process needs a BGR uint8 array of shape (h, w, 3)")
        h, w = bgr.shape[:2]
        result = self.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return [landmarks_array(face, w, h) for face in result.multi_face_landmarks or ()]

    def detect(self, rgb: np.ndarray) -> Any:
        """The bare MediaPipe graph call on an RGB frame (its own result type)."""
        return self._graph.process(rgb)

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> "FaceMesh":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A NormalizedLandmark with x, y and z serialises as 17 bytes: field tag and length (0A 0F),
# then three fixed32 fields (tags 0D, 15, 1D). Reading that with NumPy costs 0.02 ms; reading
# 478 protos attribute by attribute in Python costs 0.3 ms, on every frame.
_RECORD = 17
_FLOAT_BYTES = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def landmarks_array(face: Any, width: int, height: int) -> np.ndarray:
    """A NormalizedLandmarkList as an (n, 3) float32 array in pixels (z scaled like x)."""
    scale = np.array([width, height, width], np.float32)
    raw = face.SerializeToString()
    n = len(raw) // _RECORD
    if n and n * _RECORD == len(raw):
        rec = np.frombuffer(raw, np.uint8).reshape(n, _RECORD)
        if ((rec[:, 0] == 0x0A).all() and (rec[:, 1] == 0x0F).all() and (rec[:, 2] == 0x0D).all()
                and (rec[:, 7] == 0x15).all() and (rec[:, 12] == 0x1D).all()):
            return np.ascontiguousarray(rec[:, _FLOAT_BYTES]).view("<f4").reshape(n, 3) * scale
    # Another layout (e.g. visibility fields present): read field by field.
    return np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32) * scale


class GraphPool:
    """FaceMesh graphs shared by the threads of one process.

    ``with pool.lease() as mesh:`` hands out a graph no other thread is using, building one
    when all are busy; so a worker holds as many graphs as it ever had concurrent frames
    (its thread count), each ~30 MB. Graphs are built on first use: after gunicorn forks.
    """

    def __init__(self) -> None:
        self._free: list[FaceMesh] = []
        self._built: list[FaceMesh] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def lease(self) -> Iterator[FaceMesh]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the graph pool is closed")
            mesh = self._free.pop() if self._free else None
        if mesh is None:
            mesh = FaceMesh()
            with self._lock:
                self._built.append(mesh)
        try:
            yield mesh
        finally:
            with self._lock:
                closed = self._closed
                if not closed:
                    self._free.append(mesh)
            if closed:  # the pool was closed while this graph was out: it is the last user
                mesh.close()

    def __len__(self) -> int:
        """Graphs built so far."""
        with self._lock:
            return len(self._built)

    def close(self) -> None:
        """Close the graphs not in use; each graph in use is closed when its lease ends."""
        with self._lock:
            graphs, self._built, self._free, self._closed = self._free, [], [], True
        for mesh in graphs:
            mesh.close()
