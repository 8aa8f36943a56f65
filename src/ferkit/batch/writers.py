"""Writing prediction records as JSON lines, CSV or Parquet, resumable after an interruption.

A record is ``{"path", "faces": [...], "error"?}`` (see batch.finish). JSON lines keep one record
per line; CSV and Parquet flatten it to one row per face (one row with empty face fields for an
image with no face or an error).

Without ``resume`` the output is replaced. Resuming: the inputs already in the output are skipped
and new records are appended, so that each input's records are there exactly once. A line cut
short by the interruption is dropped first, and in a CSV file the last input's rows too (a cut
between two of its rows cannot be seen): that input is done again. Parquet files cannot be
appended to, so the records of a Parquet run are journaled to ``OUTPUT.partial.jsonl`` as they
come and the Parquet file is written (atomically) when the run ends; a resumed run counts the
journal's records as done, and drops those the Parquet file already holds (a run killed after
writing the Parquet file, before removing its journal).

The output is checked before any work: a folder, or a place that cannot be written, is a
FerkitError and nothing is left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ferkit.errors import ConfigError, FerkitError

FORMATS = ("json", "csv", "parquet")
BOX = ("x", "y", "w", "h")


def format_of(output: str | None, fmt: str | None) -> str:
    """The format asked for, else the output's suffix (.jsonl/.json, .csv, .parquet), else json."""
    if fmt:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower() if output else ""
    return {".csv": "csv", ".parquet": "parquet"}.get(suffix, "json")


def columns(labels: Sequence[str]) -> list[str]:
    return ["path", "face", *BOX, "emotion", "confidence", *(f"p_{n}" for n in labels), "detection_score", "error"]


def rows(record: dict[str, Any], labels: Sequence[str]) -> list[list[Any]]:
    """The flat rows of one record, in ``columns`` order."""
    empty = [None] * (len(BOX) + 2 + len(labels) + 1)
    if not record["faces"]:
        return [[record["path"], None, *empty, record.get("error")]]
    return [[record["path"], i, *face["box"], face["emotion"], face["confidence"],
             *(face["probabilities"][n] for n in labels), face["detection_score"], None]
            for i, face in enumerate(record["faces"])]


class RecordWriter:
    """Writes records to ``output`` (a file) or to ``stream`` (JSON lines or CSV only)."""

    def __init__(self, labels: Sequence[str], fmt: str, output: str | None = None, stream: IO[str] | None = None,
                 resume: bool = False) -> None:
        self.labels = list(labels)
        self.fmt = fmt
        self.output = Path(output) if output else None
        if fmt == "parquet" and self.output is None:
            raise ConfigError("Parquet needs a file: pass --output results.parquet")
        if resume and self.output is None:
            raise ConfigError("--resume needs --output: the file whose inputs are already done")
        self.resume = resume
        self.done: set[str] = set()
        self._csv: Any = None
        self._handle: IO[str]
        if self.output is None:
            self._handle = stream or sys.stdout
            self._text_header(new=True)
            return
        text_file = self._journal() if fmt == "parquet" else self.output
        _check_writable(self.output)
        if fmt == "parquet":
            _check_writable(text_file)
        if resume:
            self.done = self._done_paths(text_file)
        elif fmt == "parquet" and text_file.exists():
            text_file.unlink()
        new = not text_file.exists() or text_file.stat().st_size == 0
        try:
            self._handle = text_file.open("a" if resume else "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise FerkitError(f"{text_file}: cannot write ({exc.strerror}); choose another --output") from exc
        self._text_header(new=new or not resume)

    def _journal(self) -> Path:
        assert self.output is not None
        return self.output.with_name(self.output.name + ".partial.jsonl")

    def _text_header(self, new: bool) -> None:
        if self.fmt == "csv":
            self._csv = csv.writer(self._handle)
            if new:
                self._csv.writerow(columns(self.labels))

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "csv":
            for row in rows(record, self.labels):
                self._csv.writerow(["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in row])
        else:
            self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self.output is None:
            return
        self._handle.close()
        if self.fmt == "parquet":
            self._write_parquet()

    def _done_paths(self, text_file: Path) -> set[str]:
        """Paths already written, after removing what an interruption may have left incomplete
        (a last line cut short; a CSV file's last input; journaled records the Parquet file holds)."""
        done: set[str] = set()
        if self.fmt == "parquet" and self.output is not None and self.output.exists():
            done |= {str(p) for p in _parquet_column(self.output, "path")}
        if not text_file.exists():
            return done
        _drop_partial_line(text_file)
        if self.fmt == "csv":
            return done | _csv_done(text_file, columns(self.labels))
        kept = []
        with text_file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    path = json.loads(line)["path"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise FerkitError(f"{text_file}:{number}: not a ferkit record; write to a new file") from exc
                if path not in done:
                    kept.append(line)
                done.add(path)
        if self.fmt == "parquet":  # the journal keeps only what the Parquet file lacks
            partial = text_file.with_name(text_file.name + ".tmp")
            partial.write_text("".join(kept), encoding="utf-8")
            os.replace(partial, text_file)
        return done

    def _write_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self.output is not None
        schema = pa.schema([("path", pa.string()), ("face", pa.int32()), *((k, pa.int32()) for k in BOX),
                            ("emotion", pa.string()), ("confidence", pa.float64()),
                            *((f"p_{n}", pa.float64()) for n in self.labels), ("detection_score", pa.float64()),
                            ("error", pa.string())])
        partial = self.output.with_name(self.output.name + ".writing")
        with pq.ParquetWriter(partial, schema) as writer:
            if self.resume and self.output.exists():  # the rows written before come first
                for batch in pq.ParquetFile(self.output).iter_batches(batch_size=65536):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
            for chunk in _chunks(self._journal(), self.labels):
                writer.write_table(pa.Table.from_pylist([dict(zip(schema.names, row)) for row in chunk], schema))
        os.replace(partial, self.output)
        self._journal().unlink()


def _chunks(journal: Path, labels: Sequence[str], size: int = 20000) -> Iterator[list[list[Any]]]:
    chunk: list[list[Any]] = []
    with journal.open(encoding="utf-8") as handle:
        for line in handle:
            chunk.extend(rows(json.loads(line), labels))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _check_writable(path: Path) -> None:
    """A FerkitError now, before any work, unless ``path`` can be written as a file."""
    if path.is_dir():
        raise FerkitError(f"{path}: is a folder; give --output a file name (results.jsonl, .csv or .parquet)")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerkitError(f"{path}: cannot make its folder {parent} ({exc.strerror}); choose another --output") from exc
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise FerkitError(f"{path}: not writable; choose another --output")


def _csv_done(path: Path, header: list[str]) -> set[str]:
    """The inputs of a CSV output, after cutting off its last input's rows (an interruption may
    have stopped between two of them; that input is done again)."""
    done: list[str] = []
    with path.open("rb+") as handle:
        end = [0]

        def lines() -> Iterator[str]:
            while line := handle.readline():
                end[0] = handle.tell()
                yield line.decode("utf-8")

        reader = csv.reader(lines())
        first = next(reader, None)
        if first is None:
            return set()
        if first != header:
            raise FerkitError(f"{path}: its columns are not this model's; write to a new file")
        row_start, last_start = end[0], None
        for row in reader:
            if row and (not done or row[0] != done[-1]):
                done.append(row[0])
                last_start = row_start
            row_start = end[0]
        if last_start is not None:
            handle.truncate(last_start)
    return set(done[:-1])


def _parquet_column(path: Path, name: str) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=[name]).column(name).to_pylist()
    except Exception as exc:  # pyarrow raises several untyped errors for broken files
        raise FerkitError(f"{path}: not a readable Parquet file ({exc}); write to a new file") from exc


def _drop_partial_line(path: Path) -> None:
    """Cut a text file back to its last complete line (what an interruption may leave)."""
    with path.open("rb+") as handle:
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        data_end = size
        step = 4096
        while data_end > 0:
            start = max(0, data_end - step)
            handle.seek(start)
            block = handle.read(data_end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return
            data_end = start
        handle.truncate(0)
