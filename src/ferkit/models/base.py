"""What every ferkit model shares: (N, 1, 48, 48) float input -> (N, C) logits."""

from __future__ import annotations

import threading

import torch
from torch import nn

from ferkit.errors import ConfigError

#: Held by whatever runs a ferkit model's modules while another thread may be tracing one with
#: torch.fx: tracing swaps torch.nn.Module.__call__ for the whole process, and a forward pass on
#: another thread meanwhile fails ("module is not installed as a submodule"). Also Grad-CAM's lock:
#: captum hooks a model shared between threads for the call's duration.
MODULE_CALL_LOCK = threading.RLock()


class FerModel(nn.Module):
    """Base class: subclasses build ``features`` and ``head`` and name their Grad-CAM layer.

    Attributes:
        num_classes: number of output logits.
        gradcam_layer: dotted name of the module whose activations Grad-CAM uses
            (the last convolutional stage, spatial size > 1).
    """

    gradcam_layer: str = ""
    features: nn.Module
    head: nn.Module

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, 1, 48, 48) normalised gray faces to feature maps."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map feature maps to (N, num_classes) logits."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def gradcam_module(self) -> nn.Module:
        """Return the module named by ``gradcam_layer``."""
        return self.get_submodule(self.gradcam_layer)

    def gradcam_model(self) -> nn.Module:
        """The network whose ``gradcam_module()`` Grad-CAM hooks: the model itself, or the part
        of it (an ensemble's first member) that calls that layer once per face."""
        return self


def conv_relu_bn(in_channels: int, out_channels: int) -> list[nn.Module]:
    """Keras-style Conv2D(3x3, same, relu) followed by BatchNormalization, as in the seed."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01),
    ]
