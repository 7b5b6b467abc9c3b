"""Classical computer vision: the only package that imports mediapipe (and, with it, cv2)."""
