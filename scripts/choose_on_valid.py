"""Compare candidate models on FER+ Valid (never Test): accuracy / balanced accuracy clean and
under each camera corruption of the robustness report, for both class priors, as the choice of
a bundled model is made.

    python scripts/choose_on_valid.py runs/A runs/B fast [--data ../shared/data/ferplus/ferplus.tar.gz]

Each model runs through the torch backend with its stored calibration (the logit adjustment of
each prior); the last column is the mean over the camera corruptions. A second table gives each
emotion's recall on the clean faces, for both priors.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from ferkit.data import load_dataset
from ferkit.evaluation.evaluate import labelled_split
from ferkit.evaluation.robustness import CAMERA_CORRUPTIONS, corruptions
from ferkit.inference.base import PRIORS
from ferkit.inference.bundled import resolve_model
from ferkit.inference.classifier import FaceClassifier
from ferkit.labels import EMOTIONS

DEFAULT_DATA = "../shared/data/ferplus/ferplus.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run folders, .safetensors files or bundled names")
    parser.add_argument("--data", default=DEFAULT_DATA)
    args = parser.parse_args()
    valid = labelled_split(load_dataset(args.data), "valid")
    suite = corruptions()
    views = {"clean": valid.images, **{name: suite[name](valid.images) for name in CAMERA_CORRUPTIONS}}
    print(f"FER+ Valid, {len(valid)} faces, majority protocol; accuracy / balanced accuracy (%)")
    print(f"{'model':<34}{'prior':<9}" + "".join(f"{name:>22}" for name in [*views, "mean_camera"]))
    recalls = []
    for model in args.models:
        for prior in PRIORS:
            classifier = FaceClassifier.from_path(resolve_model(model), prior=prior)
            cells = []
            for images in views.values():
                predicted = classifier.logits(images).argmax(axis=1)
                cells.append((accuracy_score(valid.labels, predicted), balanced_accuracy_score(valid.labels, predicted)))
                if len(cells) == 1:
                    recall = recall_score(valid.labels, predicted, labels=list(range(len(EMOTIONS))), average=None,
                                          zero_division=0)
                    recalls.append((model, prior, recall))
            camera = np.mean(cells[1:], axis=0)
            print(f"{str(model)[-33:]:<34}{prior:<9}"
                  + "".join(f"{100 * a:>13.2f} / {100 * b:<6.2f}" for a, b in [*cells, tuple(camera)]), flush=True)
    counts = np.bincount(valid.labels, minlength=len(EMOTIONS))
    print("\nrecall per emotion on the clean faces (%); faces: "
          + ", ".join(f"{emotion} {n}" for emotion, n in zip(EMOTIONS, counts)))
    print(f"{'model':<34}{'prior':<9}" + "".join(f"{emotion:>11}" for emotion in EMOTIONS))
    for model, prior, recall in recalls:
        print(f"{str(model)[-33:]:<34}{prior:<9}" + "".join(f"{100 * r:>11.1f}" for r in recall))


if __name__ == "__main__":
    main()
