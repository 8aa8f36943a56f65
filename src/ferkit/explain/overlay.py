"""Colour a Grad-CAM heatmap onto a face crop or back onto the photograph it came from."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

from ferkit.detection import Face
from ferkit.detection.crop import crop_matrix


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


def overlay_on_image(image: np.ndarray, face: Face, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a face's heatmap into an RGB uint8 photograph where its crop came from.

    The heatmap (the crop's size) is mapped back through the crop's own transform (crop_matrix:
    the eye-levelling rotation and the scale), so on a tilted face it lies on the face, tilted too;
    only the part inside the face's box is coloured.
    """
    import cv2

    out = image.copy() if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    size = heatmap.shape[0]
    to_crop = crop_matrix(face, size=size)
    corners = cv2.transform(np.array([[[0, 0], [size, 0], [0, size], [size, size]]], np.float64),
                            cv2.invertAffineTransform(to_crop))[0]
    bx, by, bw, bh = face.box  # the colours stay inside the face's box
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), (max(0, bx), max(0, by)))
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int), (min(out.shape[1], bx + bw), min(out.shape[0], by + bh)))
    if x1 <= x0 or y1 <= y0:
        return out
    to_crop[:, 2] += to_crop[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixels -> crop pixels
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    shape = (int(x1 - x0), int(y1 - y0))
    heat = cv2.warpAffine(heatmap.astype(np.float32), to_crop, shape, flags=flags, borderValue=0.0)
    inside = cv2.warpAffine(np.ones_like(heatmap, np.float32), to_crop, shape, flags=flags, borderValue=0.0)
    weight = (alpha * inside)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (region * (1 - weight) + colorize(heat).astype(np.float32) * weight).round().clip(0, 255)
    return out
