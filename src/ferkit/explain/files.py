"""`ferkit explain`: Grad-CAM overlays for photographs (faces detected) or 48x48 face crops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data.images import read_face
from ferkit.errors import FerkitError
from ferkit.explain.cli_figures import all_classes_figure, explanation_figure
from ferkit.explain.faces import explain_crops, gradcam_overlay
from ferkit.inference.annotate import annotate
from ferkit.inference.outputs import unique_stems
from ferkit.inference.recognizer import Recognizer

#: Images no larger than this (longer side, pixels) with no face detected are taken as face crops.
CROP_ONLY_SIDE = 96


@dataclass(frozen=True)
class Explained:
    """What explain_files did for one input: each face's (emotion, probability) and the file written."""

    path: str
    faces: list[tuple[str, float]]
    target: Path | None = None
    error: str | None = None


def explain_files(rec: Recognizer, paths: Sequence[str | Path], out: str | Path,
                  all_classes: bool = False) -> list[Explained]:
    """Write a Grad-CAM overlay per input into ``out`` (named uniquely per input), and with
    ``all_classes`` one panel per emotion per face. ``rec`` needs the torch backend."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stems = unique_stems([str(p) for p in paths])
    return [_explain_one(rec, Path(path), out, stems[str(path)], all_classes) for path in paths]


def _explain_one(rec: Recognizer, path: Path, out: Path, stem: str, all_classes: bool) -> Explained:
    names = rec.labels
    try:
        analysis = rec.analyze_image(path)
        crop_only = not analysis.faces and max(analysis.image.shape[:2]) <= CROP_ONLY_SIDE
        crops = read_face(path, resize=True)[None] if crop_only else analysis.crops
    except FerkitError as exc:
        return Explained(str(path), [], error=str(exc))
    if not len(crops):
        return Explained(str(path), [])
    target = out / f"{stem}_gradcam.png"
    probs = rec.classify(crops)
    if crop_only:
        k = int(probs[0].argmax())
        figure = explanation_figure(crops[0], explain_crops(rec.classifier, crops, [k])[0], f"{names[k]} ({probs[0, k]:.2f})")
        figure.savefig(target, dpi=110)
    else:
        drawn = annotate(gradcam_overlay(rec, analysis), analysis.results, bars=False, box_scale=analysis.scale)
        Image.fromarray(drawn).save(target)
    if all_classes:
        for i, row in enumerate(probs):
            maps = np.concatenate([explain_crops(rec.classifier, crops[i : i + 1], [c]) for c in range(len(names))])
            all_classes_figure(crops[i], maps, row, names).savefig(out / f"{stem}_face{i + 1}_all_classes.png", dpi=110)
    return Explained(str(path), [(names[int(r.argmax())], float(r.max())) for r in probs], target)
