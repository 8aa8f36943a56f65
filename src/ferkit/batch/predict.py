"""`ferkit predict`: files, folders and globs in; one JSON line (or CSV / Parquet rows) per file out."""

from __future__ import annotations

import glob
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ferkit.data.images import IMAGE_SUFFIXES
from ferkit.errors import FerkitError
from ferkit.inference.outputs import unique_stems
from ferkit.inference.recognizer import Recognizer


def _image_entry(path: Path, recursive: bool) -> bool:
    """Whether a folder's entry is one of its images: a name with an image suffix, whether or not
    it can be read (a folder named x.jpg, a broken or looping link get an error record), except
    folders that a recursive listing goes into."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not (recursive and path.is_dir())


def expand_inputs(paths: Iterable[str], recursive: bool = False) -> list[tuple[str, str | None]]:
    """(path, error) pairs: files as given, folders' images, glob matches; an error for what
    matches nothing. Every entry gets a pair: one that cannot be read fails when it is decoded."""
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if _image_entry(p, recursive))
            if not found:
                out.append((raw, "folder has no images" + ("" if recursive else " (use --recursive for sub-folders)")))
            out.extend((str(p), None) for p in found)
        elif path.exists() or path.is_symlink():
            out.append((raw, None))
        elif glob.has_magic(raw):
            matches = sorted(m for m in glob.glob(raw, recursive=recursive)
                             if Path(m).is_file() or _image_entry(Path(m), recursive))
            if matches:
                out.extend((m, None) for m in matches)
            else:
                out.append((raw, "no file matches this pattern"))
        else:
            out.append((raw, "no such file or folder"))
    return out


def predict_files(recognizer: Recognizer, paths: Iterable[str], recursive: bool = False, fmt: str | None = None,
                  annotate_dir: str | None = None, stream: IO[str] | None = None, output: str | None = None,
                  resume: bool = False, workers: int = 1, engine: str = "local", address: str | None = None) -> int:
    """Write one record per input (JSON lines, or CSV/Parquet rows) to ``output`` or ``stream``;
    returns how many inputs could not be read.

    Args:
        workers: local engine: processes that decode and detect (1: all in this process).
        resume: skip the inputs already in ``output`` and append the rest.
        engine: "local", or "ray" (Ray Data on a local Ray or the cluster at ``address``).
    """
    from ferkit.batch.workers import predict_records
    from ferkit.batch.writers import RecordWriter, format_of

    writer = RecordWriter(recognizer.labels, format_of(output, fmt), output, stream, resume)
    todo = [(path, error) for path, error in expand_inputs(paths, recursive) if path not in writer.done]
    if engine == "ray":
        from ferkit.batch.ray_data import ray_records

        records = ray_records(recognizer, todo, address=address)
    elif engine == "local":
        records = predict_records(recognizer, todo, workers)
    else:
        raise FerkitError(f"unknown engine '{engine}'; choose local or ray")
    stems = unique_stems([path for path, error in todo if error is None]) if annotate_dir else {}
    if annotate_dir:
        Path(annotate_dir).mkdir(parents=True, exist_ok=True)
    failures = 0
    try:
        with tqdm(total=len(todo), desc="images", unit="img", disable=len(todo) < 2, file=sys.stderr) as bar:
            for record in records:
                writer.write(record)
                failures += "error" in record
                if annotate_dir and "error" not in record:
                    _annotate(record, Path(annotate_dir) / f"{stems[record['path']]}_annotated.png")
                bar.update()
    finally:
        writer.close()
    return failures


def _annotate(record: dict, target: Path) -> None:
    from PIL import Image

    from ferkit.inference.annotate import annotate
    from ferkit.inference.images import load_image_scaled
    from ferkit.inference.recognizer import FaceResult

    rgb, scale = load_image_scaled(record["path"])
    faces = [FaceResult(tuple(f["box"]), f["emotion"], f["confidence"], f["probabilities"], f["detection_score"])
             for f in record["faces"]]
    Image.fromarray(annotate(rgb, faces, box_scale=scale)).save(target)
