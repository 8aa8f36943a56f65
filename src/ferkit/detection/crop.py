"""Face crops that look like FER-2013's: square, levelled by the eyes, gray, 48x48, area-resized."""

from __future__ import annotations

import numpy as np

from ferkit.detection.base import Face
from ferkit.preprocessing import FACE_SIZE

#: Side of the square crop as a multiple of the detector box's longer side. FER-2013 faces run
#: from mid-forehead to chin; libfacedetection boxes span eyebrows to chin, so 1.0 matches
#: (checked side by side against FER+ test faces on the close-ups in shared/data/photos).
CROP_SCALE = 1.0


def eye_angle(face: Face) -> float:
    """Angle in degrees of the line between the two eyes (0 when level or without landmarks)."""
    if not face.landmarks or len(face.landmarks) < 2:
        return 0.0
    (x1, y1), (x2, y2) = face.landmarks[0], face.landmarks[1]
    if x1 > x2:
        (x1, y1), (x2, y2) = (x2, y2), (x1, y1)
    return float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))


def crop_matrix(face: Face, scale: float = CROP_SCALE, size: int = FACE_SIZE) -> np.ndarray:
    """The 2x3 affine map from image pixels to crop pixels: a rotation about the face centre that
    levels the eyes, and a scale that brings the square of the box's longer side to ``size``."""
    import cv2

    x, y, w, h = face.box
    centre = (x + w / 2.0, y + h / 2.0)
    matrix = np.asarray(cv2.getRotationMatrix2D(centre, eye_angle(face), size / (max(w, h) * scale)), np.float64)
    matrix[:, 2] += (size / 2.0 - centre[0], size / 2.0 - centre[1])
    return matrix


def crop_face(gray: np.ndarray, face: Face, scale: float = CROP_SCALE, size: int = FACE_SIZE) -> np.ndarray:
    """Cut a levelled square face from a gray uint8 image (H, W) and resize it to (size, size).

    Pixels outside the image repeat the border, so faces at the edge keep their scale.
    """
    import cv2

    x, y, w, h = face.box
    side = max(w, h) * scale
    # Only the face's neighbourhood is cut and resized: a square around the centre large enough
    # for the crop at any rotation (half-diagonal 0.71 side), edges repeated as warpAffine would.
    half = int(np.ceil(0.75 * side)) + 2
    left, top = int(np.floor(x + w / 2.0)) - half, int(np.floor(y + h / 2.0)) - half
    region = _region(gray, left, top, 2 * half)
    matrix = crop_matrix(face, scale, size)
    matrix[:, 2] += matrix[:, :2] @ np.array([left, top], dtype=np.float64)  # region pixels -> crop pixels
    # INTER_AREA has no meaning in warpAffine; downscale the region first when the crop is much larger.
    if side > 2 * size:
        factor = side / (2 * size)
        region = cv2.resize(region, (max(1, round(region.shape[1] / factor)), max(1, round(region.shape[0] / factor))),
                            interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= factor
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_faces(image_rgb: np.ndarray, faces: list[Face], size: int = FACE_SIZE) -> np.ndarray:
    """Gray crops (N, size, size) of ``faces`` in an RGB uint8 image, as the models were trained on."""
    import cv2

    if not faces:
        return np.zeros((0, size, size), np.uint8)
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    return np.stack([crop_face(gray, face, size=size) for face in faces])


def _region(gray: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The (side, side) square of ``gray`` at (left, top), outside pixels repeating the border."""
    import cv2

    h, w = gray.shape
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
    if x0 >= x1 or y0 >= y1:  # entirely outside: the nearest border pixel everywhere
        return np.full((side, side), gray[min(max(top, 0), h - 1), min(max(left, 0), w - 1)], gray.dtype)
    inside = gray[y0:y1, x0:x1]
    return cv2.copyMakeBorder(inside, y0 - top, top + side - y1, x0 - left, left + side - x1, cv2.BORDER_REPLICATE)
