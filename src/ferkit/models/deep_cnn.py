"""The seed's Phase-2 "deep CNN": three conv blocks (64, 128, 256), Dense(512), 5,873,096 parameters."""

from __future__ import annotations

from torch import nn

from ferkit.models.base import FerModel, conv_relu_bn
from ferkit.models.registry import register_model


def conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Conv-ReLU-BN twice, MaxPool 2x2, Dropout: one block of the seed's networks."""
    return nn.Sequential(
        *conv_relu_bn(in_channels, out_channels),
        *conv_relu_bn(out_channels, out_channels),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    )


@register_model("deep_cnn")
class DeepCNN(FerModel):
    """Blocks of 64, 128 and 256 filters, Flatten (6x6x256), Dense(512)-ReLU-BN-Dropout(0.5), Dense(C).

    Counting BatchNorm running statistics as Keras does, it has 5,873,096 parameters for 8 classes
    (5,870,280 trainable + 2,816 non-trainable). L2 regularisation is the optimiser's weight decay.
    """

    gradcam_layer = "features.2.5"  # last BatchNorm of the 256 block, at 12x12 (before pooling)

    def __init__(self, num_classes: int = 8, dropout: float = 0.25, head_dropout: float = 0.5) -> None:
        super().__init__(num_classes)
        self.features = nn.Sequential(
            conv_block(1, 64, dropout),
            conv_block(64, 128, dropout),
            conv_block(128, 256, dropout),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(6 * 6 * 256, 512),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(512, eps=1e-3, momentum=0.01),
            nn.Dropout(head_dropout),
            nn.Linear(512, num_classes),
        )
