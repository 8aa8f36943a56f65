"""Weight averaging of models that share one architecture and one start: the fine-tuning blend
(WiSE-FT, Wortsman et al. 2022) and model soups (Wortsman et al. 2022). Networks fine-tuned from
the same weights stay in one basin, so the points between them are models too, often better than
either end; this writes such a point as a weights folder, calibrated like a trained run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.data.augment import AugmentConfig, BatchAugment
from ferkit.data.datamodule import FerDataModule
from ferkit.data.dataset import FaceData
from ferkit.errors import ConfigError
from ferkit.inference.checkpoint import LoadedModel, save_weights
from ferkit.preprocessing import Preprocessing
from ferkit.training.calibrate import calibrate_weights

#: What a description keeps of measurements made on other weights: nothing.
MEASURED_KEYS = ("metrics", "selection", "test_metrics", "test_metrics_tta", "test_metrics_uniform")


def weight_average(states: Sequence[Mapping[str, torch.Tensor]], shares: Sequence[float]) -> dict[str, torch.Tensor]:
    """sum(share x state) of every float tensor, BatchNorm statistics included; the other tensors
    (BatchNorm's batch counters) are the last state's. The states must have the same tensors."""
    if len(states) != len(shares) or not states:
        raise ConfigError(f"weight averaging needs one share per model; got {len(states)} models, {len(shares)} shares")
    if min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
        # other shares would scale the weights and BatchNorm variances, or make them negative
        raise ConfigError(f"weight averaging needs shares of 0 or more that sum to 1; got {list(shares)}")
    first = states[0]
    for state in states[1:]:
        if set(state) != set(first) or any(state[n].shape != first[n].shape or state[n].dtype != first[n].dtype
                                           for n in first):
            raise ConfigError("the models' tensors differ: only models of one architecture can be averaged")
    last = states[-1]
    return {name: sum((share * state[name] for share, state in zip(shares, states)), torch.zeros_like(tensor))
            if tensor.is_floating_point() else tensor.clone() for name, tensor in last.items()}


def recompute_batchnorm(model: nn.Module, faces: np.ndarray, preprocessing: Preprocessing, augment: AugmentConfig,
                        seed: int = 0, batch_size: int = 256) -> None:
    """Replace every BatchNorm layer's running statistics by those of ``faces`` (uint8, (N, H, W)),
    shuffled and put through ``augment`` (a run's augmentation; not its mixup or class-balanced
    sampling), one pass (torch.optim.swa_utils.update_bn). Averaged weights come with averaged
    statistics, which are not the statistics of the averaged network's own activations
    (Izmailov et al. 2018 recompute them the same way)."""
    from torch.optim.swa_utils import update_bn

    if len(faces) == 0:
        raise ConfigError("no faces to recompute the BatchNorm statistics on")
    augmenter = BatchAugment(augment, seed)
    order = torch.randperm(len(faces), generator=torch.Generator().manual_seed(seed)).numpy()
    batch_size = min(batch_size, len(faces))  # as in training, a split smaller than a batch is one batch

    def batches() -> Any:
        for start in range(0, len(order) - batch_size + 1, batch_size):  # full batches only, as in training
            yield preprocessing.normalize(augmenter(preprocessing.to_unit(faces[order[start:start + batch_size]])))

    update_bn(batches(), model)  # runs without gradients and restores the model's mode


def write_average(models: Sequence[LoadedModel], shares: Sequence[float], out: str | Path, data: FaceData,
                  record: dict[str, Any], update_bn: AugmentConfig | None = None) -> Path:
    """Write the weight average of ``models`` into ``out``, calibrated on ``data``'s valid split (both
    priors, the training prior under the last model's label mode) like a trained run; returns ``out``.

    The description is the last model's (its measurements left out) plus ``record``; the last
    model's module receives the averaged weights. With ``update_bn``, the BatchNorm statistics are
    then recomputed on the training split under that augmentation (recompute_batchnorm).
    """
    last = models[-1]
    for model in models[:-1]:
        if model.labels != last.labels or model.metadata["model"] != last.metadata["model"] \
                or model.metadata["model_kwargs"] != last.metadata["model_kwargs"]:
            raise ConfigError(f"{model.path} and {last.path} are not one architecture with one label order")
        if model.preprocessing != last.preprocessing:
            raise ConfigError(f"{model.path}: its preprocessing differs from {last.path}'s; models must see the same faces")
    last.model.load_state_dict(weight_average([m.model.state_dict() for m in models], shares))
    module = FerDataModule(data, last.metadata.get("label_mode", "majority"))
    if update_bn is not None:
        recompute_batchnorm(last.model, module.train.images, last.preprocessing, update_bn)
    description = {key: value for key, value in last.metadata.items() if key not in MEASURED_KEYS}
    save_weights(last.model.eval(), out, {**description, **record})
    calibrate_weights(out, module.valid, module.class_prior())
    return Path(out)
