"""Ship a trained run as ferkit's bundled model: evaluate it on FER+ test, write reports/, copy the
weights into src/ferkit/weights/ with the test metrics in their JSON.

    python scripts/ship_model.py runs/NAME --data ../shared/data/ferplus/ferplus.tar.gz

The run must already be calibrated on valid (every `ferkit train` run is; `ferkit calibrate` refits).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ferkit.data import load_dataset
from ferkit.evaluation.evaluate import EvalOptions, evaluate_weights, run_evaluation
from ferkit.inference.bundled import BUNDLED_DIR
from ferkit.inference.checkpoint import METADATA_FILE, WEIGHTS_FILE, load_model, resolve_weights

REPO = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "macro", "ece", "ece_uncalibrated", "log_loss", "macro_auc",
                "images", "protocol", "tta")


def summary(metrics: dict) -> dict:
    out = {key: metrics[key] for key in SUMMARY_KEYS}
    out["recall"] = {name: row["recall"] for name, row in metrics["per_class"].items()}
    out["support"] = {name: row["support"] for name, row in metrics["per_class"].items()}
    if "robustness" in metrics:
        out["robustness"] = metrics["robustness"]
    return out


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def model_card(metadata: dict) -> str:
    """MODEL_CARD.md, with every number taken from the shipped model's metadata."""
    plain, tta = metadata["test_metrics"], metadata["test_metrics_tta"]
    cal = metadata["calibration"]
    training = metadata["training"]
    rows = "\n".join(
        f"| {name} | {pct(plain['recall'][name])} | {pct(tta['recall'][name])} | {plain['support'][name]} |"
        for name in plain["recall"]
    )
    robust = "\n".join(
        f"| {name} | {pct(acc)} | {100 * (acc - plain['accuracy']):+.2f} |" for name, acc in plain["robustness"].items()
    )
    return f"""# Model card: ferkit's bundled model

## Model
- Architecture `{metadata['model']}` {metadata['model_kwargs'] or ''} (ferkit's own residual CNN with global pooling),
  {metadata.get('parameters', 'see `ferkit models`')} parameters, input 48x48 gray faces, 8 outputs in FER+ order.
- Weights: `src/ferkit/weights/weights.safetensors` (sha256 `{metadata['sha256']}`), described by `model.json`.
- Training: run `{metadata['run']}` on {metadata.get('hardware', 'unrecorded hardware')}
  ({metadata.get('train_seconds', 0) / 60:.0f} min), label mode `{metadata['label_mode']}`, {training['epochs']} epochs planned,
  best epoch {metadata['epoch']} by `{metadata['monitor']}`; Adam lr {training['lr']}, weight decay
  {training['weight_decay']}, {training['scheduler']} schedule, batch {training['batch_size']}, augmentation
  {training['augment']}.
- Calibration on the FER+ validation split ({cal['faces']} faces): post-hoc logit adjustment with
  tau = {cal.get('logit_adjust_tau', 0):.2f} (validation balanced accuracy {pct(cal.get('balanced_accuracy_before', 0))} ->
  {pct(cal.get('balanced_accuracy_after', 0))}, accuracy {pct(cal.get('accuracy_before', 0))} ->
  {pct(cal.get('accuracy_after', 0))}), then temperature {cal['temperature']:.3f}.

## Intended use
Research on facial expression recognition, demos, and products that show or aggregate the
expressions of consenting people (for example, feedback on a video call shown to its own participants).
It recognises the *appearance* of 8 prototypical expressions; it does not read feelings.

## Out of scope
Any decision about a person: hiring, admission, policing, border control, credit, insurance,
health or mental-health diagnosis, lie detection, or surveillance of people who have not agreed to it.
Children, and faces far from frontal, small or blurred, are outside what it was trained on.

## Training data
FER-2013 (the ICML 2013 representation-learning challenge; research use) with Microsoft's FER+
crowd labels (MIT licence): 10 votes per face over 8 emotions, "unknown" and "not a face". Train
split only ({metadata['data']['train_faces']:,} faces under `{metadata['label_mode']}`); models and
hyper-parameters were chosen on Valid; Test was used only to report.

## Evaluation protocol
FER+ test split, majority protocol of Barsoum et al. (ICMI 2016): single votes dropped, a face
kept only if one emotion has more than half of the remaining votes: {plain['images']:,} faces.
Reproduce: `ferkit evaluate --data ../shared/data/ferplus/ferplus.tar.gz` (and `--tta hflip`).

## Metrics
| | as loaded by `ferkit.load()` | with `--tta hflip` |
|---|---|---|
| accuracy | {pct(plain['accuracy'])} | {pct(tta['accuracy'])} |
| balanced accuracy (mean recall) | {pct(plain['balanced_accuracy'])} | {pct(tta['balanced_accuracy'])} |
| macro F1 | {plain['macro']['f1']:.4f} | {tta['macro']['f1']:.4f} |
| macro ROC AUC | {plain['macro_auc']:.4f} | {tta['macro_auc']:.4f} |
| ECE (15 bins), calibrated | {plain['ece']:.4f} | {tta['ece']:.4f} |
| ECE before temperature scaling | {plain['ece_uncalibrated']:.4f} | {tta['ece_uncalibrated']:.4f} |
| log loss | {plain['log_loss']:.4f} | {tta['log_loss']:.4f} |

Recall per emotion (disgust and contempt have only {plain['support']['disgust']} and
{plain['support']['contempt']} test faces: their recall moves by {100 / max(plain['support']['contempt'], 1):.0f} points per face):

| emotion | recall | recall (TTA) | test faces |
|---|---|---|---|
{rows}

## Robustness (no TTA)
| corruption | accuracy | change (points) |
|---|---|---|
| none | {pct(plain['accuracy'])} | |
{robust}

The crop rows simulate face detectors that crop tighter (central 80% of the face, rescaled) or
looser (a 10% border added on each side) than FER-2013.

## Known failure modes
- FER-2013 faces are mostly posed or acted, web-sourced, frontal and gray; spontaneous and subtle
  expressions are recognised less well.
- Neutral and sadness are often confused, and so are fear and surprise, anger and disgust
  (see `reports/confusion_matrix.png`); contempt and disgust are rare in training and weakly recognised.
- Faces turned more than about 30 degrees, occluded (masks, hands), small (under 40 pixels) or in
  harsh light lose accuracy (see the robustness table); the eyes-occluded and mouth-occluded rows
  show how much the model relies on each.
- FER-2013 under-represents older people, children and people with darker skin; accuracy for
  these groups has not been measured and may be lower.

## Report
`reports/report.md` (from `ferkit evaluate --tta hflip --gradcam --robustness`): confusion matrix,
ROC, reliability diagram, accuracy-coverage curve, robustness, class-average Grad-CAM.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    loaded = load_model(args.run)
    if "calibration" not in loaded.metadata:
        raise SystemExit(f"{args.run} is not calibrated: run `ferkit calibrate --weights {args.run} --data {args.data}`")
    data = load_dataset(args.data)
    reports = REPO / "reports"
    if reports.exists():
        shutil.rmtree(reports)
    run_evaluation([args.run], data, reports, EvalOptions(tta=True, robustness=True, gradcam=True))
    tta = json.loads((reports / "metrics.json").read_text())
    plain = evaluate_weights(args.run, data, REPO / "build" / "eval-no-tta", EvalOptions(robustness=True))
    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    weights, meta_file = resolve_weights(args.run)
    shutil.copyfile(weights, BUNDLED_DIR / WEIGHTS_FILE)
    metadata = json.loads(meta_file.read_text())
    metadata["test_metrics"] = summary(plain)
    metadata["test_metrics_tta"] = summary(tta)
    metadata["run"] = Path(args.run).name
    (BUNDLED_DIR / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    load_model(BUNDLED_DIR)  # the hash still matches
    metadata["parameters"] = f"{plain['parameters']:,}"
    (REPO / "MODEL_CARD.md").write_text(model_card(metadata))
    print(json.dumps({"test": metadata["test_metrics"], "test_tta": metadata["test_metrics_tta"]}, indent=2))


if __name__ == "__main__":
    main()
