"""Batch augmentation on tensors, so it runs at the same speed on CPU and GPU.

Written by hand because torchvision cannot be installed beside ferkit's torch, and the few
transforms FER needs are a handful of tensor operations; every random draw comes from one
torch.Generator, so a seed reproduces a run exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ferkit.data.degrade import degrade, uniform


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of each transform; 0 disables it.

    Attributes:
        rotation: maximum rotation in degrees (uniform in +-rotation).
        scale: maximum relative zoom (uniform in 1 +- scale).
        shift: maximum shift as a fraction of the image side.
        hflip: probability of a horizontal flip.
        brightness: maximum brightness change, as a fraction of the full range.
        contrast: maximum relative contrast change.
        erase: probability of erasing one random rectangle.
        erase_area: (min, max) fraction of the image an erased rectangle covers.
        degrade: probability that a face is degraded as a camera far away, in the dark or behind
            a video codec would; a degraded face gets each enabled degradation below with
            probability 1/2 (at least one), in the order light, blur, resolution, noise, JPEG.
        gamma: largest |ln gamma| of a gamma change (0.7: gamma in [0.5, 2], 2 is a dim room).
        blur: largest Gaussian blur sigma in pixels (uniform in [0.3, blur]).
        low_res: smallest side a face is shrunk to before it is enlarged back (uniform in
            [low_res, 40] pixels; 14 is a face 14 pixels wide in the frame).
        noise: largest standard deviation of Gaussian sensor noise, in gray levels (0-255).
        shot_noise: largest gain of signal-dependent noise: variance = gain x level, in gray levels.
        jpeg: lowest JPEG quality (uniform in [jpeg, 95]); 0 disables it. Applied on the tensor
            batch with the JPEG codec's own 8x8 DCT and quantisation tables (gray has no chroma,
            and the codec's entropy coding is lossless), so it costs no decode and stays on the device.
    """

    rotation: float = 10.0
    scale: float = 0.1
    shift: float = 0.1
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.15)
    degrade: float = 0.0
    gamma: float = 0.7
    blur: float = 1.6
    low_res: int = 14
    noise: float = 20.0
    shot_noise: float = 1.0
    jpeg: int = 20

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class BatchAugment:
    """Augment a float batch (N, C, H, W) with values in [0, 1]; returns a new tensor."""

    def __init__(self, config: AugmentConfig | None = None, seed: int = 0) -> None:
        self.config = config or AugmentConfig()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        cfg, gen, n = self.config, self.generator, images.shape[0]
        out = images
        if cfg.rotation or cfg.scale or cfg.shift:
            angle = uniform(n, -cfg.rotation, cfg.rotation, gen) * math.pi / 180
            zoom = uniform(n, 1 - cfg.scale, 1 + cfg.scale, gen)
            shift = uniform(2 * n, -cfg.shift, cfg.shift, gen).view(n, 2) * 2  # grid units span 2
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
            grid = F.affine_grid(theta.to(out), list(out.shape), align_corners=False)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if cfg.hflip:
            flip = (torch.rand(n, generator=gen) < cfg.hflip).to(out.device)
            out = torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)
        if cfg.brightness or cfg.contrast:
            gain = uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen).to(out).view(n, 1, 1, 1)
            bias = uniform(n, -cfg.brightness, cfg.brightness, gen).to(out).view(n, 1, 1, 1)
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = ((out - mean) * gain + mean + bias).clamp(0, 1)
        if cfg.degrade:
            out = degrade(out, cfg, gen)
        if cfg.erase:
            out = self._erase(out)
        return out

    def _erase(self, images: torch.Tensor) -> torch.Tensor:
        cfg, gen = self.config, self.generator
        n, _, h, w = images.shape
        apply = torch.rand(n, generator=gen) < cfg.erase
        area = uniform(n, *cfg.erase_area, gen) * h * w
        aspect = torch.exp(uniform(n, math.log(0.3), math.log(3.3), gen))
        eh = (area * aspect).sqrt().clamp(1, h).floor()
        ew = (area / aspect).sqrt().clamp(1, w).floor()
        top = (torch.rand(n, generator=gen) * (h - eh + 1)).floor()
        left = (torch.rand(n, generator=gen) * (w - ew + 1)).floor()
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        inside = (
            (rows >= top.view(n, 1, 1))
            & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1))
            & (cols < (left + ew).view(n, 1, 1))
            & apply.view(n, 1, 1)
        )
        fill = torch.rand(n, generator=gen).view(n, 1, 1, 1).to(images)
        return torch.where(inside.unsqueeze(1).to(images.device), fill, images)
