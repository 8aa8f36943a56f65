"""OpenCV's Haar cascade (frontal faces), whose XML ships inside opencv-python-headless < 5."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ferkit.detection.base import DetectorOptions, Face, FaceDetector
from ferkit.errors import FerkitError


class HaarDetector(FaceDetector):
    """Viola-Jones cascade: frontal faces only, no landmarks; scores are the cascade's level weights
    squashed into [0, 1]."""

    name = "haar"

    def __init__(self, options: DetectorOptions | None = None) -> None:
        super().__init__(options)
        import cv2.data

        xml = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not xml.is_file():
            raise FerkitError(f"{xml} is missing: install opencv-python-headless<5, which ships the Haar cascades")
        self._cascade = cv2.CascadeClassifier(str(xml))
        self._lock = threading.Lock()  # a CascadeClassifier is not safe to share between threads

    def _detect(self, image_rgb: np.ndarray, min_size: int) -> list[Face]:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
        with self._lock:
            boxes, _, weights = self._cascade.detectMultiScale3(
                gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size), outputRejectLevels=True
            )
        return [
            Face((int(x), int(y), int(w), int(h)), float(1 / (1 + np.exp(-float(weight)))))
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights))
        ]
