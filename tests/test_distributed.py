"""Lightning DDP on two CPU processes (gloo): the run folder is written once and is complete."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_ferplus

pytestmark = pytest.mark.slow


def test_two_process_ddp_run(tmp_path: Path):
    data = write_ferplus(tmp_path / "data", {"train": 128, "valid": 32, "test": 32})
    ferkit = Path(sys.executable).parent / "ferkit"
    env = {**os.environ, "FERKIT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [str(ferkit), "train", "--data", str(data), "--out", str(tmp_path / "runs"), "--name", "ddp",
         "--epochs", "2", "--batch-size", "16", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout
    assert result.stdout.count("run folder:") == 1
    history = json.loads((tmp_path / "runs" / "ddp" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert (tmp_path / "runs" / "ddp" / "weights.safetensors").is_file()
