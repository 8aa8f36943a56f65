"""The fine-tuning report: the starting model against the fine-tuned one, on the user's test split
and on FER+ test, as report.md, before_after.json and plots in the run folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from ferkit.data.dataset import FaceData
from ferkit.data.protocols import LabelledSplit, apply_protocol
from ferkit.evaluation.calibration import balanced_accuracy
from ferkit.evaluation.plots import confusion_panel
from ferkit.inference.base import Classifier

logger = logging.getLogger(__name__)
REPORT_FILE = "report.md"
NUMBERS_FILE = "before_after.json"
CONFUSION_FILE = "confusion_before_after.png"
RECALL_FILE = "recall_before_after.png"


def score(classifier: Classifier, split: LabelledSplit) -> dict[str, Any]:
    """Accuracy, balanced accuracy and recall over the emotions present in ``split``, and the
    confusion matrix over every label (rows true, columns predicted), of ``classifier``'s answers."""
    predicted = classifier.probabilities(split.images).argmax(axis=1)
    labels = split.labels
    names = classifier.labels
    present = [k for k in range(len(names)) if (labels == k).any()]
    return {
        "faces": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "recall": {names[k]: float((predicted[labels == k] == k).mean()) for k in present},
        "confusion_matrix": confusion_matrix(labels, predicted, labels=list(range(len(names)))).tolist(),
    }


def _classifier(model: str | Path, prior: str = "train", precision: str = "auto") -> Classifier:
    """The classifier ``ferkit.load(model, prior=..., precision=...)`` answers with (ONNX where it exists)."""
    from ferkit.inference.recognizer import load

    return load(model, prior=prior, precision=precision).classifier


def confusion_figure(before: dict[str, Any], after: dict[str, Any], names: tuple[str, ...], title: str) -> Figure:
    """Row-normalised confusion matrices of the starting and the fine-tuned model, side by side."""
    fig = Figure(figsize=(14, 6.2), layout="constrained")
    fig.suptitle(title)
    for ax, result, label in zip(fig.subplots(1, 2), (before, after), ("before (starting model)", "after (fine-tuned)")):
        confusion_panel(ax, result["confusion_matrix"], names, f"{label}: accuracy {100 * result['accuracy']:.1f}%")
    return fig


def recall_figure(before: dict[str, Any], after: dict[str, Any]) -> Figure:
    """Recall per emotion before and after fine-tuning (the emotions of the test split)."""
    names = list(after["recall"])
    x = np.arange(len(names))
    fig = Figure(figsize=(max(6, 1.1 * len(names) + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, [100 * before["recall"][n] for n in names], 0.4, label="before", color="#9e9e9e")
    ax.bar(x + 0.2, [100 * after["recall"][n] for n in names], 0.4, label="after", color="#1f77b4")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Recall per emotion on your test split")
    ax.legend()
    return fig


def _row(name: str, result: dict[str, Any]) -> str:
    return f"| {name} | {result['faces']} | {100 * result['accuracy']:.1f}% | {100 * result['balanced_accuracy']:.1f}% |"


def _markdown(numbers: dict[str, Any], run: Path) -> str:
    user, names = numbers["user"], numbers["emotions_trained"]
    lines = [
        f"# Fine-tuning report: {run.name}",
        "",
        f"Started from `{numbers['start']}`; fine-tuned on {numbers['train_faces']} faces of "
        f"`{numbers['data']}` (valid split: {numbers['valid_faces']} faces, used for early stopping, the class "
        "prior and the temperature). Each model answers as `ferkit.load(...)` does (default prior).",
        "",
        f"## Your {numbers['user_split']} split",
        "",
        "| model | faces | accuracy | balanced accuracy |",
        "|---|---|---|---|",
        _row("before: starting model", user["before"]),
        _row("before: starting model, prior='uniform'", user["before_uniform"]),
        _row("after: fine-tuned", user["after"]),
        _row("after: fine-tuned, int8 ONNX", user["after_int8"]),
        "",
        f"Accuracy {100 * (user['after']['accuracy'] - user['before']['accuracy']):+.1f} points, balanced accuracy "
        f"{100 * (user['after']['balanced_accuracy'] - user['before']['balanced_accuracy']):+.1f} points.",
        "",
        "| recall | " + " | ".join(user["after"]["recall"]) + " |",
        "|---|" + "---|" * len(user["after"]["recall"]),
        "| before | " + " | ".join(f"{100 * v:.0f}%" for v in user["before"]["recall"].values()) + " |",
        "| after | " + " | ".join(f"{100 * v:.0f}%" for v in user["after"]["recall"].values()) + " |",
        "",
        f"![confusion matrices]({CONFUSION_FILE})",
        "",
        f"![recall per emotion]({RECALL_FILE})",
        "",
        f"Emotions fine-tuned on: {', '.join(names)}.",
    ]
    if numbers["blend"]:
        share = numbers["blend"]["share"]
        lines += ["", f"The fine-tuned model keeps {100 * share:.0f}% of the way from the starting weights to the fully "
                      f"fine-tuned ones (`--blend {share}`), which gives up less general accuracy; the fully fine-tuned "
                      f"weights are in `{numbers['blend']['unblended']}/` (`ferkit.load` loads them too)."]
    if numbers["emotions_never_seen"]:
        lines += ["", f"**Never seen in your data: {', '.join(numbers['emotions_never_seen'])}.** The fine-tuned "
                      "model keeps their outputs but was never shown them (it may predict them less often than the "
                      "starting model did); the scores above cannot tell how well it knows them."]
    lines += ["", "## General accuracy: FER+ test", ""]
    if numbers.get("ferplus"):
        fer = numbers["ferplus"]
        lines += ["| model | faces | accuracy | balanced accuracy |", "|---|---|---|---|",
                  _row("before: starting model", fer["before"]), _row("after: fine-tuned", fer["after"]), "",
                  f"Fine-tuning changed FER+ test accuracy by {100 * (fer['after']['accuracy'] - fer['before']['accuracy']):+.1f}"
                  " points (FER+ faces are web photos of the general public; the fine-tuned model's default prior is "
                  "your data's).", "", f"![FER+ confusion matrices]({numbers['ferplus_figure']})"]
    else:
        lines += ["Not measured: pass `--ferplus PATH` (FER+ folder or ferplus.tar.gz) to see how much general accuracy "
                  "fine-tuning gave up."]
    check = numbers["onnx_check"]
    lines += ["", "## Files", "",
              f"ONNX fp32 matches torch within {check['fp32_vs_torch_max_logit_diff']:.1e} (logits); int8 agrees with "
              f"fp32 on {100 * check['int8_agrees_with_fp32']:.1f}% of {check['checked_faces']} valid faces.",
              "", "```python", "import ferkit", f"rec = ferkit.load({str(run)!r})            # ONNX fp32",
              f"rec = ferkit.load({str(run)!r}, precision='int8')",
              f"rec = ferkit.load({str(run)!r}, prior='uniform')  # every emotion equally likely", "```", "",
              f"Command line: `ferkit predict photo.jpg --model {run}`, `ferkit app --model {run}`."]
    if numbers["notes"]:
        lines += ["", "## Warnings", ""] + [f"- {note}" for note in numbers["notes"]]
    return "\n".join(lines) + "\n"


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=100)
    return path.name


def write_before_after(run: Path, start: str, data: FaceData, ferplus: str | Path | None, notes: list[str],
                       onnx_check: dict[str, Any]) -> Path:
    """Score the starting model and the fine-tuned run on the user's test split (valid if there
    is none) and on FER+ test when ``ferplus`` is given; write report.md, before_after.json and the
    plots into ``run``. Returns the report's path."""
    from ferkit.inference.checkpoint import load_model

    metadata = load_model(run).metadata
    user_split = "test" if "test" in data.splits else "valid"
    if user_split == "valid":
        notes = [*notes, "the data set has no test split: the scores are on the valid split the run was "
                         "stopped and calibrated on, so they flatter the fine-tuned model"]
    split = apply_protocol(data.split(user_split), "majority", len(data.classes))
    before, after = _classifier(start), _classifier(run)
    user = {"before": score(before, split), "before_uniform": score(_classifier(start, "uniform"), split),
            "after": score(after, split), "after_int8": score(_classifier(run, precision="int8"), split)}
    ft = metadata["finetune"]
    numbers: dict[str, Any] = {
        "start": start, "data": data.source, "user_split": user_split, "user": user,
        "train_faces": len(data.split("train")), "valid_faces": len(data.split("valid")),
        "emotions_trained": ft["emotions_trained"], "emotions_never_seen": ft["emotions_never_seen"],
        "blend": metadata.get("blend"),
        "onnx_check": onnx_check, "notes": notes,
    }
    names = tuple(data.classes)
    _save(confusion_figure(user["before"], user["after"], names, f"Your {user_split} split"), run / CONFUSION_FILE)
    _save(recall_figure(user["before"], user["after"]), run / RECALL_FILE)
    if ferplus is not None:
        from ferkit.data.load import load_dataset
        from ferkit.evaluation.evaluate import labelled_split

        test = labelled_split(load_dataset(ferplus, progress=False), "test")
        logger.info("scoring both models on FER+ test (%d faces)", len(test))
        numbers["ferplus"] = {"before": score(before, test), "after": score(after, test)}
        numbers["ferplus_figure"] = _save(confusion_figure(numbers["ferplus"]["before"], numbers["ferplus"]["after"],
                                                           names, "FER+ test"), run / "confusion_ferplus.png")
    (run / NUMBERS_FILE).write_text(json.dumps(numbers, indent=2) + "\n")
    report = run / REPORT_FILE
    report.write_text(_markdown(numbers, run))
    return report

