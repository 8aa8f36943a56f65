"""Reading photographs for recognition: any format and colour mode to RGB, with a size guard."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferkit.data.images import to_rgb_array
from ferkit.errors import FerkitError

#: Images above this many pixels are decoded at reduced size (JPEG) or refused (other formats),
#: so a decompression bomb never exhausts memory.
MAX_PIXELS = 40_000_000

ImageSource = str | Path | bytes | Image.Image | np.ndarray


class ImageError(FerkitError):
    """An image cannot be read: missing, not an image, truncated or too large."""


def _open(source: str | Path | bytes) -> Image.Image:
    where = "uploaded image" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            handle: io.BytesIO | Path = io.BytesIO(source)
        else:
            handle = Path(source)
            if not handle.exists():
                raise ImageError(f"{where}: no such file")
            if handle.is_dir():
                raise ImageError(f"{where}: is a folder, not an image")
            if handle.stat().st_size == 0:
                raise ImageError(f"{where}: empty file (0 bytes)")
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
        try:
            image = Image.open(handle)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    except UnidentifiedImageError as exc:
        raise ImageError(f"{where}: not an image file PIL can read") from exc
    except OSError as exc:
        raise ImageError(f"{where}: cannot read ({exc})") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        if image.format == "JPEG":
            # JPEG decodes at 1/2, 1/4 or 1/8 size for free; ask for the power of two that fits.
            factor = 2 ** int(np.ceil(np.log2(np.sqrt(width * height / MAX_PIXELS))))
            image.draft("RGB", (width // factor, height // factor))
        if image.size[0] * image.size[1] > MAX_PIXELS:
            raise ImageError(
                f"{where}: {width}x{height} pixels is over the {MAX_PIXELS:,}-pixel limit; scale it down first"
            )
    try:
        image.load()
    except (OSError, ValueError) as exc:
        raise ImageError(f"{where}: broken or truncated image ({exc})") from exc
    return image


def load_image(source: ImageSource) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3), upright (EXIF applied).

    Args:
        source: a file path, the file's bytes, a PIL image, or an array: RGB (H, W, 3),
            RGBA (H, W, 4) or gray (H, W), uint8.
    """
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise ImageError(f"image arrays must be uint8, got {source.dtype}")
        if source.ndim == 2:
            return np.repeat(source[..., None], 3, axis=2)
        if source.ndim == 3 and source.shape[2] in (3, 4):
            return np.ascontiguousarray(source[..., :3])
        raise ImageError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4); got {source.shape}")
    if isinstance(source, Image.Image):
        return to_rgb_array(source)
    with _open(source) as image:
        return to_rgb_array(image)
