"""Callbacks that write a run folder: per-epoch history and the best weights as safetensors."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ferkit.inference.checkpoint import save_weights

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc", "val_robust_acc", "lr",
    "epoch_seconds",
)
METRIC_COLUMNS = HISTORY_COLUMNS[1:7]  # what the validation loop logs (val_robust_acc when monitored)


def _metric(trainer: L.Trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else round(float(value), 6)


class HistoryWriter(Callback):
    """Append one row per epoch to history.json and history.csv (rewritten each epoch, so a
    stopped run keeps its history and a resumed one continues it)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.rows: list[dict[str, Any]] = []
        self._start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        existing = self.run_dir / "history.json"
        if existing.is_file():
            first_epoch = trainer.current_epoch  # restored from the checkpoint on resume
            self.rows = [r for r in json.loads(existing.read_text()) if r["epoch"] < first_epoch]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch}
        for name in METRIC_COLUMNS:
            row[name] = _metric(trainer, name)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["epoch_seconds"] = round(time.perf_counter() - self._start, 2)
        self.rows.append(row)
        logger.info("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v}" for k, v in row.items() if k != "epoch"))
        (self.run_dir / "history.json").write_text(json.dumps(self.rows, indent=1) + "\n")
        with (self.run_dir / "history.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)


class BestWeightsSaver(Callback):
    """Save weights.safetensors + model.json whenever the monitored metric improves; with the
    monitor "last", after every epoch (the run keeps its final weights)."""

    def __init__(self, run_dir: Path, monitor: str, metadata: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.monitor = monitor
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.metadata = metadata
        self.best: float | None = None
        self.best_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None or self.monitor == "last":
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = float(trainer.current_epoch) if self.monitor == "last" else _metric(trainer, self.monitor)
        if trainer.sanity_checking or value is None or not self._improved(value):
            return
        self.best, self.best_epoch = value, trainer.current_epoch
        if not trainer.is_global_zero:
            return
        metrics = {name: _metric(trainer, name) for name in METRIC_COLUMNS}
        model = pl_module.model
        assert isinstance(model, torch.nn.Module)
        save_weights(
            model,
            self.run_dir,
            {**self.metadata, "epoch": trainer.current_epoch, "monitor": self.monitor, "metrics": metrics},
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_epoch = state_dict.get("best_epoch")
