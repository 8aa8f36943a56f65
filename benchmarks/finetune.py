"""Fine-tuning on a shifted domain: FER+ faces seen through another camera, before and after.

    python benchmarks/finetune.py --data ../shared/data/ferplus/ferplus.tar.gz --work /tmp/ferkit-finetune

The domain: every FER+ Valid face (never trained on by the bundled models) is pasted into a
320x240 photo at 40-120 px and the photo goes through a night camera: a solarising tone curve
(bright skin turns dark, as on thermal-style sensors), light falling off across the frame to a
quarter, and sensor noise. Each face is cut back out of its photo, and the crops with a CSV
``path,emotion,subject`` (one subject per face) go through the user's commands:
``ferkit dataset build CSV DS --crops`` (subjects split 70/15/15: the test subjects held out) then
``ferkit finetune DS --from fast --out RUN --ferplus DATA`` with default options. Prints the
held-out accuracy before and after, FER+ test accuracy before and after (read once), and the
wall time of each step.

To compare recipes without reading FER+ test, ``--select`` builds the domain from a seeded half of
FER+ Valid and scores the general accuracy given up on the other half, clean (faces neither the
bundled model nor the fine-tuning saw); ``--lr``, ``--l2sp`` and ``--blend`` set the recipe:

    python benchmarks/finetune.py --data DATA --work /tmp/ft-a --select
    python benchmarks/finetune.py --data DATA --work /tmp/ft-b --select --blend 1 --seed 1
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ferkit.data import load_dataset
from ferkit.data.protocols import LabelledSplit
from ferkit.evaluation.before_after import score
from ferkit.evaluation.evaluate import labelled_split
from ferkit.finetune.dataset import build_dataset
from ferkit.finetune.options import FinetuneOptions
from ferkit.finetune.recipe import finetune
from ferkit.inference.recognizer import load
from ferkit.labels import EMOTIONS

PHOTO_SIZE = (240, 320)  # height, width
FACE_SIDES = (40, 120)
LIGHT_FALLOFF = 0.25
NOISE_STD = 0.03
MIN_RISE = 0.10
MAX_FERPLUS_DROP = 0.02


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random RGB scene (H, W, 3) uint8."""
    h, w = PHOTO_SIZE
    coarse = rng.integers(40, 200, (6, 8, 3)).astype(np.uint8)
    scene = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(scene + rng.integers(-10, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def night_camera(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The camera change on an RGB photo: solarising tone curve, light falling off across the
    frame (from either side) and Gaussian sensor noise."""
    f = photo.astype(np.float32) / 255
    f = np.where(f > 0.5, 2 * (1 - f), 2 * f)
    light = np.linspace(LIGHT_FALLOFF, 1.0, f.shape[1], dtype=np.float32)[None, :, None]
    f = f * (light if rng.random() < 0.5 else light[:, ::-1])
    f = f + rng.normal(0, NOISE_STD, f.shape).astype(np.float32)
    return (np.clip(f, 0, 1) * 255).astype(np.uint8)


def shifted_crop(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 gray face pasted into a photo at 40-120 px, through the night camera, cut back out."""
    photo = background(rng)
    side = int(rng.integers(FACE_SIDES[0], FACE_SIDES[1] + 1))
    y, x = int(rng.integers(0, PHOTO_SIZE[0] - side)), int(rng.integers(0, PHOTO_SIZE[1] - side))
    photo[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)[..., None]
    return night_camera(photo, rng)[y : y + side, x : x + side]


def valid_halves(data_path: str, seed: int) -> tuple[LabelledSplit, np.ndarray, np.ndarray]:
    """FER+ Valid and a seeded split of its indices in two halves."""
    valid = labelled_split(load_dataset(data_path, progress=False), "valid")
    order = np.random.default_rng(seed).permutation(len(valid))
    return valid, order[: len(order) // 2], order[len(order) // 2 :]


def write_domain(valid: LabelledSplit, order: np.ndarray, folder: Path, limit: int | None, seed: int) -> Path:
    """Write the shifted crops of the FER+ Valid faces ``order`` and their CSV; returns the CSV."""
    order = order[:limit]
    crops = folder / "crops"
    crops.mkdir(parents=True)
    table = folder / "faces.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "emotion", "subject"])
        for i in order:
            rng = np.random.default_rng([seed, int(i)])
            name = f"crops/{valid.names[i].replace('/', '_')}"
            Image.fromarray(shifted_crop(valid.images[i], rng)).save(folder / name)
            writer.writerow([name, EMOTIONS[valid.labels[i]], f"person{i}"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER+ folder or ferplus.tar.gz")
    parser.add_argument("--work", default="/tmp/ferkit-finetune", help="scratch folder (replaced)")
    parser.add_argument("--faces", type=int, help="use only this many FER+ Valid faces (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select", action="store_true",
                        help="compare recipes: the domain from half of Valid, the general accuracy on the other "
                             "half; FER+ test is not read")
    parser.add_argument("--lr", type=float, default=FinetuneOptions.lr)
    parser.add_argument("--l2sp", type=float, default=FinetuneOptions.l2sp)
    parser.add_argument("--blend", type=float, default=FinetuneOptions.blend)
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    times: dict[str, float] = {}
    start = time.perf_counter()
    valid, domain, rest = valid_halves(args.data, args.seed)
    if not args.select:
        domain = np.concatenate([domain, rest])
    table = write_domain(valid, domain, work / "photos", args.faces, args.seed)
    times["domain"] = time.perf_counter() - start
    start = time.perf_counter()
    build_dataset(table, work / "ds", crops=True, seed=args.seed, progress=False)
    times["dataset build"] = time.perf_counter() - start
    start = time.perf_counter()
    options = FinetuneOptions(lr=args.lr, l2sp=args.l2sp, blend=args.blend, ferplus=None if args.select else args.data,
                              progress=False)
    run = finetune(work / "ds", work / "run", options)
    times["finetune + report"] = time.perf_counter() - start
    numbers = json.loads((run / "before_after.json").read_text())
    user = numbers["user"]
    if args.select:
        check = LabelledSplit(valid.images[rest], valid.targets[rest], valid.labels[rest],
                              tuple(valid.names[i] for i in rest))
        fer = {"before": score(load(options.start).classifier, check), "after": score(load(run).classifier, check)}
        general = f"FER+ Valid, the other half, clean ({len(rest)} faces)"
    else:
        fer = numbers["ferplus"]
        general = f"FER+ test ({fer['after']['faces']} faces)"
    rise = user["after"]["accuracy"] - user["before"]["accuracy"]
    drop = fer["before"]["accuracy"] - fer["after"]["accuracy"]
    print(f"recipe: lr {args.lr}, l2sp {args.l2sp}, blend {args.blend}; {numbers['train_faces']} train, "
          f"{numbers['valid_faces']} valid faces")
    print(f"shifted domain, held-out subjects ({user['after']['faces']} faces): accuracy "
          f"{100 * user['before']['accuracy']:.2f}% -> {100 * user['after']['accuracy']:.2f}% ({100 * rise:+.2f} points); "
          f"balanced {100 * user['before']['balanced_accuracy']:.2f}% -> {100 * user['after']['balanced_accuracy']:.2f}%; "
          f"start with prior='uniform' {100 * user['before_uniform']['accuracy']:.2f}%; "
          f"fine-tuned int8 {100 * user['after_int8']['accuracy']:.2f}%")
    print(f"{general}: accuracy {100 * fer['before']['accuracy']:.2f}% -> "
          f"{100 * fer['after']['accuracy']:.2f}% ({-100 * drop:+.2f} points); balanced "
          f"{100 * fer['before']['balanced_accuracy']:.2f}% -> {100 * fer['after']['balanced_accuracy']:.2f}%")
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    print(f"rise >= {100 * MIN_RISE:.0f} points: {'yes' if rise >= MIN_RISE else 'NO'}; "
          f"general accuracy given up <= {100 * MAX_FERPLUS_DROP:.0f} points: {'yes' if drop <= MAX_FERPLUS_DROP else 'NO'}")
    print(f"report: {run / 'report.md'}")


if __name__ == "__main__":
    main()
