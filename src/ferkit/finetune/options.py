"""The fine-tuning recipe's options (no torch here: the command line reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from ferkit.errors import ConfigError


@dataclass(frozen=True)
class FinetuneOptions:
    """The fine-tuning recipe; the defaults work without tuning on a few hundred to a few thousand faces.

    Attributes:
        start: the model to start from: "fast", "accurate", a run folder or .safetensors.
        epochs: most epochs (early stopping on the user's valid loss usually stops sooner).
        lr: Adam's learning rate, a tenth of training from scratch (cosine schedule, 1 warm-up epoch).
        batch_size: faces per step.
        patience: epochs without a lower valid loss before stopping.
        degrade: share of training faces given camera degradations (light, blur, resolution,
            noise, JPEG).
        l2sp: strength of the pull of the conv and dense weights toward the starting model's
            (L2-SP, in place of weight decay), which keeps what the model knew of other faces.
        blend: share of the fine-tuning's change the run keeps: its weights are start + blend x
            (fine-tuned - start), BatchNorm statistics included (WiSE-FT), then recalibrated;
            1 keeps the fine-tuned weights. Most of the gain stays, much of the loss elsewhere goes;
            the fine-tuned weights are kept in the run's ``unblended/`` folder.
        head_only: train the last layer only (for very small data sets; BatchNorm statistics kept).
        seed: the run's seed.
        ferplus: FER+ data (folder or .tar.gz) for the report's general-accuracy check, or None.
        progress: show progress bars.
    """

    start: str = "fast"
    epochs: int = 10
    lr: float = 3e-4
    batch_size: int = 64
    patience: int = 3
    degrade: float = 0.5
    l2sp: float = 0.3
    blend: float = 0.8
    head_only: bool = False
    seed: int = 0
    ferplus: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.blend <= 1:  # also refuses NaN
            raise ConfigError(f"--blend {self.blend}: give the share of the fine-tuning's change to keep, in (0, 1]")
