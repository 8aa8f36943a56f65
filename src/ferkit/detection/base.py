"""The face detector interface: an RGB image in, a list of Face boxes out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ferkit.errors import InputShapeError


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: (x, y, w, h) in image pixels; may reach past the image edges.
        score: detector confidence in [0, 1].
        landmarks: ((x, y), ...) right eye, left eye, nose, mouth corners (as the detector
            gives them), or None.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class DetectorOptions:
    """Filters applied to every detector's raw output.

    Attributes:
        min_size: smallest face side in pixels.
        score_threshold: lowest detector confidence kept.
        max_faces: keep at most this many (largest first); None for all.
        largest_only: keep only the largest face.
        max_side: images whose longer side exceeds this are scaled down for detection (boxes are
            scaled back); smaller values are faster and miss small faces.
    """

    min_size: int = 20
    score_threshold: float = 0.6
    max_faces: int | None = None
    largest_only: bool = False
    max_side: int = 960


class FaceDetector(ABC):
    """Finds faces in RGB uint8 images (H, W, 3)."""

    name: str = ""

    def __init__(self, options: DetectorOptions | None = None) -> None:
        self.options = options or DetectorOptions()

    @abstractmethod
    def _detect(self, image_rgb: np.ndarray, min_size: int) -> list[Face]:
        """Raw detections, before the shared filters; ``min_size`` is the smallest face side in
        this image's pixels (the options' min_size scaled with the image)."""

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, filtered by the options, largest first."""
        if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise InputShapeError(f"expected an RGB uint8 image (H, W, 3), got {image_rgb.dtype} {image_rgb.shape}")
        opts = self.options
        h, w = image_rgb.shape[:2]
        scale = min(1.0, opts.max_side / max(h, w))
        if scale < 1.0:
            import cv2

            # A sliver of an image (1 x 8000) keeps at least one pixel across.
            small = cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            raw = [_rescale(f, 1.0 / scale) for f in self._detect(small, max(1, round(opts.min_size * scale)))]
        else:
            raw = self._detect(image_rgb, opts.min_size)
        return self._filtered(raw)

    def detect_region(self, image_rgb: np.ndarray, region: tuple[int, int, int, int], side: int) -> list[Face]:
        """Faces inside ``region`` (x0, y0, x1, y1) of an RGB uint8 image, the region scaled down by
        a whole factor so that its longer side is at most ``side`` pixels; boxes in the whole image's pixels, filtered
        by the options as detect() filters them. Cheap where the faces are expected (tracking)."""
        import cv2

        x0, y0, x1, y1 = max(0, region[0]), max(0, region[1]), min(image_rgb.shape[1], region[2]), min(image_rgb.shape[0], region[3])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return []
        # Shrunk by a whole factor, the region's edge trimmed to a multiple of it: OpenCV's area
        # filter is then a plain box average, 3x faster than at a fractional factor.
        factor = -(-max(y1 - y0, x1 - x0) // side)
        x1, y1 = x1 - (x1 - x0) % factor, y1 - (y1 - y0) % factor
        patch, scale = image_rgb[y0:y1, x0:x1], 1.0 / factor
        if factor > 1:
            patch = cv2.resize(patch, ((x1 - x0) // factor, (y1 - y0) // factor), interpolation=cv2.INTER_AREA)
        raw = self._detect(np.ascontiguousarray(patch), max(1, round(self.options.min_size * scale)))
        return self._filtered([_shifted(_rescale(f, 1.0 / scale), x0, y0) for f in raw])

    def _filtered(self, raw: list[Face]) -> list[Face]:
        opts = self.options
        faces = [f for f in raw if f.score >= opts.score_threshold and min(f.box[2], f.box[3]) >= opts.min_size]
        faces.sort(key=lambda f: f.area, reverse=True)
        limit = 1 if opts.largest_only else opts.max_faces
        return faces[:limit] if limit is not None else faces


def _rescale(face: Face, factor: float) -> Face:
    x, y, w, h = face.box
    landmarks = None if face.landmarks is None else tuple((px * factor, py * factor) for px, py in face.landmarks)
    return Face((round(x * factor), round(y * factor), round(w * factor), round(h * factor)), face.score, landmarks)


def _shifted(face: Face, dx: int, dy: int) -> Face:
    x, y, w, h = face.box
    landmarks = None if face.landmarks is None else tuple((px + dx, py + dy) for px, py in face.landmarks)
    return Face((x + dx, y + dy, w, h), face.score, landmarks)
