"""Average the weights of models fine-tuned from one start (a model soup, Wortsman et al. 2022) into
one weights folder of the same architecture and speed, calibrated on FER+ Valid like a trained run.

    python scripts/soup.py fast runs/soup-b runs/soup-c --out runs/soup-fbc [--data DATA] [--shares 0.5 0.25 0.25]
        [--update-bn]

Then compare it with its ingredients on Valid: `python scripts/choose_on_valid.py fast runs/soup-fbc`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferkit.data import load_dataset
from ferkit.inference.bundled import resolve_model
from ferkit.inference.checkpoint import load_model
from ferkit.training.config import build_config
from ferkit.training.soup import write_average

DEFAULT_DATA = "../shared/data/ferplus/ferplus.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="bundled names, run folders or .safetensors files")
    parser.add_argument("--out", required=True, help="the weights folder to write")
    parser.add_argument("--data", default=DEFAULT_DATA, help="FER+ folder or .tar.gz (its valid split calibrates)")
    parser.add_argument("--shares", type=float, nargs="+", help="one weight per model (default: equal)")
    parser.add_argument("--update-bn", action="store_true",
                        help="recompute the BatchNorm statistics on the training split, under the last model's "
                             "training augmentation (for networks whose weights drifted apart, as cycle ends do)")
    args = parser.parse_args()
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        parser.error(f"{args.out} exists and is not empty; choose a new folder")
    shares = args.shares or [1 / len(args.models)] * len(args.models)
    loaded = [load_model(resolve_model(model)) for model in args.models]
    soup: dict[str, object] = {
        "members": [{"source": m, "sha256": x.metadata.get("sha256")} for m, x in zip(args.models, loaded)],
        "shares": shares}
    augment = None
    if args.update_bn:
        training = loaded[-1].metadata.get("training")
        if not training:
            parser.error(f"{args.models[-1]} records no training run, so no augmentation to recompute the statistics under")
        augment = build_config(overrides=training).augment_config
        soup["update_bn"] = {"augment": augment.to_dict(), "seed": 0}
    out = write_average(loaded, shares, args.out, load_dataset(args.data, progress=False), {"soup": soup}, augment)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
