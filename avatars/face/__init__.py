"""Faces read from photos and videos (MediaPipe Face Landmarker) and the avatars fitted to them."""
