"""Controlled corruptions of 48x48 gray faces, to measure how accuracy holds up.

Band positions follow FER-2013's crop (roughly mid-forehead to chin): the eyes sit at about
30-50% of the height, the mouth at about 68-88%.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ferkit.data.degrade import (
    EVAL_BLUR_SIGMA,
    EVAL_JPEG_QUALITY,
    EVAL_LOW_RES,
    EVAL_NOISE_STD,
    low_resolution,
)

Corruption = Callable[[np.ndarray], np.ndarray]
EYES_BAND = (0.30, 0.50)
MOUTH_BAND = (0.68, 0.88)


def _as_tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(faces, dtype=np.float32)).unsqueeze(1)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()


def occlude_band(band: tuple[float, float], value: int = 0) -> Corruption:
    """Fill the rows between two fractions of the height with a constant."""

    def apply(faces: np.ndarray) -> np.ndarray:
        out = faces.copy()
        h = faces.shape[1]
        out[:, int(round(band[0] * h)) : int(round(band[1] * h)), :] = value
        return out

    return apply


def brightness(factor: float) -> Corruption:
    """Multiply intensities by ``factor`` (0.6 = -40%, 1.4 = +40%)."""
    return lambda faces: np.clip(faces.astype(np.float32) * factor, 0, 255).round().astype(np.uint8)


def gaussian_blur(sigma: float) -> Corruption:
    """Separable Gaussian blur with edge padding."""
    radius = int(np.ceil(3 * sigma))
    kernel = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()

    def apply(faces: np.ndarray) -> np.ndarray:
        x = F.pad(_as_tensor(faces), (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, kernel.view(1, 1, 1, -1))
        x = F.conv2d(x, kernel.view(1, 1, -1, 1))
        return _to_uint8(x)

    return apply


def gaussian_noise(std: float, seed: int = 0) -> Corruption:
    """Add zero-mean Gaussian noise of ``std`` gray levels (seeded, so results repeat)."""

    def apply(faces: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng(seed).normal(0, std, faces.shape)
        return np.clip(faces + noise, 0, 255).round().astype(np.uint8)

    return apply


def rotate(degrees: float) -> Corruption:
    """Rotate about the centre, edges replicated."""
    angle = np.deg2rad(degrees)

    def apply(faces: np.ndarray) -> np.ndarray:
        x = _as_tensor(faces)
        theta = torch.tensor([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0]], dtype=torch.float32)
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        return _to_uint8(F.grid_sample(x, grid, padding_mode="border", align_corners=False))

    return apply


def recrop(scale: float) -> Corruption:
    """Zoom about the centre: scale < 1 keeps the central part (a tighter crop), scale > 1 adds a
    replicated border (a looser crop); the result is resized back with area interpolation."""

    def apply(faces: np.ndarray) -> np.ndarray:
        x = _as_tensor(faces)
        size = x.shape[-1]
        if scale < 1:
            keep = int(round(size * scale))
            start = (size - keep) // 2
            x = x[..., start : start + keep, start : start + keep]
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        else:
            border = int(round(size * (scale - 1) / 2))
            x = F.pad(x, (border, border, border, border), mode="replicate")
            x = F.interpolate(x, size=(size, size), mode="area")
        return _to_uint8(x)

    return apply


def jpeg(quality: int) -> Corruption:
    """Encode and decode each face with the real JPEG codec (Pillow's libjpeg) at ``quality``."""

    def one(face: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            return np.asarray(decoded.convert("L"))

    return lambda faces: np.stack([one(face) for face in np.asarray(faces, dtype=np.uint8)])


def downsample(side: int) -> Corruption:
    """Shrink to ``side`` x ``side`` pixels (area averaging) and enlarge back (bilinear): a face
    that was ``side`` pixels wide in the frame."""

    def apply(faces: np.ndarray) -> np.ndarray:
        x = _as_tensor(faces) / 255
        return _to_uint8(low_resolution(x, torch.full((len(x),), side)) * 255)

    return apply


def pillow_downsample(side: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> Corruption:
    """Shrink to ``side`` x ``side`` and enlarge back with one of Pillow's filters both ways (as
    image scalers and video pipelines do): a wider, softer kernel than area averaging."""

    def one(face: np.ndarray) -> np.ndarray:
        image = Image.fromarray(face)
        return np.asarray(image.resize((side, side), resample).resize(image.size, resample))

    return lambda faces: np.stack([one(face) for face in np.asarray(faces, dtype=np.uint8)])


# The camera degradations real users' faces suffer, at the strengths the model targets are set for
# (the same as degrade.camera_corruptions, which val_robust_acc uses).
CAMERA_CORRUPTIONS = ("noise_std8", "blur_sigma1", "jpeg_q30", "lowres_24px", "lowres_24px_bilinear")


def corruptions() -> dict[str, Corruption]:
    """The robustness suite reported by `ferkit evaluate --robustness`: the camera degradations
    (CAMERA_CORRUPTIONS) first, then occlusion, light, stronger blur and noise, rotation and crops."""
    return {
        "noise_std8": gaussian_noise(EVAL_NOISE_STD),
        "blur_sigma1": gaussian_blur(EVAL_BLUR_SIGMA),
        "jpeg_q30": jpeg(EVAL_JPEG_QUALITY),
        "lowres_24px": downsample(EVAL_LOW_RES),
        "lowres_24px_bilinear": pillow_downsample(EVAL_LOW_RES),
        "occlude_eyes": occlude_band(EYES_BAND),
        "occlude_mouth": occlude_band(MOUTH_BAND),
        "brightness_-40%": brightness(0.6),
        "brightness_+40%": brightness(1.4),
        "blur_sigma1.5": gaussian_blur(1.5),
        "noise_std15": gaussian_noise(15.0),
        "rotate_-15": rotate(-15),
        "rotate_+15": rotate(15),
        "crop_tight_80%": recrop(0.8),
        "crop_loose_+10%": recrop(1.2),
    }
