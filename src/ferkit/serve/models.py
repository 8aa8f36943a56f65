"""The models a server answers with: loaded once per process, shared by every request."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferkit.detection import DEFAULT_DETECTOR, DetectorOptions, create_detector
from ferkit.inference.base import PRIORS, Classifier
from ferkit.inference.bundled import BUNDLED_MODELS, bundled_models
from ferkit.inference.recognizer import Recognizer, load
from ferkit.serve.batching import MicroBatcher
from ferkit.serve.errors import ApiError
from ferkit.serve.metrics import Metrics
from ferkit.serve.settings import ServeSettings

logger = logging.getLogger(__name__)
#: What the test scores in model.json were measured with: scripts/ship_model.py scores the torch
#: weights; the int8 files' own scores are in reports/MODEL/onnx.json of the source tree.
TEST_METRICS_MEASURED_WITH = "torch, fp32"


@dataclass
class ServedModel:
    """One model with one prior: its recognizer (crops, Grad-CAM) and its micro-batcher."""

    name: str
    prior: str
    recognizer: Recognizer
    batcher: MicroBatcher | None  # None when micro-batching is off

    def classify(self, crops: Any, timeout_s: float) -> Any:
        """Probabilities of gray crops (N, 48, 48), through the shared batch when batching is on."""
        if self.batcher is None or len(crops) == 0:
            return self.recognizer.classify(crops)
        return self.batcher.submit(crops).result(timeout=timeout_s)


class ModelPool:
    """Models by name, each loaded on first use (the default at start-up).

    Clients name models ("fast", "accurate", or the operator's model by its file or folder
    name), never paths: the operator's ``--model PATH`` is the only path the server reads.
    """

    def __init__(self, settings: ServeSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sources: dict[str, str] = {name: name for name in bundled_models()}
        if settings.model in BUNDLED_MODELS:
            self.default = settings.model
        else:
            path = Path(settings.model)
            stem = path.stem if path.suffix in (".onnx", ".safetensors") else path.name
            self.default = stem if stem and stem not in BUNDLED_MODELS else "custom"
        self.sources[self.default] = settings.model
        self._loaded: dict[tuple[str, str], ServedModel] = {}
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return (self.default, self.settings.prior) in self._loaded

    def warm(self) -> None:
        """Load the default model with the default prior (raises what loading raises)."""
        self.get(None, None)

    def get(self, name: str | None, prior: str | None) -> ServedModel:
        """The model ``name`` (default when None) with ``prior`` (default when None)."""
        name = name or self.default
        prior = prior or self.settings.prior
        if name not in self.sources:
            raise ApiError(422, "invalid_parameter",
                           f"unknown model '{name}'; this server has: {', '.join(sorted(self.sources))}")
        if prior not in PRIORS:
            raise ApiError(422, "invalid_parameter", f"unknown prior '{prior}'; choose one of: {', '.join(PRIORS)}")
        key = (name, prior)
        with self._lock:  # one load per model, even when the first requests arrive together
            if key not in self._loaded:
                self._loaded[key] = self._load(name, prior)
            return self._loaded[key]

    def _load(self, name: str, prior: str) -> ServedModel:
        source = self.sources[name]
        options = DetectorOptions(max_faces=self.settings.max_faces, max_side=self.settings.detect_size)
        recognizer = load(source, prior=prior, detector=DEFAULT_DETECTOR, detector_options=options)
        batcher = None
        if self.settings.batch_wait_ms > 0:
            batcher = MicroBatcher(recognizer.classify, self.settings.batch_wait_ms / 1000,
                                   self.settings.max_batch_faces, on_batch=self.metrics.batch_faces.observe)
        logger.info("loaded model %s (prior %s)", name, prior)
        return ServedModel(name, prior, recognizer, batcher)

    def detector(self, min_face: int, max_faces: int) -> Any:
        """A face detector with a request's options (cheap to build: the weights are shared)."""
        return create_detector(DEFAULT_DETECTOR, DetectorOptions(
            min_size=min_face, max_faces=min(max_faces, self.settings.max_faces), max_side=self.settings.detect_size))

    def describe(self) -> list[dict[str, Any]]:
        """Every model this server can answer with: labels, parameters, the backend and precision
        that answer, test metrics (and what they were measured with), priors."""
        out = []
        for name in sorted(self.sources):
            entry: dict[str, Any] = {"name": name, "default": name == self.default, "priors": list(PRIORS),
                                     "default_prior": self.settings.prior}
            classifier = self._classifier(name)
            metadata = classifier.metadata if classifier is not None else {}
            entry["labels"] = metadata.get("labels")
            entry["architecture"] = metadata.get("model")
            entry["parameters"] = _number(metadata.get("parameters"))
            if classifier is not None:
                entry["backend"], entry["precision"] = classifier.backend, classifier.precision
            for key, prior in (("test_metrics", "train"), ("test_metrics_uniform", "uniform")):
                metrics = metadata.get(key)
                if isinstance(metrics, dict):
                    entry.setdefault("test_metrics", {})[prior] = {
                        k: metrics.get(k) for k in ("accuracy", "balanced_accuracy", "images", "protocol")}
            if "test_metrics" in entry:
                entry["test_metrics_measured_with"] = TEST_METRICS_MEASURED_WITH
            out.append(entry)
        return out

    def _classifier(self, name: str) -> Classifier | None:
        """The classifier that answers for ``name`` (None if it cannot load)."""
        # A copy first: another request may be adding a model right now, and iterating the dict
        # itself would then fail. Copying it is one step for the interpreter; taking the lock
        # instead would make the listing wait for that model's whole load.
        for (model, _), served in list(self._loaded.items()):
            if model == name:
                return served.recognizer.classifier
        try:
            return self.get(name, None).recognizer.classifier
        except Exception:  # a model that cannot load is listed without its details
            logger.exception("model %s could not be loaded", name)
            return None

    def close(self) -> None:
        for served in self._loaded.values():
            if served.batcher is not None:
                served.batcher.close()


def _number(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.replace(",", "").isdigit():
        return int(value.replace(",", ""))
    return None
