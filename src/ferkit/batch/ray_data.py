"""Batch prediction on Ray Data: the local engine's steps (decode, detect, crop, classify) in
``map_batches`` on a pool of actors, each holding one recognizer with ONNX Runtime inside.

    ferkit predict photos/ --recursive --engine ray --output results.parquet     # a local Ray
    ferkit predict /shared/photos --engine ray --address HEAD:6379 --output r.parquet   # a cluster

On a cluster the input paths must be readable on every node (shared storage). Records come back
in input order and are written by the same writers as the local engine, so both engines give the
same output. Needs ``pip install 'ferkit[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.detection import DetectorOptions
from ferkit.errors import FerkitError
from ferkit.inference.recognizer import Recognizer

logger = logging.getLogger(__name__)
BATCH_SIZE = 32


@dataclass(frozen=True)
class Recipe:
    """How to rebuild a recognizer in another process: the weights file, backend and settings."""

    weights: str
    backend: str
    prior: str
    tta: bool
    detector: str
    options: DetectorOptions
    min_confidence: float | None

    @classmethod
    def of(cls, recognizer: Recognizer) -> Recipe:
        classifier = recognizer.classifier
        onnx_path = getattr(classifier, "path", None)
        weights = onnx_path if onnx_path is not None else getattr(classifier, "weights_path", None)
        if weights is None:
            raise FerkitError("this recognizer's weights have no file to load in other processes")
        return cls(str(Path(weights).resolve()), "onnx" if onnx_path is not None else "torch", classifier.prior,
                   classifier.tta, recognizer.detector.name, recognizer.detector.options, recognizer.min_confidence)

    def build(self) -> Recognizer:
        from ferkit.inference.recognizer import load

        return load(self.weights, backend=self.backend, prior=self.prior, tta=self.tta, detector=self.detector,
                    detector_options=self.options, min_confidence=self.min_confidence)


class _Predictor:
    """A Ray Data actor: one recognizer, used for every batch of paths it is given."""

    def __init__(self, recipe: Recipe) -> None:
        from ferkit.batch.workers import DetectSpec, single_threaded

        single_threaded()  # one CPU per actor: the actors are the parallelism
        self.recognizer = recipe.build()
        self.spec = DetectSpec.of(self.recognizer)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ferkit.batch.workers import finish, prepare

        prepared = [prepare(str(path), self.spec, str(error) or None) for path, error in zip(batch["path"], batch["error"])]
        records = finish(self.recognizer, prepared)
        return {"path": batch["path"], "error": np.array([r.get("error", "") for r in records], dtype=object),
                "faces": np.array([json.dumps(r["faces"]) for r in records], dtype=object)}


def _init(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), logging_level=logging.WARNING,
                 log_to_driver=False)


def predict_dataset(inputs: Sequence[str | tuple[str, str | None]], recognizer: Recognizer | None = None,
                    address: str | None = None, concurrency: int | None = None) -> Any:
    """A Ray Dataset of predictions, one row per input in input order: ``path``, ``error`` (empty
    when read) and ``faces`` (the JSON list of FaceResult.to_dict()). Lazy: nothing runs until the
    dataset is consumed (``iter_rows``, ``write_parquet``, ...).

    Args:
        inputs: image paths (readable on every node), or (path, error) pairs as from expand_inputs.
        recognizer: whose model and settings every actor rebuilds (default ``ferkit.load()``).
        address: the Ray cluster; default $RAY_ADDRESS, else a local Ray on this machine.
        concurrency: actors (one CPU each); default every CPU of the cluster.
    """
    import ray

    from ferkit.inference.recognizer import load

    _init(address)
    recipe = Recipe.of(recognizer or load())
    items = [(item, None) if isinstance(item, str) else item for item in inputs]
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order
    dataset = ray.data.from_items([{"path": path, "error": error or ""} for path, error in items])
    actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    return dataset.map_batches(_Predictor, fn_constructor_args=(recipe,), batch_size=BATCH_SIZE,
                               concurrency=actors, num_cpus=1, batch_format="numpy")


def ray_records(recognizer: Recognizer, inputs: Sequence[tuple[str, str | None]], address: str | None = None,
                concurrency: int | None = None) -> Iterator[dict[str, Any]]:
    """The records of ``inputs`` computed on Ray, in input order (what the local engine yields)."""
    if not inputs:
        return
    for row in predict_dataset(inputs, recognizer, address, concurrency).iter_rows():
        record: dict[str, Any] = {"path": row["path"], "faces": json.loads(row["faces"])}
        if row["error"]:
            record["error"] = row["error"]
        yield record


def _video_task(recipe: Recipe, source: str, csv_path: str, every: int) -> dict[str, Any]:
    from ferkit.batch.workers import single_threaded
    from ferkit.video.process import run_video

    single_threaded()
    summary = run_video(recipe.build(), source, out_csv=csv_path, every=every, progress=False)
    return {"video": source, "csv": csv_path, "frames": summary.frames, "faces": summary.faces,
            "tracks": len(summary.tracks), "unreadable": summary.unreadable}


def process_videos(videos: Sequence[str], out_dir: str | Path, recognizer: Recognizer | None = None,
                   every: int = 1, address: str | None = None) -> list[dict[str, Any]]:
    """One Ray task per video, each writing its per-frame CSV timeline (tracking and smoothing as
    ``ferkit video``) into ``out_dir`` as STEM.csv; returns a summary per video, in order. A video
    that cannot be read gives a summary with its ``error``."""
    import ray

    from ferkit.inference.outputs import unique_stems
    from ferkit.inference.recognizer import load

    _init(address)
    recipe = Recipe.of(recognizer or load())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stems = unique_stems(list(videos))
    task = ray.remote(num_cpus=1)(_video_task)
    pending = [task.remote(recipe, video, str(out / f"{stems[video]}.csv"), every) for video in videos]
    results = []
    for video, ref in zip(videos, pending):
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, FerkitError) else None
            if cause is None:
                raise
            results.append({"video": video, "error": str(cause)})
    return results
