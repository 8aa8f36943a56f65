"""report.md: every evaluation file on one page, and the side-by-side table for several weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferkit.inference.base import BACKEND_NAMES

FIGURE_TITLES = {
    "history": "Training curves",
    "confusion_matrix": "Confusion matrix",
    "roc": "ROC curves",
    "reliability": "Calibration (reliability diagram)",
    "coverage": "Accuracy vs coverage (abstention threshold)",
    "robustness": "Robustness to corruptions",
    "gradcam_average": "Class-average Grad-CAM",
    "gradcam_examples": "Grad-CAM examples (green: right, red: wrong)",
}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _best(metrics: dict[str, Any], key: str, fmt: str) -> str:
    best = metrics.get("best_performance", {}).get(key)
    return "n/a" if best is None else f"{best['value']:{fmt}} (epoch {best['epoch']})"


def model_section(name: str, metrics: dict[str, Any], report: str, prefix: str = "") -> str:
    """Markdown for one evaluated model; figure paths are relative to the report (``prefix``)."""
    names = list(metrics["per_class"])
    lines = [
        f"## {name}",
        "",
        f"Weights `{metrics['weights']}` (sha256 `{str(metrics['weights_sha256'])[:16]}...`, run by "
        f"{BACKEND_NAMES.get(metrics['backend'], metrics['backend'])} in {metrics['precision']}), model `{metrics['model']}`, "
        f"{metrics['parameters']:,} parameters, {metrics['macs_per_face']:,} MACs per face.",
        f"Split `{metrics['split']}` of `{metrics['data_source']}`, {metrics['images']:,} faces, protocol: {metrics['protocol']}, "
        f"test-time augmentation: {metrics['tta']}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {_pct(metrics['accuracy'])} |",
        f"| balanced accuracy (mean recall) | {_pct(metrics['balanced_accuracy'])} |",
        f"| macro precision / recall / F1 | {metrics['macro']['precision']:.4f} / {metrics['macro']['recall']:.4f} / {metrics['macro']['f1']:.4f} |",
        f"| weighted precision / recall / F1 | {metrics['weighted']['precision']:.4f} / {metrics['weighted']['recall']:.4f} / {metrics['weighted']['f1']:.4f} |",
        f"| macro ROC AUC (one vs rest) | {metrics['macro_auc']:.4f} |",
        f"| log loss | {metrics['log_loss']:.4f} |",
        f"| ECE (15 bins), before / after calibration | {metrics['ece_uncalibrated']:.4f} / {metrics['ece']:.4f} |",
        f"| temperature | {metrics['temperature']:.3f} ({metrics['temperature_source']}) |",
        f"| Brier score | {metrics['brier']:.4f} |",
        "",
        "| emotion | precision | recall | F1 | AUC | support |",
        "|---|---|---|---|---|---|",
    ]
    for emotion in names:
        row = metrics["per_class"][emotion]
        auc = "n/a" if row["auc"] is None else f"{row['auc']:.4f}"
        lines.append(f"| {emotion} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {auc} | {row['support']} |")
    if "best_performance" in metrics:
        bp = metrics["best_performance"]
        lines += [
            "",
            "Best performance during training:",
            "",
            f"- best training accuracy: {_best(metrics, 'train_acc', '.4f')}",
            f"- best validation accuracy: {_best(metrics, 'val_acc', '.4f')}",
            f"- lowest training loss: {_best(metrics, 'train_loss', '.4f')}",
            f"- lowest validation loss: {_best(metrics, 'val_loss', '.4f')}",
            f"- {bp['epochs']} epochs, {bp['training_seconds'] / 60:.1f} minutes",
        ]
    if "abstention" in metrics:
        ab = metrics["abstention"]
        lines += ["", f"With `--min-confidence {ab['min_confidence']}`: {_pct(ab['coverage'])} of faces answered, "
                      f"accuracy on them {_pct(ab['accuracy_answered'])}, {ab['uncertain']} marked uncertain."]
    if "robustness" in metrics:
        lines += ["", robustness_table(metrics["robustness"])]
    for key, title in FIGURE_TITLES.items():
        if key in metrics["figures"]:
            lines += ["", f"### {title}", "", f"![{title}]({prefix}{metrics['figures'][key]})"]
    lines += ["", "### Classification report", "", "```", report.rstrip(), "```", ""]
    return "\n".join(lines)


def robustness_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of robustness_metrics rows: scores and their change from clean, in points."""
    lines = ["| corruption | accuracy | change | balanced accuracy | change |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        change = ("", "") if name == "none" else (f"{100 * row['accuracy_drop']:+.2f}",
                                                  f"{100 * row['balanced_accuracy_drop']:+.2f}")
        lines.append(f"| {name} | {_pct(row['accuracy'])} | {change[0]} | {_pct(row['balanced_accuracy'])} | {change[1]} |")
    return "\n".join(lines)


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """The seed's "Baseline vs Final" table, one row per evaluated weights."""
    lines = [
        "| weights | model | parameters | best val accuracy | best val loss | accuracy | balanced accuracy | macro F1 | ECE | training time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        minutes = m.get("best_performance", {}).get("training_seconds")
        lines.append(
            f"| {name} | {m['model']} | {m['parameters']:,} | {_best(m, 'val_acc', '.4f')} | {_best(m, 'val_loss', '.4f')} | "
            f"{_pct(m['accuracy'])} | {_pct(m['balanced_accuracy'])} | {m['macro']['f1']:.4f} | {m['ece']:.4f} | "
            f"{'n/a' if minutes is None else f'{minutes / 60:.1f} min'} |"
        )
    return "\n".join(lines)


def write_report(out: Path, results: dict[str, dict[str, Any]], title: str = "ferkit evaluation") -> Path:
    """Write out/report.md for one result (its files beside it) or several (each in out/<name>/)."""
    parts = [f"# {title}", ""]
    several = len(results) > 1
    if several:
        parts += [comparison_table(results), ""]
    for name, metrics in results.items():
        folder = out / name if several else out
        report = (folder / "classification_report.txt").read_text()
        parts.append(model_section(name, metrics, report, prefix=f"{name}/" if several else ""))
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
