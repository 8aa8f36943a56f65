"""Print inference speed: classifier ms/face (torch, ONNX Runtime fp32 and int8, batch 1 and 64,
with and without the mirror-image TTA) and full pipeline frames/s on 640x480 frames with 1 and 5
faces, for each detector, with the default settings (`ferkit.load()`) and with --detect-size 320.

    python benchmarks/speed.py [--model fast|accurate|RUN_OR_SAFETENSORS] [--repeats 200]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ferkit
from ferkit.detection import DETECTOR_NAMES, DetectorOptions
from ferkit.inference.bundled import ONNX_FILES, onnx_file, resolve_model
from ferkit.inference.onnx_backend import export_onnx

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def frames() -> dict[str, np.ndarray]:
    """640x480 RGB frames: one close-up face on a plain background, and a group of five."""
    one = np.full((480, 640, 3), 90, np.uint8)
    face = np.asarray(Image.open(DATA / "amy1.png").convert("RGB").resize((260, 260)))
    one[110:370, 190:450] = face
    group = np.full((480, 640, 3), 90, np.uint8)
    group[48:431, 23:617] = np.asarray(Image.open(DATA / "bbt3.jpg").convert("RGB"))
    return {"1 face": one, "5 faces": group}


def timed(fn, repeats: int) -> float:
    """Median seconds per call after a warm-up."""
    for _ in range(max(3, repeats // 10)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "--weights", dest="model", default=None, help="default: the bundled fast model")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    weights = resolve_model(args.model)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = onnx_file(weights, "fp32") or export_onnx(weights, Path(tmp) / "model.onnx")
        backends = {"torch": ferkit.load(weights, backend="torch"), "onnx fp32": ferkit.load(fp32),
                    "torch+tta": ferkit.load(weights, backend="torch", tta=True), "onnx fp32+tta": ferkit.load(fp32, tta=True)}
        if weights.is_dir() and (weights / ONNX_FILES["int8"]).is_file():
            backends["onnx int8"] = ferkit.load(weights, precision="int8")
            backends["onnx int8+tta"] = ferkit.load(weights, precision="int8", tta=True)
        crops = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
        for name, rec in backends.items():
            one = timed(lambda: rec.classify(crops[:1]), args.repeats) * 1000
            many = timed(lambda: rec.classify(crops), max(10, args.repeats // 10)) * 1000 / 64
            print(f"classifier {name:<13} batch 1: {one:6.2f} ms/face   batch 64: {many:6.3f} ms/face")
        default = ferkit.load(args.model)
        print(f"default backend: {type(default.classifier).__name__} {default.classifier.path.name if hasattr(default.classifier, 'path') else ''}")
        for detector in DETECTOR_NAMES:
            for size in (None, 320):  # the default (the frame's own size up to 960), or --detect-size 320
                options = None if size is None else DetectorOptions(max_side=size)
                rec = ferkit.load(args.model, detector=detector, detector_options=options)
                for label, frame in frames().items():
                    found = len(rec.analyze(frame))
                    seconds = timed(lambda: rec.analyze(frame), max(10, args.repeats // 5))
                    detect = timed(lambda: rec.detector.detect(frame), max(10, args.repeats // 5))
                    print(f"pipeline {detector:<5} detect-size {size or 'default':<7} 640x480 {label} ({found} found): "
                          f"{1 / seconds:6.1f} frames/s ({seconds * 1000:5.1f} ms, detection {detect * 1000:5.1f} ms)")


if __name__ == "__main__":
    main()
