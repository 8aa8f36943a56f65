"""Weight averaging (training/soup.py): the fine-tuning blend and model soups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.data import load_dataset
from ferkit.errors import ConfigError
from ferkit.inference.bundled import resolve_model
from ferkit.inference.checkpoint import load_model, save_weights
from ferkit.models import create_model
from ferkit.training.soup import weight_average, write_average


def _shifted_fast(folder: Path, seed: int) -> Path:
    """The bundled fast model with every float tensor raised by a positive random amount (variances
    stay positive) and every BatchNorm batch counter by 7."""
    loaded = load_model(resolve_model("fast"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in loaded.model.state_dict().values():
            tensor.add_(torch.rand(tensor.shape, generator=generator) if tensor.is_floating_point() else 7)
    save_weights(loaded.model, folder, {**loaded.metadata, "temperature": 5.0})
    return folder


def test_an_average_puts_every_tensor_at_its_shares_and_is_calibrated_again(tmp_path: Path, ferplus_dir: Path):
    start, tuned = load_model(resolve_model("fast")), load_model(_shifted_fast(tmp_path / "tuned", 0))
    before, after = start.model.state_dict(), {k: v.clone() for k, v in tuned.model.state_dict().items()}
    out = write_average([start, tuned], [0.75, 0.25], tmp_path / "blend", load_dataset(ferplus_dir), {"blend": 0.25})
    blended = load_model(out)
    for name, tensor in blended.model.state_dict().items():
        expected = 0.75 * before[name] + 0.25 * after[name] if tensor.is_floating_point() else after[name]
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)
    # calibrated on the valid split again (the stored temperature refitted), the record kept,
    # and no measurement of other weights carried over
    assert blended.metadata["calibration"]["faces"] == len(load_dataset(ferplus_dir).split("valid"))
    assert blended.metadata["temperature"] != 5.0 and blended.metadata["blend"] == 0.25
    assert {"metrics", "test_metrics"} <= set(tuned.metadata) and not {"metrics", "test_metrics"} & set(blended.metadata)


def test_three_models_average_with_their_shares(tmp_path: Path):
    states = [load_model(_shifted_fast(tmp_path / str(k), k)).model.state_dict() for k in range(3)]
    average = weight_average(states, [0.5, 0.3, 0.2])
    for name, tensor in average.items():
        expected = 0.5 * states[0][name] + 0.3 * states[1][name] + 0.2 * states[2][name]
        torch.testing.assert_close(tensor, expected if tensor.is_floating_point() else states[2][name], msg=name)
        assert tensor is not states[2][name]  # a new tensor, never the last model's own


def test_models_of_other_architectures_or_missing_shares_are_refused(tmp_path: Path):
    fast = load_model(resolve_model("fast")).model.state_dict()
    other = create_model("fernet", num_classes=8).state_dict()
    with pytest.raises(ConfigError, match="only models of one architecture"):
        weight_average([fast, other], [0.5, 0.5])
    with pytest.raises(ConfigError, match="one share per model"):
        weight_average([fast, fast], [1.0])
    for shares in ([-1.0, 2.0], [0.5, 0.6]):  # a negative share or a sum other than 1 scales the variances
        with pytest.raises(ConfigError, match="shares of 0 or more that sum to 1"):
            weight_average([fast, fast], shares)


def test_batchnorm_statistics_are_recomputed_on_the_augmented_faces():
    from ferkit.data.augment import AugmentConfig
    from ferkit.preprocessing import Preprocessing
    from ferkit.training.soup import recompute_batchnorm

    faces = np.random.default_rng(0).integers(0, 256, (70, 48, 48), dtype=np.uint8)
    faces[:, :24] //= 4  # not one gray level's statistics everywhere
    preprocessing = Preprocessing()
    still = AugmentConfig(rotation=0, scale=0, shift=0, hflip=0, brightness=0, contrast=0, erase=0)
    layer = torch.nn.BatchNorm2d(1)
    with torch.no_grad():
        layer.running_mean.fill_(5.0)  # averaged statistics, to be replaced
        layer.running_var.fill_(9.0)
    model = torch.nn.Sequential(layer).eval()
    recompute_batchnorm(model, faces, preprocessing, still, seed=3, batch_size=32)
    order = torch.randperm(70, generator=torch.Generator().manual_seed(3)).numpy()
    batches = [preprocessing.normalize(preprocessing.to_unit(faces[np.sort(order[s:s + 32])])) for s in (0, 32)]
    # two full batches (the 6 faces left over are not used, as training drops them), averaged alike
    torch.testing.assert_close(layer.running_mean, torch.stack([b.mean() for b in batches]).mean().view(1))
    torch.testing.assert_close(layer.running_var, torch.stack([b.var() for b in batches]).mean().view(1))
    assert not model.training  # the mode it had
    brighter = AugmentConfig(rotation=0, scale=0, shift=0, hflip=0, brightness=0, contrast=0, erase=0, degrade=1.0,
                             gamma=0, blur=0, low_res=0, noise=0, shot_noise=0, jpeg=10)
    before = layer.running_var.clone()
    recompute_batchnorm(model, faces, preprocessing, brighter, seed=3, batch_size=32)
    assert not torch.allclose(layer.running_var, before)  # the augmentation is applied before the statistics
    recompute_batchnorm(model, faces[:20], preprocessing, still, seed=3, batch_size=32)  # fewer faces than a batch
    whole = preprocessing.normalize(preprocessing.to_unit(faces[:20]))
    torch.testing.assert_close(layer.running_mean, whole.mean().view(1))
    torch.testing.assert_close(layer.running_var, whole.var().view(1))


def test_an_average_with_its_statistics_recomputed(tmp_path: Path, ferplus_dir: Path):
    from ferkit.data.augment import AugmentConfig

    start, tuned = load_model(resolve_model("fast")), load_model(_shifted_fast(tmp_path / "tuned", 0))
    states = [start.model.state_dict(), {k: v.clone() for k, v in tuned.model.state_dict().items()}]
    plain = weight_average(states, [0.5, 0.5])
    out = write_average([start, tuned], [0.5, 0.5], tmp_path / "swa", load_dataset(ferplus_dir), {}, AugmentConfig())
    averaged = load_model(out).model.state_dict()
    statistics = [name for name in plain if name.endswith(("running_mean", "running_var"))]
    assert statistics and all(not torch.allclose(averaged[name], plain[name]) for name in statistics)
    for name in plain:  # the weights themselves are the average
        if name not in statistics and plain[name].is_floating_point():
            torch.testing.assert_close(averaged[name], plain[name], rtol=0, atol=1e-6, msg=name)
