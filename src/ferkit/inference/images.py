"""Reading photographs for recognition: any format and colour mode to RGB, with a size guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data.images import decode_rgb, to_rgb_array
from ferkit.errors import ImageError

ImageSource = str | Path | bytes | Image.Image | np.ndarray
__all__ = ["ImageError", "ImageSource", "load_image", "load_image_scaled"]


def load_image(source: ImageSource) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3), upright (EXIF applied).

    Args:
        source: a file path, the file's bytes, a PIL image, or an array: RGB (H, W, 3),
            RGBA (H, W, 4) or gray (H, W), uint8.
    """
    return load_image_scaled(source)[0]


def load_image_scaled(source: ImageSource) -> tuple[np.ndarray, float]:
    """load_image(), with the scale from the returned image's pixels to the original's (1.0 unless
    a JPEG over the pixel limit was decoded at reduced size)."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source), 1.0
    if isinstance(source, Image.Image):
        return to_rgb_array(source), 1.0
    return decode_rgb(source)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImageError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[..., :3])
    raise ImageError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4); got {array.shape}")
