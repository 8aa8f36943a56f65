"""fit(): one training run from a TrainConfig to a run folder."""

from __future__ import annotations

import logging
import os
import pickle
import platform
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from ferkit.data.datamodule import FerDataModule
from ferkit.data.dataset import FaceData
from ferkit.data.load import load_dataset
from ferkit.errors import CheckpointError, ConfigError
from ferkit.inference.bundled import resolve_model
from ferkit.inference.checkpoint import load_model, update_metadata
from ferkit.inference.metadata import METADATA_FILE
from ferkit.models import create_model, layer_table
from ferkit.preprocessing import Preprocessing
from ferkit.training.calibrate import calibrate_weights
from ferkit.training.callbacks import BestWeightsSaver, HistoryWriter
from ferkit.training.config import TrainConfig
from ferkit.training.module import FerClassifier

logger = logging.getLogger(__name__)
LAST_CHECKPOINT = "checkpoints/last.ckpt"


def _precision(config: TrainConfig) -> str:
    """"auto": fp16 mixed precision on a GPU; bf16 autocast on a CPU with bf16 instructions (AVX512-BF16
    or AMX: about 3x faster than fp32), else fp32 (bf16 is emulated on AVX2 and about 12x slower)."""
    if config.precision != "auto":
        return config.precision
    if torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda"):
        return "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from the kernel's CPU
    flags (torch only offers private functions for it); False where /proc/cpuinfo is missing."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def _devices(value: str) -> Any:
    return int(value) if value.isdigit() else value


def hardware(device: torch.device, devices: int = 1) -> str:
    """What a run trains on, in words: the GPU's name, or the CPU and its core count."""
    if device.type == "cuda":
        return f"{devices} x {torch.cuda.get_device_name(device)}"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def run_dir_for(config: TrainConfig) -> Path:
    """The run folder: OUT/NAME, NAME defaulting to <model>-<timestamp>."""
    name = config.name or f"{config.model}-{datetime.now():%Y%m%d-%H%M%S}"
    return Path(config.out) / name


def _initialise(model: torch.nn.Module, config: TrainConfig, classes: tuple[str, ...]) -> dict[str, str]:
    """Copy the weights named by ``config.init_weights`` into ``model`` (fine-tuning); returns
    their path and sha256 for the run's record. The architecture and labels must match."""
    loaded = load_model(resolve_model(config.init_weights))
    meta = loaded.metadata
    if meta["model"] != config.model or dict(meta["model_kwargs"]) != dict(config.model_kwargs):
        raise ConfigError(f"init_weights {config.init_weights} hold model '{meta['model']}' {meta['model_kwargs']}; "
                          f"this run builds '{config.model}' {config.model_kwargs}: pass the same --model and --model-kwargs")
    if loaded.labels != tuple(classes):
        raise ConfigError(f"init_weights {config.init_weights} predict {loaded.labels}, the data have {classes}")
    model.load_state_dict(loaded.model.state_dict())
    return {"path": str(loaded.path), "sha256": str(meta["sha256"])}


def _teacher(config: TrainConfig, classes: tuple[str, ...], preprocessing: Preprocessing) -> tuple[torch.nn.Module, dict[str, str]]:
    """The frozen teacher of a distillation run (``config.teacher``) and its record."""
    loaded = load_model(resolve_model(config.teacher))
    if loaded.labels != tuple(classes):
        raise ConfigError(f"teacher {config.teacher} predicts {loaded.labels}, the data have {classes}")
    if loaded.preprocessing.to_dict() != preprocessing.to_dict():
        raise ConfigError(f"teacher {config.teacher} normalises its input as {loaded.preprocessing.to_dict()}, "
                          f"the student as {preprocessing.to_dict()}")
    record = {"path": str(loaded.path), "sha256": str(loaded.metadata["sha256"]), "model": loaded.metadata["model"],
              "weight": str(config.distill_weight), "temperature": str(config.distill_temperature)}
    return loaded.model, record


def _run_folder(config: TrainConfig, resume: bool) -> Path:
    """The run folder, created; refuses to overwrite a finished run or to resume a missing one."""
    if not config.data:
        raise ConfigError("no data set given: set 'data' to a FER+ folder or .tar.gz, fer2013.csv or an image folder")
    run_dir = run_dir_for(config)
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise ConfigError(f"cannot resume: {last} does not exist (name the run with --name)")
    if not resume and (run_dir / METADATA_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; choose another --name or pass --resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _trainer(config: TrainConfig, run_dir: Path, metadata: dict[str, Any]) -> L.Trainer:
    # history.csv / history.json are the per-epoch CSV log; TensorBoard is optional.
    loggers: list[Logger] = []
    if config.tensorboard:
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    mode = "min" if config.monitor.endswith("loss") else "max"
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        precision=_precision(config),  # type: ignore[arg-type]
        gradient_clip_val=config.gradient_clip or None,
        limit_train_batches=config.limit_train_batches,
        limit_val_batches=config.limit_val_batches,
        logger=loggers or False,
        callbacks=[
            HistoryWriter(run_dir),
            BestWeightsSaver(run_dir, config.monitor, metadata),
            *([] if config.monitor == "last" else
              [EarlyStopping(config.monitor, patience=config.early_stopping_patience, mode=mode)]),
            ModelCheckpoint(run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                            enable_version_counter=False),
        ],
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        deterministic=False,
    )


def _fit(trainer: L.Trainer, module: FerClassifier, datamodule: FerDataModule, last: Path | None) -> None:
    with warnings.catch_warnings():
        # Augmentation lives in the LightningModule's on_after_batch_transfer on purpose (it runs on the device).
        warnings.filterwarnings("ignore", message=".*on_after_batch_transfer.*")
        # Lightning's checkpoint is a pickle: weights_only=True lets torch.load rebuild tensors and
        # plain containers only, never arbitrary objects. Resume only from checkpoints you made.
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=None if last is None else str(last), weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{last}: holds objects other than tensors and plain values; not loaded "
                                  f"(resume only from checkpoints ferkit wrote): {exc}") from exc


def fit(config: TrainConfig, resume: bool = False, data: FaceData | None = None,
        prepare: Callable[[torch.nn.Module], None] | None = None) -> Path:
    """Train one model and return its run folder.

    The folder holds weights.safetensors + model.json (best epoch), history.json/.csv,
    model_summary.txt, config.yaml and checkpoints/last.ckpt for resuming.

    Args:
        config: the run's configuration (``config.data`` is required).
        resume: continue from the run folder's last checkpoint (``config.name`` must name it).
        data: the data already read from ``config.data`` (e.g. relabelled onto the starting
            model's labels by fine-tuning); read from ``config.data`` when None.
        prepare: called with the model once its initial weights are in (e.g. to freeze layers).
    """
    run_dir = _run_folder(config, resume)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if data is None:
        data = load_dataset(config.data, config.votes_csv, progress=config.progress)
    datamodule = FerDataModule(
        data, config.label_mode, config.batch_size, balanced_sampling=config.class_balance == "sampler",
        seed=config.seed, num_workers=config.num_workers,
    )
    model = create_model(config.model, num_classes=datamodule.num_classes, **config.model_kwargs)
    init = _initialise(model, config, data.classes) if config.init_weights else None
    if prepare is not None:
        prepare(model)
    preprocessing = Preprocessing()
    teacher, teacher_record = _teacher(config, data.classes, preprocessing) if config.teacher else (None, None)
    module = FerClassifier(model, config, datamodule.class_prior().tolist(), preprocessing, teacher)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run_dir / "model_summary.txt").write_text(layer_table(model))
    metadata = {
        "model": config.model, "model_kwargs": dict(config.model_kwargs), "labels": list(data.classes),
        "preprocessing": preprocessing.to_dict(), "temperature": 1.0, "label_mode": config.label_mode,
        "data": {"source": data.source, "kind": data.kind, "fingerprint": data.fingerprint,
                 "train_faces": len(datamodule.train), "valid_faces": len(datamodule.valid)},
        "training": config.to_dict(),
        **({"init_weights": init} if init else {}),
        **({"teacher": teacher_record} if teacher_record else {}),
    }
    trainer = _trainer(config, run_dir, metadata)
    started = time.perf_counter()
    _fit(trainer, module, datamodule, run_dir / LAST_CHECKPOINT if resume else None)
    if trainer.is_global_zero:
        seconds = time.perf_counter() - started
        # The run folder holds the best epoch's weights (BestWeightsSaver); calibration reads them.
        metadata = update_metadata(run_dir, {"hardware": hardware(trainer.strategy.root_device, trainer.num_devices),
                                             "train_seconds": round(seconds, 1), "epochs_run": trainer.current_epoch})
        calibration = calibrate_weights(run_dir, datamodule.valid, datamodule.class_prior())
        logger.info("trained %s in %.0f s; best %s at epoch %s; temperature %.3f", config.model,
                    seconds, config.monitor, metadata.get("epoch"), calibration["temperature"])
    return run_dir
