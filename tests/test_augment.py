import torch

from ferkit.data.augment import AugmentConfig, BatchAugment

OFF = AugmentConfig(rotation=0, scale=0, shift=0, hflip=0, brightness=0, contrast=0, erase=0)


def _batch() -> torch.Tensor:
    return torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(3))


def test_shape_range_and_determinism():
    x = _batch()
    a, b = BatchAugment(seed=7)(x), BatchAugment(seed=7)(x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, BatchAugment(seed=8)(x))
    assert not torch.equal(a, x)


def test_everything_off_is_the_identity():
    x = _batch()
    torch.testing.assert_close(BatchAugment(OFF)(x), x, rtol=0, atol=0)


def test_flip_with_probability_one_mirrors_exactly():
    x = _batch()
    cfg = AugmentConfig(**{**OFF.to_dict(), "hflip": 1.0})
    torch.testing.assert_close(BatchAugment(cfg)(x), x.flip(-1), rtol=0, atol=0)


def test_erasing_changes_a_rectangle_within_the_area_bounds():
    x = torch.zeros(32, 1, 48, 48)
    cfg = AugmentConfig(**{**OFF.to_dict(), "erase": 1.0, "erase_area": (0.05, 0.1)})
    out = BatchAugment(cfg, seed=1)(x)
    changed = (out != 0).flatten(1).sum(dim=1).float() / (48 * 48)
    assert (changed <= 0.1 + 0.02).all()  # fill values of exactly 0 are possible, so no lower bound
    assert (changed > 0).float().mean() > 0.9


def test_small_shift_moves_content():
    x = torch.zeros(1, 1, 48, 48)
    x[..., 20:28, 20:28] = 1
    cfg = AugmentConfig(**{**OFF.to_dict(), "shift": 0.2})
    out = BatchAugment(cfg, seed=0)(x)
    assert abs(out.sum().item() - 64) < 8  # the square is moved, not lost
    assert not torch.equal(out, x)
