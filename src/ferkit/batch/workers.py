"""Batch prediction over many image files: decode and detect in parallel, classify the faces of
many images in one batch, yield one record per input in input order.

The same two steps serve the local engine (a process pool) and the Ray engine (actors), so both
give the same records: ``prepare`` (decode, detect, crop; no classifier needed) and
``finish`` (classify a group of prepared images, make their records).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ferkit.detection import DetectorOptions, Face, FaceDetector, create_detector
from ferkit.errors import FerkitError
from ferkit.inference.recognizer import Recognizer

#: Images whose faces are classified together (one classifier batch per group).
GROUP_IMAGES = 32
#: Inputs handed to the worker processes at a time.
WINDOW = 512


@dataclass
class Prepared:
    """One input after decoding and detection: its faces and 48x48 gray crops (none when it could
    not be read, with its error)."""

    path: str
    faces: list[Face]
    crops: np.ndarray
    scale: float = 1.0
    error: str | None = None


@dataclass(frozen=True)
class DetectSpec:
    """What a worker needs to detect and crop like the recognizer does (it needs no classifier)."""

    detector: str
    options: DetectorOptions
    size: int

    @classmethod
    def of(cls, recognizer: Recognizer) -> DetectSpec:
        return cls(recognizer.detector.name, recognizer.detector.options, recognizer.classifier.preprocessing.size)


_WORKER: dict[DetectSpec, FaceDetector] = {}


def prepare(path: str, spec: DetectSpec, error: str | None = None) -> Prepared:
    """Decode, detect and crop one file (in any process); unreadable files give an error, never raise."""
    from ferkit.detection import crop_faces
    from ferkit.inference.images import load_image_scaled

    if error is None:
        try:
            rgb, scale = load_image_scaled(path)
        except FerkitError as exc:
            error = str(exc)
    if error is not None:
        return Prepared(path, [], np.zeros((0, spec.size, spec.size), np.uint8), error=error)
    detector = _WORKER.get(spec)
    if detector is None:
        detector = _WORKER[spec] = create_detector(spec.detector, spec.options)
    faces = detector.detect(rgb)
    return Prepared(path, faces, crop_faces(rgb, faces, spec.size), scale)


def finish(recognizer: Recognizer, group: list[Prepared]) -> list[dict[str, Any]]:
    """Classify every face of a group of prepared inputs in one batch; one record per input:
    ``{"path", "faces": [FaceResult.to_dict()...]}`` plus ``"error"`` when it could not be read."""
    results = recognizer.results_many([(item.faces, item.crops, item.scale) for item in group])
    records = []
    for item, faces in zip(group, results):
        record: dict[str, Any] = {"path": item.path, "faces": [r.to_dict() for r in faces]}
        if item.error is not None:
            record["error"] = item.error
        records.append(record)
    return records


def predict_records(recognizer: Recognizer, inputs: Iterable[tuple[str, str | None]], workers: int = 1) -> Iterator[dict[str, Any]]:
    """One record per (path, error) input, in input order. ``workers`` > 1 decodes and detects in
    that many processes (spawned: no state shared with this one) while this process classifies."""
    spec = DetectSpec.of(recognizer)
    if workers <= 1:
        yield from _grouped(recognizer, (prepare(path, spec, error) for path, error in inputs))
        return
    remaining = iter(inputs)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=single_threaded) as pool:
        def prepared() -> Iterator[Prepared]:
            # A window at a time: a million inputs never become a million futures.
            while window := list(islice(remaining, WINDOW)):
                yield from pool.map(prepare, [p for p, _ in window], [spec] * len(window), [e for _, e in window],
                                    chunksize=4)

        yield from _grouped(recognizer, prepared())


def single_threaded() -> None:
    """Each worker process detects with one thread: the processes are the parallelism. (The face
    detector's OpenMP threads, two per process on two cores, would spin against each other: with
    them, two workers ran 2.5x slower than one process.)"""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"  # read when the detector's OpenMP runtime starts, after this
    import cv2

    cv2.setNumThreads(1)


def _grouped(recognizer: Recognizer, prepared: Iterable[Prepared]) -> Iterator[dict[str, Any]]:
    group: list[Prepared] = []
    for item in prepared:
        group.append(item)
        if len(group) >= GROUP_IMAGES:
            yield from finish(recognizer, group)
            group = []
    if group:
        yield from finish(recognizer, group)
