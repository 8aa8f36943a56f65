"""Face detection: one interface, detectors whose weights ship inside installed packages."""

from __future__ import annotations

from ferkit.detection.base import DetectorOptions, Face, FaceDetector
from ferkit.detection.crop import CROP_SCALE, crop_face, crop_faces, crop_matrix
from ferkit.errors import FerkitError

DETECTOR_NAMES: tuple[str, ...] = ("yunet", "haar")
DEFAULT_DETECTOR = "yunet"


def create_detector(name: str = DEFAULT_DETECTOR, options: DetectorOptions | None = None) -> FaceDetector:
    """Build a detector by name ("yunet", the default, or "haar")."""
    if name == "yunet":
        from ferkit.detection.yunet import YuNetDetector

        return YuNetDetector(options)
    if name == "haar":
        from ferkit.detection.haar import HaarDetector

        return HaarDetector(options)
    raise FerkitError(f"unknown detector '{name}'; choose one of: {', '.join(DETECTOR_NAMES)}")


__all__ = ["CROP_SCALE", "DEFAULT_DETECTOR", "DETECTOR_NAMES", "DetectorOptions", "Face", "FaceDetector",
           "create_detector", "crop_face", "crop_faces", "crop_matrix"]
