"""Decoding image files into uint8 gray faces, with clear errors for broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferkit.data.dataset import FACE_SIZE
from ferkit.errors import DataError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


def _flatten(image: Image.Image) -> Image.Image:
    """Upright, 8-bit, no alpha: an "L" or "RGB" image from any mode (16-bit, float, CMYK,
    palette, RGBA, ...). EXIF orientation is applied so that faces come out upright."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: scale the full range to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        scale = 255.0 / 65535.0 if top > 255 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def to_gray_array(image: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to uint8 gray (H, W), upright."""
    return np.asarray(_flatten(image).convert("L"), dtype=np.uint8)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to uint8 RGB (H, W, 3), upright."""
    return np.asarray(_flatten(image).convert("RGB"), dtype=np.uint8)


def decode_face(data: bytes, where: str, resize: bool) -> np.ndarray:
    """Decode image bytes to a uint8 (48, 48) gray face.

    Args:
        data: the encoded image file.
        where: the file's name, for error messages.
        resize: resize any size to 48x48 (area interpolation); if False, other sizes are an error.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            gray = to_gray_array(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{where}: not a readable image ({exc})") from exc
    if gray.shape != (FACE_SIZE, FACE_SIZE):
        if not resize:
            raise DataError(f"{where}: expected a 48x48 face, got {gray.shape[1]}x{gray.shape[0]}")
        pil = Image.fromarray(gray)
        gray = np.asarray(pil.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BOX), dtype=np.uint8)
    return gray


def read_face(path: Path, resize: bool) -> np.ndarray:
    """Read an image file as a uint8 (48, 48) gray face (see decode_face)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    return decode_face(data, str(path), resize)
