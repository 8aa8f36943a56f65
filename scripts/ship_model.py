"""Ship a trained run as one of ferkit's bundled models (fast, accurate): evaluate it on FER+ test
with both class priors, write reports/NAME/, copy the weights into src/ferkit/weights/NAME/ with
the test metrics in their JSON, and rewrite MODEL_CARD.md with a section per bundled model.

    python scripts/ship_model.py fast runs/RUN --data ../shared/data/ferplus/ferplus.tar.gz
    python scripts/ship_model.py fast --card-only     # rewrite MODEL_CARD.md from the shipped JSON

The run must already be calibrated on valid for both priors (every `ferkit train` run is;
`ferkit calibrate` refits).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ferkit.data import load_dataset
from ferkit.evaluation.evaluate import EvalOptions, evaluate_weights, run_evaluation
from ferkit.evaluation.report import robustness_table
from ferkit.inference.base import UNIFORM_PRIOR_KEY
from ferkit.inference.bundled import BUNDLED_MODELS, bundled_dir, bundled_models
from ferkit.inference.checkpoint import METADATA_FILE, WEIGHTS_FILE, load_model, resolve_weights, update_metadata

REPO = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "macro", "ece", "ece_uncalibrated", "log_loss", "macro_auc",
                "images", "protocol", "tta", "prior")
ROLES = {
    "fast": "the default (`ferkit.load()`): small enough for under 2 ms per face on a laptop CPU",
    "accurate": "the larger model (`ferkit.load(\"accurate\")`), for offline analysis where accuracy matters more than speed",
}


def bundled_source(member: dict) -> str:
    """'the bundled `fast`, ' for a member taken from a bundled model that still ships those weights;
    a bundled model replaced since is named by the weights' sha256."""
    source = member.get("source")
    if source not in BUNDLED_MODELS:
        return ""
    shipped = bundled_dir(source) / METADATA_FILE  # its record only: no weights loaded for a name
    now = json.loads(shipped.read_text()).get("sha256") if shipped.is_file() else None
    if now == member.get("sha256"):
        return f"the bundled `{source}`, "
    return f"a former bundled `{source}` (sha256 `{str(member.get('sha256'))[:12]}...`), "


def summary(metrics: dict) -> dict:
    out = {key: metrics[key] for key in SUMMARY_KEYS}
    out["recall"] = {name: row["recall"] for name, row in metrics["per_class"].items()}
    out["support"] = {name: row["support"] for name, row in metrics["per_class"].items()}
    if "robustness" in metrics:
        out["robustness"] = metrics["robustness"]
    return out


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def model_section(name: str, metadata: dict) -> str:
    """The card's section for one bundled model, every number from its shipped metadata."""
    plain, tta, uniform = metadata["test_metrics"], metadata["test_metrics_tta"], metadata["test_metrics_uniform"]
    cal, uni = metadata["calibration"], metadata[UNIFORM_PRIOR_KEY]
    rows = "\n".join(
        f"| {emotion} | {pct(plain['recall'][emotion])} | {pct(uniform['recall'][emotion])} | "
        f"{pct(tta['recall'][emotion])} | {plain['support'][emotion]} |"
        for emotion in plain["recall"]
    )
    if "members" in metadata:
        weights = metadata["model_kwargs"].get("weights")
        architecture = (f"an ensemble of {len(metadata['members'])} networks (`ferkit ensemble`): their log-probabilities "
                        "averaged" + (f" with weights {', '.join(f'{w:g}' for w in weights)} (in the members' order)" if weights else "")
                        + (" over each face and its mirror image, inside the network" if metadata["model_kwargs"].get("mirror")
                           else ", each face alone (no mirror image)"))
        training_lines = "\n".join(f"- Member {i + 1}: " + bundled_source(m) + f"`{m['model']}` {m['model_kwargs']}, "
                                   + training_line(m) for i, m in enumerate(metadata["members"]))
    else:
        architecture = f"`{metadata['model']}` {metadata['model_kwargs'] or ''}"
        training_lines = "- Training: " + training_line(metadata)
    return f"""## `{name}`: {ROLES[name]}

### Model
- Architecture {architecture}, {metadata['parameters']} parameters,
  {metadata['macs']} MACs per face, input 48x48 gray faces, 8 outputs in FER+ order.
- Weights: `src/ferkit/weights/{name}/weights.safetensors` (sha256 `{metadata['sha256']}`), described by `model.json`.
{training_lines}
- Calibration on the FER+ validation split ({cal['faces']} faces). Prior `train`: post-hoc logit adjustment
  with tau = {cal.get('logit_adjust_tau', 0):.2f} (validation balanced accuracy {pct(cal.get('balanced_accuracy_before', 0))} ->
  {pct(cal.get('balanced_accuracy_after', 0))}, accuracy {pct(cal.get('accuracy_before', 0))} ->
  {pct(cal.get('accuracy_after', 0))}), then temperature {cal['temperature']:.3f}. Prior `uniform`: the
  training prior removed completely (tau = 1), temperature {uni['temperature']:.3f} fitted with each
  face weighted by 1 / its class frequency (validation accuracy {pct(uni['accuracy_valid'])},
  balanced accuracy {pct(uni['balanced_accuracy_valid'])}).

### Metrics (FER+ test, {plain['images']:,} faces)
| | prior `train` (default) | prior `uniform` | prior `train`, `--tta hflip` |
|---|---|---|---|
| accuracy | {pct(plain['accuracy'])} | {pct(uniform['accuracy'])} | {pct(tta['accuracy'])} |
| balanced accuracy (mean recall) | {pct(plain['balanced_accuracy'])} | {pct(uniform['balanced_accuracy'])} | {pct(tta['balanced_accuracy'])} |
| macro F1 | {plain['macro']['f1']:.4f} | {uniform['macro']['f1']:.4f} | {tta['macro']['f1']:.4f} |
| macro ROC AUC | {plain['macro_auc']:.4f} | {uniform['macro_auc']:.4f} | {tta['macro_auc']:.4f} |
| ECE (15 bins), calibrated | {plain['ece']:.4f} | {uniform['ece']:.4f} | {tta['ece']:.4f} |
| log loss | {plain['log_loss']:.4f} | {uniform['log_loss']:.4f} | {tta['log_loss']:.4f} |

Recall per emotion (disgust and contempt have only {plain['support']['disgust']} and
{plain['support']['contempt']} test faces: their recall moves by {100 / max(plain['support']['contempt'], 1):.0f} points per face):

| emotion | prior `train` | prior `uniform` | prior `train`, TTA | test faces |
|---|---|---|---|---|
{rows}

Reproduce: `ferkit evaluate --model {name} --backend torch --data $DATA [--prior uniform] [--tta hflip] --robustness`.

### Robustness (prior `train`, no TTA)
{robustness_table(plain['robustness'])}

### Robustness (prior `uniform`, no TTA)
{robustness_table(uniform['robustness'])}

The first four corruptions are what cameras do to faces (sensor noise of std 8 gray levels, blur of
sigma 1 pixel, JPEG quality 30 with the real codec, a face 24 pixels wide enlarged back to 48); the
crop rows simulate face detectors that crop tighter (central 80%) or looser (a 10% border) than FER-2013.
The report with every plot is `reports/{name}/report.md`.
{onnx_section(name)}{tried_section(name)}"""


def training_line(metadata: dict) -> str:
    """How one trained network (a model or an ensemble's member) was trained, from its description."""
    training = metadata["training"]
    init, teacher = metadata.get("init_weights"), metadata.get("teacher")
    start = f", starting from weights sha256 `{init['sha256'][:12]}...`" if init else ""
    if teacher:
        start += (f", taught by `{Path(teacher['path']).parent.name}` (sha256 `{teacher['sha256'][:12]}...`, "
                  f"weight {teacher['weight']}, temperature {teacher['temperature']})")
    return f"""run `{metadata['run']}` on {metadata.get('hardware', 'unrecorded hardware')}
  ({metadata.get('train_seconds', 0) / 60:.0f} min{start}), label mode `{metadata['label_mode']}`,
  {training['epochs']} epochs planned, best epoch {metadata['epoch']} by `{metadata['monitor']}`; lr {training['lr']},
  weight decay {training['weight_decay']}, {training['scheduler']} schedule, batch {training['batch_size']}, seed {training['seed']},
  augmentation {training['augment']}."""


def onnx_section(name: str) -> str:
    """The ONNX files' accuracy (from scripts/ship_onnx.py's reports/NAME/onnx.json), if built."""
    from ferkit.evaluation.robustness import CAMERA_CORRUPTIONS
    from ferkit.inference.bundled import DEFAULT_PRECISION, ONNX_FILES

    source = REPO / "reports" / name / "onnx.json"
    if not source.is_file():
        return ""
    report = json.loads(source.read_text())
    default = DEFAULT_PRECISION.get(name, "fp32")
    rows = []
    for prior in ("train", "uniform"):
        for precision, file in ONNX_FILES.items():
            scores = report[precision] if prior == "train" else report[precision].get("uniform")
            if scores is None:
                continue
            # a corruption added to the suite after these files were measured shows as "not measured"
            cells = [scores["clean"]] + [scores["robustness"].get(c) for c in CAMERA_CORRUPTIONS]
            ece = f"{scores['clean']['ece']:.4f}" if "ece" in scores["clean"] else "not measured"
            rows.append(f"| `{file}` ({precision}{', default' if precision == default else ''}) | `{prior}` | "
                        + " | ".join("not measured" if c is None else f"{pct(c['accuracy'])} / {pct(c['balanced_accuracy'])}"
                                     for c in cells) + f" | {ece} |")
    return f"""
### ONNX Runtime files (what `ferkit.load("{name}")` runs)
Exported from these weights by `python scripts/ship_onnx.py {name} --data $DATA` (int8: static, per-channel
7-bit weights, uint8 activations calibrated on 2,000 FER+ Valid faces; the nodes that write the output stay
in float, so probabilities are not on a 256-level grid); FER+ test, accuracy / balanced accuracy, and the
calibration of the clean probabilities (ECE, 15 bins):

| file | prior | clean | {" | ".join(CAMERA_CORRUPTIONS)} | ECE |
|---|---|---|{"---|" * len(CAMERA_CORRUPTIONS)}---|
{chr(10).join(rows)}
"""


def tried_section(name: str) -> str:
    """What was tried for the model and not shipped (reports/tried/NAME.md, written by hand: each
    attempt with its command and its Valid numbers), if any."""
    source = REPO / "reports" / "tried" / f"{name}.md"
    return "\n" + source.read_text() if source.is_file() else ""


def _count(models: int) -> str:
    return "one model" if models == 1 else f"{models} models"


def model_card(sections: str) -> str:
    """MODEL_CARD.md: what every bundled model shares, then one section per model."""
    return f"""# Model card: ferkit's bundled models

ferkit ships {_count(len(bundled_models()))} inside the package, chosen with `ferkit.load(NAME)` or
`--model NAME`: {", ".join(f"`{n}`" for n in bundled_models())}. Both priors are stored with {"it" if len(bundled_models()) == 1 else "each"}:
`prior="train"` (the default) expects faces as frequent as in FER+ (mostly neutral and happy: everyday
photos and video); `prior="uniform"` expects every emotion equally often (posed or acted expressions,
emotion-elicitation studies) and trades overall FER+ accuracy for recall of the rare emotions.

## Intended use
Research on facial expression recognition, demos, and products that show or aggregate the
expressions of consenting people (for example, feedback on a video call shown to its own participants).
It recognises the *appearance* of 8 prototypical expressions; it does not read feelings.

## Out of scope
Any decision about a person: hiring, admission, policing, border control, credit, insurance,
health or mental-health diagnosis, lie detection, or surveillance of people who have not agreed to it.
Children, and faces far from frontal or very small, are outside what it was trained on.

## Training data
FER-2013 (the ICML 2013 representation-learning challenge; research use) with Microsoft's FER+
crowd labels (MIT licence): 10 votes per face over 8 emotions, "unknown" and "not a face". Train
split only; models and hyper-parameters were chosen on Valid; Test was used only to report.

## Evaluation protocol
FER+ test split, majority protocol of Barsoum et al. (ICMI 2016): single votes dropped, a face
kept only if one emotion has more than half of the remaining votes (3,137 faces).

{sections}
## Known failure modes
- FER-2013 faces are mostly posed or acted, web-sourced, frontal and gray; spontaneous and subtle
  expressions are recognised less well.
- Neutral and sadness are often confused, and so are fear and surprise, anger and disgust
  (see each report's confusion matrix); contempt and disgust are rare in training and weakly recognised.
- Faces turned more than about 30 degrees, occluded (masks, hands), very small or in harsh light lose
  accuracy (see the robustness tables); the eyes-occluded and mouth-occluded rows show how much each
  model relies on each.
- FER-2013 under-represents older people, children and people with darker skin; accuracy for
  these groups has not been measured and may be lower.
"""


def ship(name: str, run: str, data_path: str) -> dict:
    """Evaluate ``run`` on test (prior train with Grad-CAM into reports/NAME, TTA, prior uniform),
    copy it into the package as ``name``; returns the shipped metadata."""
    loaded = load_model(run)
    if UNIFORM_PRIOR_KEY not in loaded.metadata:
        raise SystemExit(f"{run} is not calibrated: run `ferkit calibrate --weights {run} --data {data_path}`")
    data = load_dataset(data_path)
    reports = REPO / "reports" / name
    if reports.exists():
        shutil.rmtree(reports)
    run_evaluation([run], data, reports, EvalOptions(robustness=True, gradcam=True))
    plain = json.loads((reports / "metrics.json").read_text())
    tta = evaluate_weights(run, data, REPO / "build" / name / "eval-tta", EvalOptions(tta=True))
    uniform = evaluate_weights(run, data, REPO / "build" / name / "eval-uniform", EvalOptions(robustness=True, prior="uniform"))
    target = bundled_dir(name)
    target.mkdir(parents=True, exist_ok=True)
    weights, meta_file = resolve_weights(run)
    shutil.copyfile(weights, target / WEIGHTS_FILE)
    shutil.copyfile(meta_file, target / METADATA_FILE)
    # The test metrics join the description inside the weights too (the tensors are unchanged).
    metadata = update_metadata(target, dict(
        test_metrics=summary(plain), test_metrics_tta=summary(tta), test_metrics_uniform=summary(uniform),
        run=Path(run).name, parameters=f"{plain['parameters']:,}", macs=f"{plain['macs_per_face']:,}"))
    load_model(target)
    return metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=BUNDLED_MODELS, help="which bundled model the run becomes")
    parser.add_argument("run", nargs="?", help="run folder (omit with --card-only)")
    parser.add_argument("--data", help="the FER+ data set, to evaluate the run on its test split")
    parser.add_argument("--card-only", action="store_true", help="only rewrite MODEL_CARD.md")
    args = parser.parse_args()
    if not args.card_only:
        if not (args.run and args.data):
            parser.error("give the run folder and --data (or --card-only)")
        shipped = ship(args.name, args.run, args.data)
        print(json.dumps({k: shipped[k] for k in ("test_metrics", "test_metrics_tta", "test_metrics_uniform")}, indent=2))
    sections = "".join(model_section(n, load_model(bundled_dir(n)).metadata) for n in bundled_models())
    (REPO / "MODEL_CARD.md").write_text(model_card(sections))


if __name__ == "__main__":
    main()
