"""`ferkit finetune`: adapt a trained model to a user's own faces in minutes on a laptop CPU.

The recipe: start from the model's weights and preprocessing; train every layer (or the head
only) at a low learning rate with the usual augmentation plus camera degradations, the weights
pulled toward the start (L2-SP), for a few epochs with early stopping on the user's valid split;
keep part of the way from the start to the fine-tuned weights (WiSE-FT); refit the class prior
and temperature on that split (the uniform prior kept); export ONNX fp32 and int8 and check them; write a
before/after report.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ferkit.data.augment import AugmentConfig
from ferkit.data.dataset import FaceData, RawSplit
from ferkit.data.load import load_dataset
from ferkit.errors import CheckpointError, DataError
from ferkit.finetune.dataset import MIN_FACES_PER_EMOTION
from ferkit.finetune.options import FinetuneOptions
from ferkit.inference.bundled import ONNX_FILES, resolve_model
from ferkit.inference.checkpoint import METADATA_FILE, LoadedModel, load_model, update_metadata
from ferkit.training.config import TrainConfig
from ferkit.training.fit import fit
from ferkit.training.soup import write_average

logger = logging.getLogger(__name__)

#: The run's subfolder that keeps the fine-tuned weights when they are blended with the start's.
UNBLENDED_FOLDER = "unblended"
#: Largest difference allowed between the ONNX fp32 model's logits and torch's.
MAX_ONNX_LOGIT_DIFF = 1e-3
#: Faces the int8 ranges are calibrated on (the user's train and valid faces, never test).
INT8_CALIBRATION_FACES = 2000
#: Below this agreement with fp32 on valid, the report advises against the int8 model.
MIN_INT8_AGREEMENT = 0.97


def relabel(data: FaceData, labels: tuple[str, ...]) -> FaceData:
    """The data with label indices into ``labels`` (the starting model's), so the emotions the
    data lack keep their outputs (they are never targets)."""
    unknown = [c for c in data.classes if c not in labels]
    if unknown:
        raise DataError(f"{data.source}: emotions {', '.join(unknown)} are not among the model's {', '.join(labels)}")
    mapping = np.array([labels.index(c) for c in data.classes], dtype=np.int64)
    splits = {}
    for name, raw in data.splits.items():
        if raw.labels is None:
            raise DataError(f"{data.source}: fine-tuning needs hard labels (an image folder from `ferkit dataset build`)")
        splits[name] = RawSplit(raw.names, raw.images, labels=mapping[raw.labels])
    return FaceData(splits=splits, classes=tuple(labels), source=data.source, fingerprint=data.fingerprint, kind=data.kind)


def blend(run: Path, start: LoadedModel, share: float, data: FaceData) -> None:
    """Keep ``share`` of the way from ``start`` to the run's fine-tuned weights (WiSE-FT), which gives
    up far less of the start's general accuracy; the fine-tuned weights stay in ``run/unblended/``.
    The blend is calibrated on the valid split again (fit() calibrated the fine-tuned weights)."""
    tuned = load_model(run)
    unblended = run / UNBLENDED_FOLDER
    unblended.mkdir()
    for file in (tuned.path, tuned.path.with_name(METADATA_FILE)):
        shutil.copy2(file, unblended / file.name)
    write_average([start, tuned], [1 - share, share], run, data, {"blend": {
        "share": share, "start_sha256": start.metadata.get("sha256"), "unblended": UNBLENDED_FOLDER,
        "unblended_sha256": tuned.metadata.get("sha256")}})


def split_counts(data: FaceData) -> dict[str, dict[str, int]]:
    """Faces per split and emotion (emotions with no face in any split left out)."""
    counts = {name: Counter(data.classes[i] for i in raw.labels) for name, raw in data.splits.items()
              if raw.labels is not None}
    present = [c for c in data.classes if any(c in row for row in counts.values())]
    return {name: {c: int(row.get(c, 0)) for c in present} for name, row in counts.items()}


def check_data(data: FaceData) -> list[str]:
    """Raise DataError for data that cannot be fine-tuned on; return warnings (an emotion missing
    from valid or test)."""
    missing = [s for s in ("train", "valid") if s not in data.splits]
    if missing:
        raise DataError(f"{data.source}: no {' or '.join(missing)} split; fine-tuning needs train/ and valid/ "
                        "folders (and test/ for the report): build them with `ferkit dataset build PHOTOS OUT`")
    counts = split_counts(data)
    totals = {e: sum(row.get(e, 0) for row in counts.values()) for e in counts["train"]}
    few = {e: n for e, n in totals.items() if n < MIN_FACES_PER_EMOTION}
    if few:
        raise DataError(f"{data.source}: too few faces of " + ", ".join(f"{e} ({n})" for e, n in few.items())
                        + f"; each emotion needs at least {MIN_FACES_PER_EMOTION}: add faces or remove its folders")
    untrained = [e for e, n in counts["train"].items() if n == 0]
    if untrained:
        raise DataError(f"{data.source}: train has no faces of {', '.join(untrained)} but another split does; "
                        "they cannot be learned: move some to train (or rebuild with `ferkit dataset build`)")
    return [f"the {split} split has no {e} faces" + (": early stopping and calibration cannot see them"
                                                     if split == "valid" else ": the report cannot score them")
            for split, row in counts.items() if split != "train" for e, n in row.items() if n == 0]


def freeze_features(model: nn.Module) -> None:
    """Train the head only: every other parameter frozen, BatchNorm kept in eval mode (its statistics fixed)."""
    # an ensemble's heads are its members' heads
    members = list(getattr(model, "members", [model]))
    heads = [head for member in members if isinstance(head := getattr(member, "head", None), nn.Module)]
    if len(heads) != len(members):
        raise CheckpointError(f"{type(model).__name__} has no 'head' module; fine-tune every layer instead")
    head_parameters = {id(p) for head in heads for p in head.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head_parameters)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_eval_mode)


def _eval_mode(module: nn.Module, inputs: Any) -> None:
    module.training = False


def finetune_config(dataset: Path, run: Path, metadata: dict[str, Any], options: FinetuneOptions) -> TrainConfig:
    """The TrainConfig of the recipe for the starting model described by ``metadata``."""
    return TrainConfig(
        data=str(dataset), model=metadata["model"], model_kwargs=dict(metadata["model_kwargs"]),
        init_weights=str(resolve_model(options.start)), out=str(run.parent), name=run.name, label_mode="majority",
        epochs=options.epochs, batch_size=options.batch_size, lr=options.lr, scheduler="cosine", warmup_epochs=1,
        monitor="val_loss", early_stopping_patience=options.patience,
        augment=AugmentConfig(degrade=options.degrade).to_dict(), l2sp=options.l2sp, seed=options.seed,
        progress=options.progress,
    )


def export_checked(run: Path, calibration_faces: np.ndarray, check_faces: np.ndarray) -> dict[str, Any]:
    """Export the run to model.onnx (fp32) and model.int8.onnx, check fp32 against torch (logits
    within MAX_ONNX_LOGIT_DIFF) and measure how often int8 agrees with fp32 on ``check_faces``."""
    from ferkit.inference.classifier import FaceClassifier
    from ferkit.inference.onnx_backend import OnnxClassifier, export_onnx, quantize_int8

    fp32_path = export_onnx(run, run / ONNX_FILES["fp32"])
    int8_path = quantize_int8(fp32_path, run / ONNX_FILES["int8"], calibration_faces[:INT8_CALIBRATION_FACES])
    torch_logits = FaceClassifier.from_path(run).logits(check_faces)
    fp32_logits = OnnxClassifier(fp32_path).logits(check_faces)
    int8_logits = OnnxClassifier(int8_path).logits(check_faces)
    difference = float(np.abs(fp32_logits - torch_logits).max())
    if difference > MAX_ONNX_LOGIT_DIFF:
        raise CheckpointError(f"{fp32_path}: ONNX logits differ from torch's by {difference:.2e} "
                              f"(over {MAX_ONNX_LOGIT_DIFF}); the export is wrong, use the torch backend")
    agreement = float((int8_logits.argmax(1) == fp32_logits.argmax(1)).mean())
    return {"fp32_vs_torch_max_logit_diff": difference, "int8_agrees_with_fp32": agreement,
            "checked_faces": int(len(check_faces)), "int8_calibration_faces": int(min(len(calibration_faces),
                                                                                       INT8_CALIBRATION_FACES))}


def finetune(dataset: str | Path, out: str | Path, options: FinetuneOptions | None = None) -> Path:
    """Fine-tune ``options.start`` on an image-folder data set and return the run folder.

    The run folder holds weights.safetensors + model.json (loadable by ``ferkit.load(out)``,
    ``--model out``), model.onnx and model.int8.onnx, the training history and report.md with
    its plots (the starting model against the fine-tuned one).

    Args:
        dataset: ``DATASET/<split>/<emotion>/*.png`` with train and valid (and test) splits, as
            ``ferkit dataset build`` writes it.
        out: the run folder to create.
        options: the recipe (FinetuneOptions defaults when None).
    """
    from ferkit.evaluation.before_after import write_before_after

    options = options or FinetuneOptions()
    dataset, out = Path(dataset).expanduser(), Path(out).expanduser()
    if options.ferplus is not None and not Path(options.ferplus).expanduser().exists():
        raise DataError(f"--ferplus {options.ferplus}: no such file or folder; give the FER+ folder or "
                        "ferplus.tar.gz, or leave it out")
    start = load_model(resolve_model(options.start))
    data = relabel(load_dataset(dataset, progress=options.progress), start.labels)
    notes = check_data(data)
    for note in notes:
        logger.warning("warning: %s", note)
    counts = split_counts(data)
    trained = [e for e in start.labels if counts["train"].get(e, 0) > 0]
    config = finetune_config(dataset, out, start.metadata, options)
    run = fit(config, data=data, prepare=freeze_features if options.head_only else None)
    if options.blend < 1:
        blend(run, start, options.blend, data)
    update_metadata(run, {"finetune": {
        "start": options.start, "start_sha256": start.metadata.get("sha256"), "options": asdict(options),
        "emotions_trained": trained, "emotions_never_seen": [e for e in start.labels if e not in trained],
        "faces": counts, "prior": "the 'train' prior is this data set's (fitted on its valid split); "
                                  "'uniform' removes it"}})
    train, valid = data.split("train").images, data.split("valid").images
    calibration = np.concatenate([valid, train[np.random.default_rng(options.seed).permutation(len(train))]])
    onnx_check = export_checked(run, calibration, valid)
    if onnx_check["int8_agrees_with_fp32"] < MIN_INT8_AGREEMENT:
        notes.append(f"int8 gives fp32's answer on only {100 * onnx_check['int8_agrees_with_fp32']:.1f}% of the valid "
                     "faces: keep fp32 (what ferkit.load(RUN) uses)")
    report = write_before_after(run, options.start, data, options.ferplus, notes, onnx_check)
    logger.info("report: %s", report)
    return run
