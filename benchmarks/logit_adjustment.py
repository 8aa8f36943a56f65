"""Print accuracy / balanced accuracy on a split for each run as its logits are shifted by
-tau * log(train class prior), tau from -0.5 to 1.0: the trade-off that post-hoc logit adjustment
(and, shifted, a logit-adjusted training loss) moves along.

    python benchmarks/logit_adjustment.py runs/A runs/B --data ../shared/data/ferplus/ferplus.tar.gz
"""

from __future__ import annotations

import argparse

import numpy as np

from ferkit.data import apply_protocol, load_dataset
from ferkit.data.datamodule import FerDataModule
from ferkit.evaluation.calibration import balanced_accuracy
from ferkit.inference.classifier import FaceClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="valid")
    args = parser.parse_args()
    data = load_dataset(args.data, progress=False)
    classes = len(data.classes)
    split = apply_protocol(data.split(args.split), "majority", classes)
    taus = np.round(np.arange(-0.5, 1.0001, 0.1), 1) + 0.0  # no "-0.0"
    print(f"{args.split}: accuracy / balanced accuracy (%) at tau = " + " ".join(f"{t:+.1f}" for t in taus))
    for run in args.runs:
        classifier = FaceClassifier.from_path(run)
        # The prior that training's calibration used: the run's own label mode on Train.
        log_prior = np.log(FerDataModule(data, classifier.metadata["label_mode"]).class_prior())
        raw = classifier.raw_logits(split.images)
        cells = []
        for tau in taus:
            predicted = (raw - tau * log_prior).argmax(axis=1)
            accuracy = float((predicted == split.labels).mean())
            cells.append(f"{100 * accuracy:.1f}/{100 * balanced_accuracy(split.labels, predicted):.1f}")
        print(f"{run}: {' '.join(cells)}")


if __name__ == "__main__":
    main()
