"""Camera degradations on tensor batches: light, blur, low resolution, sensor noise, JPEG.

Faces from webcams in dim rooms, people a few metres away and compressed video look like this;
training on them is what keeps accuracy from collapsing there. Every operation takes a float
batch (N, 1, H, W) in [0, 1] and per-face strengths, so each face gets its own draw, and runs on
whatever device the batch is on. Written by hand: no installable library does per-face
strengths on batched tensors beside ferkit's torch (torchvision cannot be installed with it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ferkit.data.augment import AugmentConfig

# The JPEG standard's luminance quantisation table (ITU T.81, Annex K.1), at quality 50.
JPEG_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
MAX_LOW_RES = 40
MAX_JPEG_QUALITY = 95
MIN_BLUR = 0.3
# How a face is made small and enlarged back: scalers, codecs and video pipelines each use their
# own filter, and a model trained on one only loses much more on the others (Pillow's bilinear
# both ways costs 2 points more than area averaging). Antialiased bilinear and bicubic are
# Pillow's filters; "nearest-exact" is Pillow's and OpenCV's nearest neighbour.
SHRINK_FILTERS = ("area", "bilinear", "bicubic", "nearest-exact")
ENLARGE_FILTERS = ("bilinear", "bicubic", "nearest-exact")
# The camera corruptions of `ferkit evaluate --robustness` and of val_robust_acc, one definition.
EVAL_NOISE_STD = 8.0
EVAL_BLUR_SIGMA = 1.0
EVAL_JPEG_QUALITY = 30
EVAL_LOW_RES = 24


def gamma(x: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """x ** gamma per face (gamma > 1 darkens mid-tones as in a dim room)."""
    return x.clamp(min=0).pow(gammas.view(-1, 1, 1, 1).to(x))


def blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with one sigma (pixels) per face, edges replicated; sigma 0 leaves a face as is."""
    n, c, h, w = x.shape
    sigmas = sigmas.to(x).clamp(min=1e-3)
    radius = max(1, math.ceil(3 * float(sigmas.max())))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernels = torch.exp(-(taps**2) / (2 * sigmas.view(-1, 1) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)  # (N, K)
    # One group per face: a grouped convolution applies each face's own kernel in one call.
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    weights = kernels.repeat_interleave(c, dim=0)
    y = F.conv2d(y, weights.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, weights.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def _resize(x: torch.Tensor, side: int | tuple[int, int], mode: str) -> torch.Tensor:
    size = (side, side) if isinstance(side, int) else side
    if mode in ("area", "nearest-exact"):
        return F.interpolate(x, size=size, mode=mode)
    # torch's antialiased kernels are Pillow's: they widen when shrinking, and its bicubic is
    # Pillow's (a = -0.5; plain bicubic uses -0.75). Enlarging bilinearly takes the plain kernel.
    antialias = size[0] < x.shape[-2] or mode == "bicubic"
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)


def low_resolution(
    x: torch.Tensor, sides: torch.Tensor, shrink: torch.Tensor | None = None, enlarge: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shrink each face to ``sides[i]`` pixels and enlarge it back. ``shrink[i]`` and ``enlarge[i]``
    index SHRINK_FILTERS and ENLARGE_FILTERS; by default area averaging, then bilinear."""
    n = x.shape[0]
    shrink = torch.zeros(n, dtype=torch.long) if shrink is None else shrink.long()
    enlarge = torch.zeros(n, dtype=torch.long) if enlarge is None else enlarge.long()
    out = x.clone()
    size = (x.shape[-2], x.shape[-1])
    groups = torch.stack([sides.long().cpu(), shrink.cpu(), enlarge.cpu()], dim=1)
    for side, down, up in groups.unique(dim=0).tolist():
        if side >= min(size):
            continue
        index = ((groups[:, 0] == side) & (groups[:, 1] == down) & (groups[:, 2] == up)).nonzero().flatten()
        index = index.to(x.device)
        small = _resize(x[index], int(side), SHRINK_FILTERS[down])
        out[index] = _resize(small, size, ENLARGE_FILTERS[up])
    return out.clamp(0, 1) if x.dtype.is_floating_point else out


def noise(x: torch.Tensor, std: torch.Tensor, shot_gain: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gaussian read noise (``std`` gray levels) plus signal-dependent shot noise (variance = gain x level)."""
    levels = x * 255
    variance = std.to(x).view(-1, 1, 1, 1) ** 2 + shot_gain.to(x).view(-1, 1, 1, 1) * levels
    draw = torch.randn(x.shape, generator=gen).to(x)
    return ((levels + draw * variance.sqrt()) / 255).clamp(0, 1)


def _dct_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    basis = torch.cos((2 * k.view(1, 8) + 1) * k.view(8, 1) * math.pi / 16) * math.sqrt(2 / 8)
    basis[0] /= math.sqrt(2)
    return basis.to(device=device, dtype=dtype)


def jpeg_tables(qualities: torch.Tensor) -> torch.Tensor:
    """The codec's quantisation tables (N, 8, 8) for JPEG qualities 1-100 (libjpeg's scaling)."""
    q = qualities.double().clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1)
    base = torch.tensor(JPEG_LUMA_TABLE, dtype=torch.float64)
    return ((base * scale + 50) / 100).floor().clamp(1, 255)


def jpeg(x: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
    """JPEG compression of gray faces at one quality per face: 8x8 DCT, quantise, inverse, 8-bit levels."""
    n, c, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    levels = F.pad(x, (0, pw, 0, ph), mode="replicate") * 255 - 128
    hh, ww = h + ph, w + pw
    blocks = levels.view(n, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)  # (N, C, by, bx, 8, 8)
    dct = _dct_matrix(x.device, x.dtype)
    table = jpeg_tables(qualities).to(x).view(n, 1, 1, 1, 8, 8)
    coefficients = dct @ blocks @ dct.T
    restored = dct.T @ ((coefficients / table).round() * table) @ dct
    out = restored.transpose(3, 4).reshape(n, c, hh, ww)[..., :h, :w]
    return ((out + 128).round().clamp(0, 255) / 255).to(x.dtype)


def uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` draws from U(low, high) taken from ``gen``."""
    return torch.rand(n, generator=gen) * (high - low) + low


def degrade(x: torch.Tensor, cfg: "AugmentConfig", gen: torch.Generator) -> torch.Tensor:
    """Degrade a ``cfg.degrade`` share of the faces; each gets every enabled degradation with
    probability 1/2 (at least one), at a strength drawn per face. Draws come from ``gen``."""
    n = x.shape[0]
    # Every strength is drawn for every face, so a face's draws do not depend on the others.
    gammas = torch.exp(uniform(n, -cfg.gamma, cfg.gamma, gen))
    sigmas = uniform(n, MIN_BLUR, max(cfg.blur, MIN_BLUR), gen)
    sides = torch.randint(max(1, cfg.low_res), MAX_LOW_RES + 1, (n,), generator=gen)
    shrink = torch.randint(len(SHRINK_FILTERS), (n,), generator=gen)
    enlarge = torch.randint(len(ENLARGE_FILTERS), (n,), generator=gen)
    stds = torch.rand(n, generator=gen) * cfg.noise
    gains = torch.rand(n, generator=gen) * cfg.shot_noise
    qualities = torch.randint(max(1, cfg.jpeg), MAX_JPEG_QUALITY + 1, (n,), generator=gen)
    steps = (  # (enabled, operation on the chosen faces), in the order a camera applies them
        (cfg.gamma > 0, lambda y, i: gamma(y, gammas[i])),
        (cfg.blur > 0, lambda y, i: blur(y, sigmas[i])),
        (0 < cfg.low_res < MAX_LOW_RES, lambda y, i: low_resolution(y, sides[i], shrink[i], enlarge[i])),
        (cfg.noise > 0 or cfg.shot_noise > 0, lambda y, i: noise(y, stds[i], gains[i], gen)),
        (0 < cfg.jpeg < MAX_JPEG_QUALITY, lambda y, i: jpeg(y, qualities[i])),
    )
    enabled = torch.tensor([on for on, _ in steps], dtype=torch.float32)
    if not enabled.any():
        return x
    chosen = torch.rand(n, generator=gen) < cfg.degrade
    which = torch.rand(n, len(steps), generator=gen) < 0.5
    forced = torch.multinomial(enabled.expand(n, -1), 1, generator=gen).flatten()
    which[torch.arange(n), forced] = True  # at least one enabled degradation per degraded face
    which &= chosen.view(n, 1) & enabled.bool().view(1, -1)
    out = x
    for k, (_, operation) in enumerate(steps):
        index = which[:, k]
        if index.any():
            out = out.clone()
            on_device = index.to(out.device)
            out[on_device] = operation(out[on_device], index)
    return out.clamp(0, 1)


def camera_corruptions(x: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
    """The camera corruptions of `ferkit evaluate --robustness` (CAMERA_CORRUPTIONS there) at its
    strengths, on a float batch in [0, 1], rounded to 8-bit levels as the evaluation's are: noise,
    blur, JPEG, a face EVAL_LOW_RES px wide by area averaging and by bilinear filtering both ways.
    Seeded, so a validation pass repeats exactly."""
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    side = torch.full((n,), EVAL_LOW_RES)

    def levels(y: torch.Tensor) -> torch.Tensor:
        return (y * 255).round().clamp(0, 255) / 255

    bilinear = torch.full((n,), SHRINK_FILTERS.index("bilinear"))
    return [
        levels(noise(x, torch.full((n,), EVAL_NOISE_STD), torch.zeros(n), gen)),
        levels(blur(x, torch.full((n,), EVAL_BLUR_SIGMA))),
        jpeg(x, torch.full((n,), EVAL_JPEG_QUALITY)),
        levels(low_resolution(x, side)),
        levels(low_resolution(x, side, bilinear, torch.full((n,), ENLARGE_FILTERS.index("bilinear")))),
    ]
