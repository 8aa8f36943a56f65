"""The seed's Phase-1 baseline: the deep CNN without the 256-filter block and the Dense(512) layer."""

from __future__ import annotations

from torch import nn

from ferkit.models.base import FerModel
from ferkit.models.deep_cnn import conv_block
from ferkit.models.registry import register_model


@register_model("baseline_cnn")
class BaselineCNN(FerModel):
    """Blocks of 64 and 128 filters, Flatten (12x12x128), Dense(C)."""

    gradcam_layer = "features.1.5"  # last BatchNorm of the 128 block, at 24x24 (before pooling)

    def __init__(self, num_classes: int = 8, dropout: float = 0.25) -> None:
        super().__init__(num_classes)
        self.features = nn.Sequential(conv_block(1, 64, dropout), conv_block(64, 128, dropout))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 12 * 128, num_classes))
