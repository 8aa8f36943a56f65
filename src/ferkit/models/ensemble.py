"""An ensemble of trained networks as one model: one weights file, one ONNX graph, one forward pass.

Each member's log-probabilities are averaged (the geometric mean of their probabilities), alike or
with the given weights, over the face and its mirror image when ``mirror`` is on. The mirror image
is part of the network rather than a test-time option, so every backend and caller runs exactly
what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models.base import FerModel
from ferkit.models.registry import create_model, register_model

ENSEMBLE = "ensemble"


def member_spec(model: str, model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """How model.json names one member: its registry name and keyword arguments."""
    return {"model": model, "model_kwargs": dict(model_kwargs)}


def normalized_weights(weights: Sequence[float] | None, members: int) -> list[float]:
    """``weights`` scaled to sum to 1 (alike when None); ConfigError unless there is one positive,
    finite weight per member."""
    if weights is None:
        return [1.0 / members] * members
    try:
        values = [float(w) for w in weights] if not isinstance(weights, (str, bytes)) else None
    except (TypeError, ValueError):
        raise ConfigError(f"ensemble weights are numbers, got {weights!r}") from None
    if values is None or len(values) != members:
        raise ConfigError(f"an ensemble of {members} members needs {members} weights, got {weights!r}")
    if not all(math.isfinite(w) and w > 0 for w in values) or not math.isfinite(sum(values)):
        raise ConfigError(f"ensemble weights must be positive and finite (leave a network out rather than weigh it 0), "
                          f"got {values}")
    return [w / sum(values) for w in values]


@register_model(ENSEMBLE, composite=True)
class Ensemble(FerModel):
    """Members (each a ferkit model, not an ensemble) averaged in log-probability space.

    Args:
        num_classes: outputs of every member.
        members: ``[{"model": NAME, "model_kwargs": {...}}, ...]``, at least one.
        mirror: average each face with its mirror image too.
        weights: each member's weight in the average (positive, scaled to sum to 1); None weighs
            them alike. A strong member beside several weaker ones can then count for more than
            its share of the networks.
    """

    member_weights: torch.Tensor  # a buffer: each member's weight, summing to 1

    def __init__(self, num_classes: int = 8, members: Sequence[Mapping[str, Any]] = (), mirror: bool = True,
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(num_classes)
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        built: list[nn.Module] = []
        for spec in members:
            if not isinstance(spec, Mapping) or not isinstance(spec.get("model"), str):
                raise ConfigError(f"an ensemble member is {{'model': NAME, 'model_kwargs': {{...}}}}, got {spec!r}")
            if spec["model"] == ENSEMBLE:
                raise ConfigError("an ensemble member cannot itself be an ensemble")
            member = create_model(spec["model"], num_classes=num_classes, **dict(spec.get("model_kwargs") or {}))
            if not isinstance(member, FerModel):
                raise ConfigError(f"ensemble member '{spec['model']}' is not a ferkit model")
            built.append(member)
        self.members = nn.ModuleList(built)
        self.mirror = bool(mirror)
        # Not persistent: the weights live in model.json's model_kwargs, and the weights file of an
        # ensemble holds its networks only, as it always has.
        self.register_buffer("member_weights", torch.tensor(normalized_weights(weights, len(built))), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mirror:  # the faces and their mirror images in one batch: one call per member
            x = torch.cat([x, x.flip(-1)])
        out = torch.stack([F.log_softmax(member(x).float(), dim=1) for member in self.members])
        # A product and a sum, not a matrix product: autocast would run a matmul in bf16, and int8
        # export would quantize a MatMul's output, the model's logits.
        out = (self.member_weights.reshape(-1, 1, 1) * out).sum(dim=0)
        if self.mirror:
            out = out.view(2, -1, out.shape[-1]).mean(dim=0)
        return out

    def gradcam_model(self) -> nn.Module:
        # Grad-CAM hooks one layer called once per face: the first member's, which sees the face
        # unmirrored; the class explained is still the ensemble's decision (see explain.gradcam).
        return self.members[0]

    def gradcam_module(self) -> nn.Module:
        member = self.members[0]
        assert isinstance(member, FerModel)
        return member.gradcam_module()
