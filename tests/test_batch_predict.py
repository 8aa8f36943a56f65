"""Batch prediction: parallel workers, JSON lines / CSV / Parquet, resuming an interrupted run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from ferkit.batch import writers
from ferkit.cli import main

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 inputs: photos with 1 and 5 faces at several sizes, a face-less image and a broken file."""
    root = tmp_path_factory.mktemp("photos")
    group, close_up = Image.open(DATA / "bbt3.jpg").convert("RGB"), Image.open(DATA / "amy1.png").convert("RGB")
    for i in range(5):
        group.resize((int(group.width * (0.9 + 0.1 * i)), int(group.height * (0.9 + 0.1 * i)))).save(root / f"g{i}.jpg")
        frame = Image.new("RGB", (320, 240), (40 * i, 90, 120))
        frame.paste(close_up.resize((90 + 10 * i, 90 + 10 * i)), (20 * i, 10 * i))
        frame.save(root / f"c{i}.png")
    Image.new("RGB", (200, 150), (128, 128, 128)).save(root / "blank.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _run(*args: str) -> int:
    return main(["predict", *args])


def test_workers_give_the_same_records_as_one_process(folder: Path, tmp_path: Path):
    assert _run(str(folder), "--workers", "1", "--output", str(tmp_path / "one.jsonl")) == 0
    assert _run(str(folder), "--workers", "2", "--output", str(tmp_path / "two.jsonl")) == 0
    one = (tmp_path / "one.jsonl").read_text()
    assert one == (tmp_path / "two.jsonl").read_text()
    records = [json.loads(line) for line in one.splitlines()]
    assert [Path(r["path"]).name for r in records] == sorted(p.name for p in folder.iterdir())
    by_name = {Path(r["path"]).name: r for r in records}
    assert len(by_name["g0.jpg"]["faces"]) == 5 and len(by_name["c3.png"]["faces"]) == 1
    assert by_name["blank.png"]["faces"] == [] and "error" not in by_name["blank.png"]
    assert "not an image" in by_name["broken.jpg"]["error"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_after_a_kill_mid_line_gives_the_uninterrupted_output(folder: Path, tmp_path: Path, suffix: str):
    full = tmp_path / f"full{suffix}"
    assert _run(str(folder), "--output", str(full), "--workers", "1") == 0
    text = full.read_text()
    cut = tmp_path / f"cut{suffix}"
    lines = text.splitlines(keepends=True)
    cut.write_text("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])  # killed while writing line 7
    assert _run(str(folder), "--output", str(cut), "--resume", "--workers", "1") == 0
    assert cut.read_text() == text
    assert _run(str(folder), "--output", str(cut), "--resume") == 0  # nothing left to do: unchanged
    assert cut.read_text() == text


def test_parquet_resume_after_an_interruption(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    full, cut = tmp_path / "full.parquet", tmp_path / "cut.parquet"
    assert _run(str(folder), "--output", str(full), "--workers", "1") == 0
    table = pq.read_table(full)
    assert table.column_names[:3] == ["path", "face", "x"] and table.num_rows == 5 * 5 + 5 + 2
    original, calls = writers.RecordWriter.write, []

    def interrupted(self: writers.RecordWriter, record: dict) -> None:
        calls.append(record["path"])
        if len(calls) == 5:
            raise KeyboardInterrupt
        original(self, record)

    monkeypatch.setattr(writers.RecordWriter, "write", interrupted)
    assert _run(str(folder), "--output", str(cut), "--workers", "1") == 130
    assert pq.read_table(cut).num_rows < table.num_rows  # what was done before the interruption is kept
    monkeypatch.setattr(writers.RecordWriter, "write", original)
    assert _run(str(folder), "--output", str(cut), "--resume", "--workers", "1") == 0
    assert pq.read_table(cut).equals(table)
    assert not (tmp_path / "cut.parquet.partial.jsonl").exists()


def test_a_killed_parquet_run_resumes_from_its_journal(folder: Path, tmp_path: Path):
    full, cut = tmp_path / "full.parquet", tmp_path / "cut.parquet"
    assert _run(str(folder), "--output", str(full), "--workers", "1") == 0
    assert _run(str(folder), "--output", str(tmp_path / "all.jsonl"), "--workers", "1") == 0
    lines = (tmp_path / "all.jsonl").read_text().splitlines(keepends=True)
    journal = tmp_path / "cut.parquet.partial.jsonl"  # what a killed run leaves: the journal, no Parquet
    journal.write_text("".join(lines[:4]) + lines[4][:30])
    assert _run(str(folder), "--output", str(cut), "--resume", "--workers", "1") == 0
    assert pq.read_table(cut).equals(pq.read_table(full))


def test_output_errors_are_clear(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _run(str(folder), "--format", "parquet") == 2
    assert "Parquet needs a file" in capsys.readouterr().err
    assert _run(str(folder), "--resume") == 2
    (tmp_path / "other.jsonl").write_text('{"something": "else"}\n')
    assert _run(str(folder), "--output", str(tmp_path / "other.jsonl"), "--resume") == 2
    assert "not a ferkit record" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine(folder: Path, tmp_path: Path):
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'ferkit[ray]'")
    import ray

    many = tmp_path / "many"
    many.mkdir()
    for i in range(4):  # ~50 inputs
        for image in folder.iterdir():
            shutil.copy(image, many / f"{i}_{image.name}")
    assert _run(str(many), "--output", str(tmp_path / "local.jsonl"), "--workers", "2") == 0
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        assert _run(str(many), "--engine", "ray", "--output", str(tmp_path / "ray.jsonl")) == 0
    finally:
        ray.shutdown()
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    assert len((tmp_path / "local.jsonl").read_text().splitlines()) == 48


@pytest.mark.slow
def test_videos_on_ray_write_one_timeline_each(tmp_path: Path):
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'ferkit[ray]'")
    import cv2
    import numpy as np
    import ray

    from ferkit.batch.ray_data import process_videos

    face = cv2.cvtColor(np.asarray(Image.open(DATA / "amy1.png").convert("RGB")), cv2.COLOR_RGB2BGR)
    clips = []
    for name, frames in (("a.avi", 12), ("b.avi", 8)):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
        for i in range(frames):
            frame = np.full((240, 320, 3), 80, np.uint8)
            frame[40:190, 20 + 5 * i : 170 + 5 * i] = face
            writer.write(frame)
        writer.release()
        clips.append(str(tmp_path / name))
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        results = process_videos([*clips, str(tmp_path / "broken.avi")], tmp_path / "timelines")
    finally:
        ray.shutdown()
    assert [r["frames"] for r in results[:2]] == [12, 8] and [r["tracks"] for r in results[:2]] == [1, 1]
    assert "error" in results[2]
    rows = (tmp_path / "timelines" / "a.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and "happiness" in rows[1]


def test_a_rerun_without_resume_replaces_the_output(folder: Path, tmp_path: Path):
    out = tmp_path / "r.parquet"
    counts = []
    for _ in range(3):
        assert _run(str(folder), "--output", str(out), "--workers", "1") == 0
        counts.append(pq.read_table(out).num_rows)
    assert counts == [5 * 5 + 5 + 2] * 3
    assert _run(str(folder), "--output", str(out), "--resume", "--workers", "1") == 0  # nothing left to do
    assert pq.read_table(out).num_rows == counts[0]


def test_csv_resume_after_a_cut_inside_one_images_rows(folder: Path, tmp_path: Path):
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    assert _run(str(folder), "--output", str(full), "--workers", "1") == 0
    lines = full.read_text().splitlines(keepends=True)
    g0 = [i for i, line in enumerate(lines) if line.startswith(str(folder / "g0.jpg"))]
    assert len(g0) == 5
    cut.write_text("".join(lines[: g0[1]]))  # the header, the inputs before g0, and one of g0's five faces
    assert _run(str(folder), "--output", str(cut), "--resume", "--workers", "1") == 0
    assert cut.read_text() == full.read_text()


def test_a_finished_parquet_beside_a_leftover_journal_resumes_without_duplicates(folder: Path, tmp_path: Path):
    full, out = tmp_path / "full.parquet", tmp_path / "out.parquet"
    assert _run(str(folder), "--output", str(full), "--workers", "1") == 0
    assert _run(str(folder), "--output", str(tmp_path / "all.jsonl"), "--workers", "1") == 0
    shutil.copyfile(full, out)  # killed after the Parquet file was written, before its journal was removed
    (tmp_path / "out.parquet.partial.jsonl").write_text((tmp_path / "all.jsonl").read_text())
    assert _run(str(folder), "--output", str(out), "--resume", "--workers", "1") == 0
    assert pq.read_table(out).equals(pq.read_table(full))
    assert not (tmp_path / "out.parquet.partial.jsonl").exists()


@pytest.mark.parametrize("name", ["a folder", "a folder.parquet", "a folder.csv", "under a file/r.jsonl",
                                  "under a file/r.parquet"])
def test_an_unwritable_output_is_refused_before_any_work(folder: Path, tmp_path: Path, name: str,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch):
    from ferkit.batch import workers as batch

    (tmp_path / "a folder").mkdir()
    (tmp_path / "a folder.parquet").mkdir()
    (tmp_path / "a folder.csv").mkdir()
    (tmp_path / "under a file").write_text("a file, not a folder")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    worked = []
    monkeypatch.setattr(batch, "prepare", lambda *args: worked.append(args))
    assert _run(str(folder), "--output", str(tmp_path / name)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and "Traceback" not in err and (
        "is a folder" in err or "cannot make its folder" in err), err
    assert worked == [] and sorted(p.name for p in tmp_path.rglob("*")) == before


def test_every_entry_of_a_folder_gets_a_record(folder: Path, tmp_path: Path):
    inputs = tmp_path / "in"
    shutil.copytree(folder, inputs)
    (inputs / "x.jpg").mkdir()
    (inputs / "loop1.png").symlink_to(inputs / "loop2.png")
    (inputs / "loop2.png").symlink_to(inputs / "loop1.png")
    (inputs / "gone.jpg").symlink_to(inputs / "nowhere.jpg")
    assert _run(str(inputs), "--output", str(tmp_path / "r.jsonl"), "--workers", "1") == 0
    records = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert len(records) == 12 + 4
    assert "is a folder" in records["x.jpg"]["error"]
    for name in ("loop1.png", "loop2.png", "gone.jpg"):
        assert "a link that leads nowhere or loops" in records[name]["error"]
    assert len(records["g0.jpg"]["faces"]) == 5


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Path:
    """48 small inputs (two classifier groups: 32, then 16): the close-ups above under other names."""
    root = tmp_path_factory.mktemp("many")
    sources = sorted(folder.glob("c*.png"))
    for i in range(48):
        shutil.copyfile(sources[i % len(sources)], root / f"{i:02d}.png")
    return root


def _ferkit(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-c", "import sys; from ferkit.cli import main; sys.exit(main())", *args]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_output(many: Path, tmp_path: Path, suffix: str):
    import os
    import signal
    import subprocess
    import time

    full, out = tmp_path / f"full{suffix}", tmp_path / f"out{suffix}"
    assert _run(str(many), "--output", str(full), "--workers", "1") == 0
    written = out.with_name(out.name + ".partial.jsonl") if suffix == ".parquet" else out
    run = subprocess.Popen(_ferkit("predict", str(many), "--output", str(out)), env={**os.environ},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (written.exists() and written.stat().st_size > 200) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL  # killed before it finished: the first group written, not the last
    assert not (suffix == ".parquet" and out.exists())
    assert _run(str(many), "--output", str(out), "--resume", "--workers", "1") == 0
    if suffix == ".parquet":
        assert pq.read_table(out).equals(pq.read_table(full))
    else:
        assert out.read_text() == full.read_text()


def test_a_closed_pipe_ends_quietly(many: Path):
    import shlex
    import subprocess

    command = shlex.join(_ferkit("predict", str(many))) + ' | head -1; echo "exit ${PIPESTATUS[0]}"'
    done = subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=300)
    first, status = done.stdout.splitlines()
    assert json.loads(first)["path"] == str(many / "00.png") and status == "exit 141"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
