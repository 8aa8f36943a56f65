"""`ferkit ensemble`: join trained models into one ensemble model (models/ensemble.py), write its
weights folder and calibrate it on the validation split like any trained run."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ferkit.data.datamodule import FerDataModule
from ferkit.data.dataset import FaceData
from ferkit.errors import ConfigError
from ferkit.inference.bundled import ModelSource, resolve_model
from ferkit.inference.checkpoint import LoadedModel, load_model, save_weights
from ferkit.models import count_parameters, create_model
from ferkit.models.ensemble import ENSEMBLE, Ensemble, member_spec, normalized_weights
from ferkit.training.calibrate import MAX_ACCURACY_DROP, calibrate_weights

logger = logging.getLogger(__name__)
#: What model.json keeps of each member's own description (its run, training and scores).
MEMBER_KEYS = ("model", "model_kwargs", "sha256", "run", "label_mode", "training", "hardware", "train_seconds",
               "epoch", "monitor", "metrics", "init_weights", "teacher")


#: ``SOURCE:2,3`` picks an ensemble's second and third networks (numbered from 1, as "via" records them).
_PICK = re.compile(r"^(?P<source>.+):(?P<picks>[1-9][0-9]*(?:,[1-9][0-9]*)*)$")


def _split_pick(member: ModelSource) -> tuple[ModelSource, list[int] | None]:
    """``member`` and the networks it picks (1-based), None for all; a path that exists is taken as
    it is, so a folder whose name happens to end in ``:1`` still loads."""
    match = _PICK.match(str(member))
    if match is None or Path(str(member)).exists():
        return member, None
    return match["source"], [int(i) for i in match["picks"].split(",")]


def _member_record(source: ModelSource, loaded: LoadedModel) -> dict[str, Any]:
    record = {key: loaded.metadata[key] for key in MEMBER_KEYS if key in loaded.metadata}
    record.setdefault("run", Path(str(source)).name)
    record["source"] = str(source)
    return record


def _networks(source: ModelSource, model: LoadedModel, mirror: bool,
              picks: list[int] | None = None) -> list[tuple[dict[str, Any], nn.Module, dict[str, Any]]]:
    """Each network of ``model`` (spec, module, record): the model itself, or an ensemble's members
    (those numbered in ``picks``, all when None), so that a bundled ensemble such as ``accurate`` can
    be extended with new networks or have one replaced; in the new ensemble the networks weigh as
    its own weights say, not as they did in ``model``."""
    if model.metadata["model"] != ENSEMBLE:
        if picks is not None:
            raise ConfigError(f"{source} is one network, not an ensemble; it has no members to pick")
        return [(member_spec(model.metadata["model"], model.metadata["model_kwargs"]), model.model,
                 _member_record(source, model))]
    assert isinstance(model.model, Ensemble)
    if model.model.mirror != mirror:  # allowed: the new ensemble is calibrated and measured as it runs
        logger.warning("%s averages %s mirror images; its networks join an ensemble %s them", source,
                       "with" if model.model.mirror else "without", "with" if mirror else "without")
    if model.metadata["model_kwargs"].get("weights") is not None:
        logger.warning("%s weighs its networks unequally; in the new ensemble they weigh as its weights say", source)
    records = model.metadata.get("members") or [{} for _ in model.model.members]
    networks = [(dict(spec), module, {**record, "via": f"{source} (member {i + 1})"})
                for i, (spec, module, record) in enumerate(zip(model.metadata["model_kwargs"]["members"],
                                                                 model.model.members, records, strict=True))]
    if picks is None:
        return networks
    if max(picks) > len(networks):
        raise ConfigError(f"{source} has {len(networks)} networks; cannot pick network {max(picks)}")
    return [networks[i - 1] for i in picks]


def build_ensemble(members: Sequence[ModelSource], out: str | Path, data: FaceData, mirror: bool = True,
                   max_accuracy_drop: float = MAX_ACCURACY_DROP, weights: Sequence[float] | None = None) -> Path:
    """Write an ensemble of ``members`` (bundled names, run folders or .safetensors files) into the
    weights folder ``out``, calibrated on ``data``'s validation split; returns ``out``. A member that
    is itself an ensemble contributes its networks, each as one member; ``accurate:1,3`` contributes
    only its first and third. ``weights`` gives each network (after that expansion) its weight in
    the average; None weighs them alike.

    The members must share labels and preprocessing; the ensemble's training prior (for the
    logit adjustment) is that of ``data``'s train split under the first member's label mode, and
    ``max_accuracy_drop`` bounds the validation accuracy the adjustment may cost.
    """
    if not members:
        raise ConfigError("an ensemble needs at least two members")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder for the ensemble")
    picked = [_split_pick(member) for member in members]
    sources = [source for source, _ in picked]  # without the picks
    loaded = [load_model(resolve_model(source)) for source in sources]
    first = loaded[0]
    for source, model in zip(sources[1:], loaded[1:]):
        if model.labels != first.labels:
            raise ConfigError(f"{source}: labels {list(model.labels)} differ from {sources[0]}'s {list(first.labels)}")
        if model.preprocessing != first.preprocessing:
            raise ConfigError(f"{source}: its preprocessing differs from {sources[0]}'s; members must see the same faces")
    for source, model in zip(sources, loaded):
        trained_on = model.metadata.get("data", {}).get("fingerprint")
        if trained_on not in (None, data.fingerprint):
            logger.warning("%s was trained on other data than %s; the calibration uses %s", source, data.source, data.source)
    networks = [network for (source, picks), model in zip(picked, loaded)
                for network in _networks(source, model, mirror, picks)]
    if len(networks) < 2:
        raise ConfigError(f"an ensemble needs at least two members; {', '.join(map(str, sources))} "
                          f"{'gives' if len(sources) == 1 else 'give'} {len(networks)}")
    hashes = [record.get("sha256") for _, _, record in networks]
    repeated = sorted({h for h in hashes if h and hashes.count(h) > 1})
    if repeated:  # allowed (it weighs that network more), but rarely meant
        logger.warning("the same network joins the ensemble %s times: sha256 %s",
                       max(hashes.count(h) for h in repeated), ", ".join(h[:12] for h in repeated))
    specs = [spec for spec, _, _ in networks]
    normalized_weights(weights, len(networks))  # refused before any work is written
    weighting = {} if weights is None else {"weights": [float(w) for w in weights]}
    ensemble = create_model(ENSEMBLE, num_classes=len(first.labels), members=specs, mirror=mirror, **weighting)
    assert isinstance(ensemble, Ensemble)
    for target, (_, network, _) in zip(ensemble.members, networks):
        target.load_state_dict(network.state_dict(), strict=True)
    label_mode = first.metadata.get("label_mode", "majority")
    module = FerDataModule(data, label_mode)
    records = [record for _, _, record in networks]
    seconds = [r.get("train_seconds") for r in records]
    metadata: dict[str, Any] = {
        "model": ENSEMBLE, "model_kwargs": {"members": specs, "mirror": mirror, **weighting}, "labels": list(first.labels),
        "preprocessing": first.preprocessing.to_dict(), "temperature": 1.0, "label_mode": label_mode,
        "data": {"source": data.source, "kind": data.kind, "fingerprint": data.fingerprint,
                 "train_faces": len(module.train), "valid_faces": len(module.valid)},
        "members": records, "parameters_total": count_parameters(ensemble).total,
        **({"train_seconds": round(sum(s for s in seconds if s), 1)} if all(seconds) else {}),
    }
    save_weights(ensemble, out, metadata)
    calibrate_weights(out, module.valid, module.class_prior(), max_accuracy_drop)
    load_model(out)  # what was written loads
    return out
