"""Batch prediction speed: one process, local worker processes, and the Ray Data engine.

    python benchmarks/batch_predict.py [--images 2000] [--workers 2] [--no-ray]

Writes a folder of N 640x480 JPEGs (the faces of tests/data pasted at several sizes and places on
plain backgrounds, 1 to 5 faces each), predicts it with each engine into JSON lines, prints
images/s and faces/s, and checks that every engine wrote the same records.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ferkit
from ferkit.batch.predict import predict_files

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    group = Image.open(DATA / "bbt3.jpg").convert("RGB")
    close_up = Image.open(DATA / "amy1.png").convert("RGB")
    for i in range(count):
        frame = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(30, 220, 3)))
        if i % 3 == 0:
            scale = rng.uniform(0.6, 1.0)
            frame.paste(group.resize((int(group.width * scale), int(group.height * scale))),
                        (int(rng.integers(0, 40)), int(rng.integers(0, 90))))
        else:
            size = int(rng.integers(60, 260))
            frame.paste(close_up.resize((size, size)), (int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))))
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=int(rng.integers(60, 95)))
        (folder / f"img{i:06d}.jpg").write_bytes(buffer.getvalue())


def timed_run(recognizer: ferkit.Recognizer, folder: Path, out: Path, **engine: object) -> tuple[float, str]:
    start = time.perf_counter()
    predict_files(recognizer, [str(folder)], output=str(out), **engine)  # type: ignore[arg-type]
    return time.perf_counter() - start, out.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    recognizer = ferkit.load()
    with tempfile.TemporaryDirectory() as tmp:
        folder, outputs = Path(tmp) / "images", Path(tmp)
        folder.mkdir()
        write_images(folder, args.images)
        runs = {"1 process": {"workers": 1}, f"{args.workers} local workers": {"workers": args.workers}}
        if not args.no_ray:
            runs["ray engine (local Ray)"] = {"engine": "ray"}
        results = {}
        for name, engine in runs.items():
            if engine.get("engine") == "ray":
                import ray

                ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
            seconds, text = timed_run(recognizer, folder, outputs / f"{len(results)}.jsonl", **engine)
            results[name] = text
            faces = sum(line.count('"box"') for line in text.splitlines())
            print(f"{name:<24} {args.images / seconds:7.1f} images/s {faces / seconds:7.1f} faces/s "
                  f"({seconds:.1f} s, {faces} faces)", flush=True)
        first = next(iter(results.values()))
        print("same records from every engine:", all(text == first for text in results.values()))


if __name__ == "__main__":
    main()
