"""Classical computer vision: the only package that imports mediapipe (and, with it, cv2)."""

import cv2

# One OpenCV thread per call. The service already runs a worker per core (and the evaluation a
# process per job), so OpenCV's own pool only splits small frames across busy cores, and its
# idle threads spin in sched_yield between calls: 17% of the server's CPU under load (perf).
cv2.setNumThreads(1)
