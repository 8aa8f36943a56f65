"""Training configuration: dataclass defaults < YAML file < command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferkit.data.augment import AugmentConfig
from ferkit.data.protocols import LABEL_MODES
from ferkit.errors import ConfigError

SCHEDULERS = ("plateau", "cosine", "onecycle")
OPTIMIZERS = ("adam", "sgd")
CLASS_BALANCE = ("none", "sampler", "weights", "logit_adjust")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults follow the seed's strategy.

    The seed: Adam, ReduceLROnPlateau on validation loss (factor 0.2), EarlyStopping on
    validation loss restoring the best weights, best-checkpoint saving, augmentation.
    """

    data: str = ""
    votes_csv: str | None = None
    model: str = "fernet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    teacher: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    l2sp: float = 0.0
    out: str = "runs"
    name: str | None = None
    label_mode: str = "majority"
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "plateau"
    plateau_factor: float = 0.2
    plateau_patience: int = 3
    min_lr: float = 1e-6
    warmup_epochs: int = 1
    monitor: str = "val_loss"
    early_stopping_patience: int = 10
    label_smoothing: float = 0.0
    mixup: float = 0.0
    class_balance: str = "none"
    logit_adjust_tau: float = 1.0
    augment: dict[str, Any] = field(default_factory=lambda: AugmentConfig().to_dict())
    seed: int = 42
    precision: str = "auto"
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    gradient_clip: float = 5.0
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    num_workers: int = 0
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        choices = {
            "label_mode": LABEL_MODES,
            "scheduler": SCHEDULERS,
            "optimizer": OPTIMIZERS,
            "class_balance": CLASS_BALANCE,
            "precision": PRECISIONS,
            "monitor": ("val_loss", "val_acc", "val_balanced_acc", "val_robust_acc", "last"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} '{getattr(self, key)}' is not one of: {', '.join(allowed)}")
        for key in ("limit_train_batches", "limit_val_batches"):
            # Lightning reads a float as a fraction of the batches and an int as a batch count.
            value = getattr(self, key)
            if isinstance(value, float) and value > 1 and value.is_integer():
                setattr(self, key, int(value))
            elif getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be a fraction in (0, 1] or a number of batches")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if not 0 <= self.distill_weight <= 1 or self.distill_temperature <= 0:
            raise ConfigError("distill_weight must be in [0, 1] and distill_temperature above 0")
        if self.l2sp < 0:
            raise ConfigError("l2sp must be at least 0")
        if self.l2sp > 0 and not self.init_weights:
            raise ConfigError("l2sp pulls the weights toward their starting values: give --init-weights")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError("label_smoothing must be in [0, 1)")
        if self.mixup < 0:
            raise ConfigError("mixup (the Beta distribution's alpha) must be at least 0; 0 is off")
        try:
            AugmentConfig(**self.augment)
        except TypeError as exc:
            raise ConfigError(f"augment: {exc}; known keys: {', '.join(AugmentConfig().to_dict())}") from exc

    @property
    def augment_config(self) -> AugmentConfig:
        values = dict(self.augment)
        if "erase_area" in values:
            values["erase_area"] = tuple(values["erase_area"])
        return AugmentConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_fields() -> dict[str, dataclasses.Field[Any]]:
    """The TrainConfig fields by name."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def build_config(yaml_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Merge TrainConfig defaults, an optional YAML file and overrides (None values are ignored)."""
    values: dict[str, Any] = {}
    if yaml_file is not None:
        path = Path(yaml_file)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(values) - set(config_fields()))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(config_fields())}")
    if isinstance(values.get("augment"), dict):
        values["augment"] = {**AugmentConfig().to_dict(), **values["augment"]}
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
