"""Parameter counts, MACs per face and a Keras-style layer table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ParamCount:
    """Parameters counted the Keras way: BatchNorm running mean/var are non-trainable parameters."""

    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


def count_parameters(model: nn.Module) -> ParamCount:
    """Count trainable parameters and non-trainable ones (frozen parameters, BN running statistics)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    running = sum(
        buf.numel() for name, buf in model.named_buffers() if name.endswith(("running_mean", "running_var"))
    )
    return ParamCount(trainable, frozen + running)


def macs_per_face(model: nn.Module) -> int:
    """Multiply-accumulates for one 48x48 face, from torch's FLOP counter (FLOPs / 2)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 1, 48, 48))
    model.train(was_training)
    return counter.get_total_flops() // 2


def layer_table(model: nn.Module) -> str:
    """Return a table of every leaf layer with its output shape and parameter count, then totals."""
    rows: list[tuple[str, str, str, int]] = []
    hooks = []

    def record(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            params += sum(
                b.numel() for n, b in module.named_buffers(recurse=False) if n in ("running_mean", "running_var")
            )
            shape = "(None, " + ", ".join(str(d) for d in output.shape[1:]) + ")"
            rows.append((name, type(module).__name__, shape, params))

        return hook

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 48, 48))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    counts = count_parameters(model)
    width = max(len(f"{name} ({kind})") for name, kind, _, _ in rows) + 2
    lines = [f"Model: {type(model).__name__}", "=" * (width + 36)]
    lines.append(f"{'Layer (type)':<{width}}{'Output Shape':<24}{'Param #':>12}")
    lines.append("=" * (width + 36))
    for name, kind, shape, params in rows:
        lines.append(f"{name + ' (' + kind + ')':<{width}}{shape:<24}{params:>12,}")
    lines.append("=" * (width + 36))
    lines.append(f"Total params: {counts.total:,}")
    lines.append(f"Trainable params: {counts.trainable:,}")
    lines.append(f"Non-trainable params: {counts.non_trainable:,}")
    lines.append(f"MACs per face: {macs_per_face(model):,}")
    return "\n".join(lines) + "\n"
