"""Training with Lightning: configuration, LightningModule, callbacks, fit()."""

from ferkit.training.config import TrainConfig, build_config
from ferkit.training.fit import fit

__all__ = ["TrainConfig", "build_config", "fit"]
