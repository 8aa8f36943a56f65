"""`pip install ferkit` as a user does it: the wheel, no extras, a fresh virtual environment (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import ferkit

REPO = Path(__file__).resolve().parent.parent
PHOTO = Path(__file__).parent / "data" / "bbt3.jpg"
MAX_VENV_MB = 440  # 407 MB with a three-`fernet` `accurate` (its files: 29 MB); its ResNet adds 24 MB
MAX_INSTALL_S = 60


def _run(*command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command as a user's shell would: without this checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done


def _wheel(folder: Path) -> Path:
    """Build the wheel from a copy of the sources, so that no build folder is left in the checkout."""
    source = folder / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", source, "-w", folder / "wheels")
    [wheel] = (folder / "wheels").glob("ferkit-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_without_extras_in_a_minute_and_predicts_a_photo(tmp_path: Path):
    wheel = _wheel(tmp_path)
    inside = set(zipfile.ZipFile(wheel).namelist())
    bundled = {f"ferkit/weights/fast/{name}" for name in ("model.int8.onnx", "model.onnx", "model.json", "weights.safetensors")}
    app = {"ferkit/app/main.py", "ferkit/app/views/photo.py", "ferkit/app/examples/close-up.png", "ferkit/app/examples/group.jpg"}
    assert bundled | app | {"ferkit/py.typed"} <= inside

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    start = time.monotonic()
    _run(venv / "bin" / "pip", "install", "-q", wheel)
    seconds = time.monotonic() - start
    size_mb = int(_run("du", "-sm", venv).stdout.split()[0])
    assert seconds < MAX_INSTALL_S and size_mb <= MAX_VENV_MB, f"{seconds:.0f} s, {size_mb} MB"
    installed = _run(venv / "bin" / "python", "-c", "import importlib.util as u; "
                     "print([m for m in ('torch', 'lightning', 'matplotlib', 'scipy', 'pyarrow') if u.find_spec(m)])")
    assert installed.stdout.strip() == "[]"

    done = _run(venv / "bin" / "ferkit", "predict", PHOTO, timeout=120)
    [line] = done.stdout.splitlines()
    faces = json.loads(line)["faces"]
    expected = ferkit.load().analyze(PHOTO)  # this environment's default path: the same model and runtime
    assert len(faces) == len(expected) >= 3
    for face, want in zip(faces, expected):
        assert (tuple(face["box"]), face["emotion"]) == (want.box, want.emotion)
        assert face["probabilities"] == pytest.approx(want.probabilities, abs=1e-4)

    train = subprocess.run([venv / "bin" / "ferkit", "train", "--epochs", "1"], capture_output=True, text=True,
                           timeout=120, check=False, env={"PATH": os.environ["PATH"]})
    assert (train.returncode, train.stderr.strip()) == (
        2, "ferkit: error: 'ferkit train' needs the training extra: pip install 'ferkit[train]'")
