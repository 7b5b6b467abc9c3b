"""The only module that imports mediapipe: a thin adapter around FaceMesh.

FaceMesh runs with iris refinement (478 landmarks). ``video`` mode tracks a face from frame to
frame (one graph per session: tracking state must not leak between sessions); ``image`` mode
treats every frame as a still. Graphs are built once and reused; building one costs ~100 ms.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import cv2
import mediapipe as mp
import numpy as np

N_LANDMARKS = 478
Mode = Literal["video", "image"]


class FaceMesh:
    """FaceMesh with tuning in the constructor and one ``process`` method.

    Use as a context manager, or call ``close()``. Not thread-safe: one instance per thread.
    """

    def __init__(
        self,
        mode: Mode = "video",
        max_faces: int = 2,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {mode!r}")
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        self.mode = mode
        # max_faces=2 so that a second person in view is seen, not silently ignored.
        self._graph = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=(mode == "image"),
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
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


class TrackerPool:
    """Video-mode graphs keyed by session, least recently used evicted beyond ``size``.

    A server worker sees frames of many sessions interleaved; each needs its own tracking
    state. Use ``with pool.lease(key) as mesh:``; a graph evicted while leased is let go when
    its last lease ends, never under a thread that is still inside ``process``.

    A graph let go is reset and kept (up to ``idle``) for the next session rather than
    closed: building one and its first frame cost 25-40 ms per session. The reset is one
    blank frame: tracking stops on a frame without a face, after which the graph's landmarks
    equal a fresh graph's bit for bit (tests/test_vision_clips.py checks it).
    """

    def __init__(self, size: int = 8, idle: int = 8) -> None:
        if size < 1 or idle < 0:
            raise ValueError("the pool needs room for at least one graph")
        self._size, self._max_idle = size, idle
        self._graphs: OrderedDict[str, FaceMesh] = OrderedDict()
        self._idle: list[FaceMesh] = []
        self._leases: dict[int, int] = {}  # id(graph) -> leases outstanding
        self._lock = threading.Lock()

    @contextmanager
    def lease(self, key: str) -> Iterator[FaceMesh]:
        with self._lock:
            graph = self._graphs.pop(key, None) or (self._idle.pop() if self._idle else None)
            if graph is None:
                graph = FaceMesh("video")
            self._graphs[key] = graph
            self._leases[id(graph)] = self._leases.get(id(graph), 0) + 1
            evicted = self._evict()
        self._let_go(evicted)
        try:
            yield graph
        finally:
            with self._lock:
                self._leases[id(graph)] -= 1
                idle = self._leases[id(graph)] == 0
                if idle:
                    del self._leases[id(graph)]
                orphan = idle and all(g is not graph for g in self._graphs.values())
            if orphan:
                self._let_go([graph])

    def _evict(self) -> list[FaceMesh]:
        """Drop graphs beyond the pool size (lock held); return those nobody is using."""
        unused = []
        while len(self._graphs) > self._size:
            _, old = self._graphs.popitem(last=False)
            if not self._leases.get(id(old)):
                unused.append(old)
        return unused

    def _let_go(self, graphs: list[FaceMesh]) -> None:
        for graph in graphs:
            graph.process(_BLANK)  # forget the last face: the next session starts with a detection
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(graph)
                    continue
            graph.close()

    def release(self, key: str) -> None:
        """A session is over: its graph is reset for reuse (now, or when its last lease ends)."""
        with self._lock:
            graph = self._graphs.pop(key, None)
            unused = graph is not None and not self._leases.get(id(graph))
        if unused:
            self._let_go([graph])

    def __len__(self) -> int:
        with self._lock:
            return len(self._graphs)

    def close(self) -> None:
        with self._lock:
            graphs = list(self._graphs.values()) + self._idle
            self._graphs, self._idle = OrderedDict(), []
        for graph in graphs:
            graph.close()


_BLANK = np.zeros((64, 64, 3), np.uint8)
