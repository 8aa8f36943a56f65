"""Colour a Grad-CAM heatmap onto a face crop or back onto the photograph it came from."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Map a [0, 1] heatmap (H, W) to an RGB uint8 image (H, W, 3)."""
    rgba = colormaps[colormap](np.clip(heatmap, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """Blend a heatmap onto a face crop.

    Args:
        face: uint8 gray (H, W) or RGB (H, W, 3) image.
        heatmap: float [0, 1] map of any size; resized to the face.
        alpha: weight of the heatmap colours.

    Returns:
        RGB uint8 (H, W, 3).
    """
    rgb = np.repeat(face[..., None], 3, axis=2) if face.ndim == 2 else face
    h, w = rgb.shape[:2]
    if heatmap.shape != (h, w):
        heatmap = np.asarray(Image.fromarray(heatmap.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    colours = colorize(heatmap, colormap).astype(np.float32)
    return (rgb.astype(np.float32) * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)


def overlay_on_image(
    image: np.ndarray, box: tuple[int, int, int, int], heatmap: np.ndarray, alpha: float = 0.45
) -> np.ndarray:
    """Blend a face's heatmap into an RGB uint8 photograph inside the face box (x, y, w, h)."""
    out = image.copy() if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(out.shape[1], x + w), min(out.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return out
    crop = np.asarray(Image.fromarray(out).crop((x, y, x + w, y + h)))  # pads where the box leaves the image
    blended = overlay(crop, heatmap, alpha)
    out[y0:y1, x0:x1] = blended[y0 - y : y1 - y, x0 - x : x1 - x]
    return out
