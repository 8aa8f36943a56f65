"""The source repository's evaluation files (reports/NAME/, MODEL_CARD.md) for the model page.

They sit beside src/, outside the package: an install from a wheel has none of them, and the page
shows what model.json carries instead (its FER+ test metrics, measured with the torch weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The repository root when ferkit runs from a source checkout (src/ferkit/app/reports.py).
SOURCE_ROOT = Path(__file__).resolve().parents[3]


def source_file(*parts: str) -> Path | None:
    """A file or folder of the source repository, or None where it is absent (an installed package)."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file() or not (SOURCE_ROOT / "src" / "ferkit").is_dir():
        return None
    path = SOURCE_ROOT.joinpath(*parts)
    return path if path.exists() else None


def report_folder(model: str) -> Path | None:
    """reports/MODEL: the evaluation plots and metrics.json of a bundled model, or None."""
    return source_file("reports", model)


def int8_test_scores(model: str, prior: str) -> dict[str, Any] | None:
    """FER+ test accuracy, balanced accuracy and ECE of a bundled model's int8 ONNX file for ``prior``
    (reports/MODEL/onnx.json, written by scripts/ship_onnx.py), or None where absent."""
    file = source_file("reports", model, "onnx.json")
    if file is None:
        return None
    int8 = json.loads(file.read_text()).get("int8") or {}
    scores = int8.get("clean") if prior == "train" else (int8.get(prior) or {}).get("clean")
    return scores if isinstance(scores, dict) else None
