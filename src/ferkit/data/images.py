"""The one image decoder: files or bytes to PIL images with a size guard, then gray faces or RGB.

Every image ferkit reads (data sets, photos, uploads) goes through open_image, so there is one
format allow-list, one decompression-bomb limit and one set of error messages; photos (files, the
app's and the service's uploads) become RGB through decode_rgb.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferkit.errors import DataError, ImageError, ImageFormatError, ImageTooLargeError
from ferkit.preprocessing import FACE_SIZE

#: Images above this many pixels are decoded at reduced size (JPEG) or refused (other formats),
#: so a decompression bomb never exhausts memory.
MAX_PIXELS = 40_000_000
#: The formats ferkit decodes (PIL names); anything else PIL could open (EPS through Ghostscript,
#: PSD, ICO, TGA, PCX, PPM, ...) is refused as not an image.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
#: Reserves an image's pixels (width x height) before it is decoded; may wait, or raise to refuse.
Reserve = Callable[[int], None]
# warnings.catch_warnings saves and restores the process's one filter list: calls from several
# threads at once restore each other's lists and leave PIL's warning silenced for good. Opening
# reads only the header, so taking turns costs little.
_OPEN_LOCK = threading.Lock()


def open_image(source: bytes | str | Path, where: str | None = None, max_pixels: int | None = None,
               reduce: bool = True, formats: tuple[str, ...] = IMAGE_FORMATS, reserve: Reserve | None = None,
               work_pixels: int | None = None) -> tuple[Image.Image, float]:
    """Open and decode an image file (path or bytes) within a pixel limit.

    Args:
        source: the file's path or bytes.
        where: the file's name in error messages.
        max_pixels: the limit (MAX_PIXELS when None).
        reduce: decode a JPEG over the limit at 1/2, 1/4 or 1/8 size instead of refusing it.
        formats: PIL format names to accept (IMAGE_FORMATS unless told).
        reserve: called with the pixels about to be decoded, once the header is read.
        work_pixels: reduce a larger image to at most this many pixels as it is decoded (JPEG)
            or right after (other formats), by a whole factor.

    Returns the decoded image and its scale: original width / decoded width (1.0 unless it was
    decoded at reduced size). An image over the limit raises ImageTooLargeError. PIL's own
    guard stays as it is (it refuses images over twice its limit, about 179 megapixels); nothing
    global is changed.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    where = where or ("uploaded image" if isinstance(source, bytes) else str(source))
    if isinstance(source, bytes):
        handle: io.BytesIO | Path = io.BytesIO(source)
    else:
        handle = Path(source)
        if not handle.exists():
            loop = " (a link that leads nowhere or loops)" if handle.is_symlink() else ""
            raise ImageError(f"{where}: no such file{loop}")
        if handle.is_dir():
            raise ImageError(f"{where}: is a folder, not an image")
        if handle.stat().st_size == 0:
            raise ImageError(f"{where}: empty file (0 bytes)")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Between PIL's limit and twice it, PIL only warns; MAX_PIXELS below is the real guard.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(handle, formats=formats)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{where}: over the {limit:,}-pixel limit ({exc}); scale it down first") from exc
    except UnidentifiedImageError as exc:
        names = ", ".join(f.replace("WEBP", "WebP") for f in formats)
        raise ImageFormatError(f"{where}: not an image file in an accepted format ({names})") from exc
    except OSError as exc:
        raise ImageError(f"{where}: cannot read ({exc})") from exc
    width, height = image.size
    if width * height > limit:
        if image.format == "JPEG" and reduce:
            # JPEG decodes at 1/2, 1/4 or 1/8 size for free; ask for the power of two that fits.
            factor = 2 ** int(np.ceil(np.log2(np.sqrt(width * height / limit))))
            image.draft("RGB", (width // factor, height // factor))
        if image.size[0] * image.size[1] > limit:
            image.close()
            raise ImageTooLargeError(
                f"{where}: {width}x{height} pixels is over the {limit:,}-pixel limit; scale it down first"
            )
    factor = _factor(width * height, work_pixels)
    if factor > 1 and image.format == "JPEG":
        image.draft("RGB", (width // factor, height // factor))
    try:
        if reserve is not None:
            reserve(image.size[0] * image.size[1])
        image.load()
    except (OSError, ValueError) as exc:
        image.close()
        raise ImageError(f"{where}: broken or truncated image ({exc})") from exc
    except BaseException:
        image.close()
        raise
    factor = _factor(image.size[0] * image.size[1], work_pixels)
    if factor > 1:
        with image:
            image = image.reduce(factor)  # keeps the EXIF orientation, applied later by to_rgb_array
    return image, width / image.size[0]


def _factor(pixels: int, work_pixels: int | None) -> int:
    """The smallest whole factor that brings ``pixels`` to at most ``work_pixels`` (1: none needed)."""
    if work_pixels is None or pixels <= work_pixels:
        return 1
    return int(np.ceil(np.sqrt(pixels / work_pixels)))


def decode_rgb(source: bytes | str | Path, where: str | None = None, max_pixels: int | None = None,
               reserve: Reserve | None = None, work_pixels: int | None = None) -> tuple[np.ndarray, float]:
    """A photo (file or bytes) as upright RGB uint8 (H, W, 3), and its scale (original width /
    returned width): the one decoder of photos for the CLI, the app and the service (see open_image)."""
    image, scale = open_image(source, where, max_pixels, reserve=reserve, work_pixels=work_pixels)
    with image:
        return to_rgb_array(image), scale

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


def decode_face(data: bytes, where: str, resize: bool, max_pixels: int | None = None,
                reserve: Reserve | None = None) -> np.ndarray:
    """Decode image bytes to a uint8 (48, 48) gray face.

    Args:
        data: the encoded image file.
        where: the file's name, for error messages.
        resize: bring any size to 48x48 (a non-square image is centred in a square of its longer
            side, edges repeated, as face crops are); if False, other sizes are an error.
        max_pixels: refuse images over this many pixels (MAX_PIXELS when None) with ImageTooLargeError.
        reserve: called with the pixels about to be decoded (see open_image).
    """
    try:
        image, _ = open_image(data, where, max_pixels=max_pixels, reserve=reserve)
    except (ImageTooLargeError, ImageFormatError):
        raise
    except ImageError as exc:
        raise DataError(f"{where}: not a readable image ({exc})") from exc
    with image:
        gray = to_gray_array(image)
    if gray.shape != (FACE_SIZE, FACE_SIZE):
        if not resize:
            raise DataError(f"{where}: expected a 48x48 face, got {gray.shape[1]}x{gray.shape[0]}")
        from ferkit.detection import Face, crop_face

        gray = crop_face(gray, Face((0, 0, gray.shape[1], gray.shape[0]), 1.0), scale=1.0, size=FACE_SIZE)
    return gray


def read_face(path: Path, resize: bool) -> np.ndarray:
    """Read an image file as a uint8 (48, 48) gray face (see decode_face)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    return decode_face(data, str(path), resize)
