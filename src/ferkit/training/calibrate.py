"""Calibration written into weights: the logit adjustment and temperatures fitted on a validation
split (evaluation.calibration's functions) stored in the weights' description. Part of producing
weights, so it lives with training; evaluation only measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferkit.data.protocols import LabelledSplit
from ferkit.evaluation.calibration import (
    balanced_accuracy,
    choose_logit_adjustment,
    fit_temperature,
    nll,
    uniform_prior_calibration,
)
from ferkit.inference.base import UNIFORM_PRIOR_KEY
from ferkit.inference.checkpoint import update_metadata
from ferkit.inference.classifier import FaceClassifier

#: The most validation accuracy the logit adjustment may cost, unless told otherwise.
MAX_ACCURACY_DROP = 0.005


def calibrate_weights(weights: str | Path, valid: LabelledSplit, prior: np.ndarray | None = None,
                      max_accuracy_drop: float = MAX_ACCURACY_DROP) -> dict[str, Any]:
    """Fit post-hoc logit adjustment (when ``prior`` is given) and then the temperature on a
    validation split, and store both in the weights' JSON; with ``prior``, also the uniform
    prior's bias and temperature. Each temperature is fitted twice: for plain logits and for
    mirror-image TTA logits (``temperature_tta``), since TTA logits are less spread.

    Returns the ``calibration`` record written.
    """
    classifier = FaceClassifier.from_path(weights)
    raw = classifier.raw_logits(valid.images)
    classifier.tta = True
    raw_tta = classifier.raw_logits(valid.images)
    labels = valid.labels
    record: dict[str, Any] = {"fitted_on": "valid", "faces": int(len(valid))}
    bias = np.zeros(raw.shape[1])
    if prior is not None:
        tau = choose_logit_adjustment(raw, labels, np.asarray(prior), max_accuracy_drop)
        bias = -tau * np.log(np.clip(np.asarray(prior, dtype=np.float64), 1e-12, 1))
        record.update(
            logit_adjust_tau=tau,
            max_accuracy_drop=max_accuracy_drop,
            accuracy_before=float((raw.argmax(axis=1) == labels).mean()),
            accuracy_after=float(((raw + bias).argmax(axis=1) == labels).mean()),
            balanced_accuracy_before=balanced_accuracy(labels, raw.argmax(axis=1)),
            balanced_accuracy_after=balanced_accuracy(labels, (raw + bias).argmax(axis=1)),
        )
    logits = raw + bias
    temperature = fit_temperature(logits, labels)
    record.update(temperature=temperature, nll_before=nll(logits, labels), nll_after=nll(logits, labels, temperature))
    values: dict[str, Any] = {"temperature": temperature, "temperature_tta": fit_temperature(raw_tta + bias, labels),
                              "logit_bias": [float(b) for b in bias], "calibration": record}
    if prior is not None:
        values[UNIFORM_PRIOR_KEY] = uniform_prior_calibration(raw, labels, np.asarray(prior), raw_tta)
    update_metadata(weights, values)
    return record
