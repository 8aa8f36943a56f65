"""`ferkit predict`: files, folders and globs in; one JSON line (or CSV rows) per file out."""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ferkit.data.images import IMAGE_SUFFIXES
from ferkit.errors import FerkitError
from ferkit.inference.recognizer import Recognizer


def expand_inputs(paths: Iterable[str], recursive: bool = False) -> list[tuple[str, str | None]]:
    """(path, error) pairs: files as given, folders' images, glob matches; an error for what matches nothing."""
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                out.append((raw, "folder has no images" + ("" if recursive else " (use --recursive for sub-folders)")))
            out.extend((str(p), None) for p in found)
        elif path.exists():
            out.append((raw, None))
        elif glob.has_magic(raw):
            matches = sorted(m for m in glob.glob(raw, recursive=recursive) if Path(m).is_file())
            if matches:
                out.extend((m, None) for m in matches)
            else:
                out.append((raw, "no file matches this pattern"))
        else:
            out.append((raw, "no such file or folder"))
    return out


def predict_files(recognizer: Recognizer, paths: Iterable[str], recursive: bool = False, fmt: str = "json",
                  annotate_dir: str | None = None, stream: IO[str] | None = None) -> int:
    """Write results for every input to ``stream``; returns how many inputs failed."""
    import sys

    from ferkit.inference.annotate import annotate
    from ferkit.inference.outputs import unique_stems

    stream = stream or sys.stdout
    inputs = expand_inputs(paths, recursive)
    labels = recognizer.labels
    writer = None
    if fmt == "csv":
        writer = csv.writer(stream)
        writer.writerow(["path", "face", "x", "y", "w", "h", "emotion", "confidence", *(f"p_{n}" for n in labels), "error"])
    stems = unique_stems([path for path, error in inputs if error is None])
    if annotate_dir:
        Path(annotate_dir).mkdir(parents=True, exist_ok=True)
    failures = 0
    for path, error in tqdm(inputs, desc="images", unit="img", disable=len(inputs) < 2):
        faces = []
        if error is None:
            try:
                analysis = recognizer.analyze_image(path)
                faces = analysis.results
                if annotate_dir:
                    from PIL import Image

                    drawn = annotate(analysis.image, faces, box_scale=analysis.scale)
                    Image.fromarray(drawn).save(Path(annotate_dir) / f"{stems[path]}_annotated.png")
            except FerkitError as exc:
                error = str(exc)
        failures += error is not None
        if writer is None:
            record = {"path": path, "faces": [f.to_dict() for f in faces]}
            if error is not None:
                record["error"] = error
            stream.write(json.dumps(record) + "\n")
        elif error is not None or not faces:
            writer.writerow([path, "", "", "", "", "", "", "", *[""] * len(labels), error or ""])
        else:
            for i, f in enumerate(faces):
                writer.writerow([path, i, *f.box, f.emotion, f"{f.confidence:.6f}",
                                 *(f"{f.probabilities[n]:.6f}" for n in labels), ""])
        stream.flush()
    return failures
