import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ferkit.data import degrade as D
from ferkit.data.augment import AugmentConfig, BatchAugment
from ferkit.evaluation.robustness import gaussian_blur

OFF = AugmentConfig(rotation=0, scale=0, shift=0, hflip=0, brightness=0, contrast=0, erase=0)


def _faces(n: int = 8, seed: int = 0) -> torch.Tensor:
    """Smooth face-like images (not white noise, which JPEG and blur would destroy entirely)."""
    small = torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(small, size=(48, 48), mode="bicubic", align_corners=False).clamp(0, 1)


def _pil_jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


@pytest.mark.parametrize("quality", [20, 30, 75])
def test_jpeg_matches_the_real_codec(quality):
    faces = (_faces(4) * 255).round().to(torch.uint8)
    ours = D.jpeg(faces.float().div(255), torch.full((4,), quality)).mul(255).round().squeeze(1).numpy()
    for face, mine in zip(faces.squeeze(1).numpy(), ours):
        real = _pil_jpeg(face, quality).astype(np.float32)
        assert np.abs(mine - real).mean() < 0.6  # libjpeg's integer DCT rounds differently by a level at most
        assert np.abs(mine - face).mean() > 3 * np.abs(mine - real).mean()  # and it did compress


def test_jpeg_tables_follow_libjpeg_scaling():
    tables = D.jpeg_tables(torch.tensor([50, 100, 10]))
    assert tables[0, 0, 0] == 16 and tables[1].max() == 1 and tables[2, 0, 0] == 80


def test_blur_per_face_matches_the_evaluation_blur():
    faces = _faces(2)
    out = D.blur(faces, torch.tensor([1.0, 0.5]))
    for i, sigma in enumerate((1.0, 0.5)):
        expected = gaussian_blur(sigma)((faces[i : i + 1, 0] * 255).numpy())
        assert np.abs(out[i, 0].numpy() * 255 - expected).max() <= 0.51  # the evaluation rounds to levels


def test_low_resolution_loses_detail_and_keeps_constant_images():
    faces = _faces(3)
    out = D.low_resolution(faces, torch.tensor([24, 48, 14]))
    expected = F.interpolate(F.interpolate(faces[:1], size=(24, 24), mode="area"), size=(48, 48), mode="bilinear")
    torch.testing.assert_close(out[:1], expected)
    torch.testing.assert_close(out[1], faces[1])  # 48 px: nothing to lose
    flat = torch.full((1, 1, 48, 48), 0.4)
    torch.testing.assert_close(D.low_resolution(flat, torch.tensor([14])), flat)


def test_noise_has_the_asked_spread():
    gray = torch.full((2, 1, 48, 48), 100 / 255)
    gen = torch.Generator().manual_seed(0)
    out = D.noise(gray, torch.tensor([8.0, 0.0]), torch.tensor([0.0, 2.0]), gen) * 255
    assert out[0].std().item() == pytest.approx(8.0, rel=0.06)
    assert out[1].std().item() == pytest.approx((2.0 * 100) ** 0.5, rel=0.06)  # variance = gain x level
    assert out.mean().item() == pytest.approx(100, abs=0.5)


def test_gamma_darkens_mid_tones():
    x = torch.full((1, 1, 4, 4), 0.5)
    torch.testing.assert_close(D.gamma(x, torch.tensor([2.0])), torch.full_like(x, 0.25))


def test_degrade_share_determinism_and_record():
    faces = _faces(400, seed=1)
    cfg = AugmentConfig(**{**OFF.to_dict(), "degrade": 0.5})
    a, b = BatchAugment(cfg, seed=3)(faces), BatchAugment(cfg, seed=3)(faces)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    changed = ((a - faces).abs().flatten(1).amax(dim=1) > 1e-6).float().mean().item()
    assert 0.42 < changed < 0.58
    assert a.min() >= 0 and a.max() <= 1
    assert {"degrade", "gamma", "blur", "low_res", "noise", "shot_noise", "jpeg"} <= set(cfg.to_dict())


def test_degrade_off_and_single_degradations():
    faces = _faces(16)
    torch.testing.assert_close(BatchAugment(OFF)(faces), faces, rtol=0, atol=0)
    only_jpeg = {**OFF.to_dict(), "degrade": 1.0, "gamma": 0, "blur": 0, "low_res": 0, "noise": 0, "shot_noise": 0,
                 "jpeg": 30}
    out = BatchAugment(AugmentConfig(**only_jpeg), seed=0)(faces)
    levels = out * 255
    torch.testing.assert_close(levels, levels.round())  # every face went through the codec (8-bit output)
    assert ((out - faces).abs().flatten(1).amax(dim=1) > 0).all()


def test_camera_corruptions_match_the_evaluation_suite():
    from ferkit.evaluation.robustness import CAMERA_CORRUPTIONS, corruptions

    faces = (_faces(6, seed=4) * 255).round().to(torch.uint8)
    views = D.camera_corruptions(faces.float().div(255), seed=0)
    suite = corruptions()
    assert len(views) == len(CAMERA_CORRUPTIONS)
    for view, name in zip(views, CAMERA_CORRUPTIONS):
        ours = view.mul(255).round().squeeze(1).numpy()
        expected = suite[name](faces.squeeze(1).numpy()).astype(np.float32)
        if name == "noise_std8":  # another random draw: compare the spread, not the pixels
            assert (ours - faces.squeeze(1).numpy()).std() == pytest.approx(8, rel=0.1)
        else:
            assert np.abs(ours - expected).mean() < 0.6, name


@pytest.mark.parametrize("down, up, pil, side", [("bilinear", "bilinear", Image.BILINEAR, 20),
                                                 ("bicubic", "bicubic", Image.BICUBIC, 20),
                                                 ("nearest-exact", "nearest-exact", Image.NEAREST, 24)])
def test_low_resolution_filters_are_pillows(down, up, pil, side):
    faces = (_faces(4, seed=2) * 255).round() / 255
    n = len(faces)
    out = D.low_resolution(faces, torch.full((n,), side), torch.full((n,), D.SHRINK_FILTERS.index(down)),
                           torch.full((n,), D.ENLARGE_FILTERS.index(up)))
    for face, mine in zip((faces * 255).round().to(torch.uint8).squeeze(1).numpy(), out.squeeze(1).numpy()):
        expected = np.asarray(Image.fromarray(face).resize((side, side), pil).resize((48, 48), pil), dtype=np.float32)
        assert np.abs(mine * 255 - expected).mean() < 1.0, down


def test_degradations_draw_every_shrink_and_enlarge_filter():
    """Only low resolution enabled: each degraded face equals one of the 4 x 3 filter pairs at
    some side, and every pair is drawn."""
    faces = _faces(600, seed=6)
    cfg = AugmentConfig(**{**OFF.to_dict(), "degrade": 1.0, "gamma": 0, "blur": 0, "noise": 0, "shot_noise": 0,
                           "jpeg": 0, "low_res": 20})
    out = BatchAugment(cfg, seed=1)(faces)
    seen = set()
    for i in range(0, 600, 3):
        for side in range(20, 41):
            candidates = [(d, u) for d in range(4) for u in range(3)
                          if torch.allclose(D.low_resolution(faces[i:i + 1], torch.tensor([side]), torch.tensor([d]),
                                                             torch.tensor([u])), out[i:i + 1], atol=1e-6)]
            if candidates:
                seen.update(candidates if len(candidates) == 1 else [])
                break
        else:
            raise AssertionError(f"face {i} was not made small by any filter pair")
    assert len(seen) == 12
