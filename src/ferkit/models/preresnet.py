"""A pre-activation ResNet (He et al., "Identity Mappings in Deep Residual Networks", 2016) for
48x48 faces: the larger of ferkit's own architectures, within the seed's 6M-parameter budget."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models.base import FerModel
from ferkit.models.registry import register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice; the shortcut is the identity, or a strided 1x1 convolution of the
    activated input where the width or the size changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=False)
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if stride != 1 or in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.act(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(activated)
        return skip + self.conv2(self.act(self.bn2(self.conv1(activated))))


@register_model("preresnet")
class PreResNet(FerModel):
    """Stem at 48x48, then one stage per width: the first keeps 48x48, each next one halves the size
    (48, 24, 12, 6 pixels with four widths); final BN-ReLU, global average pooling, dropout, linear.

    The default, widths (48, 96, 192, 320) and depths (1, 2, 2, 2), has 4.9 M parameters.
    """

    gradcam_layer = "features.3"  # the 12x12 stage

    def __init__(
        self,
        num_classes: int = 8,
        widths: Sequence[int] = (48, 96, 192, 320),
        depths: Sequence[int] = (1, 2, 2, 2),
        dropout: float = 0.3,
    ) -> None:
        super().__init__(num_classes)
        if len(widths) != len(depths) or not widths:
            raise ConfigError("widths and depths need one entry per stage")
        stages: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1, bias=False)]
        in_channels = widths[0]
        for k, (width, depth) in enumerate(zip(widths, depths)):
            blocks = [PreActBlock(in_channels if i == 0 else width, width, stride=2 if (k and i == 0) else 1)
                      for i in range(depth)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        stages.append(nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU()))
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes)
        )
