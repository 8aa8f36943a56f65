from pathlib import Path

import pytest

from ferkit.cli import main


def test_models_lists_names_parameters_and_macs(capsys: pytest.CaptureFixture[str]):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    deep = next(line for line in out.splitlines() if line.startswith("deep_cnn"))
    assert deep.split() == ["deep_cnn", "5,873,096", "5,870,280", "2,816", "345,788,416"]
    assert "baseline_cnn" in out and "fernet" in out


def test_data_info_counts_per_split_and_class(ferplus_dir: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["data", "info", str(ferplus_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    train = next(line for line in lines if line.startswith("train"))
    # 24 faces, 3 per class, every one with a clear majority
    assert train.split() == ["train", "24", "24"] + ["3"] * 8


def test_errors_are_one_line_messages_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and "no such file or folder" in err and "Traceback" not in err
    assert main(["train"]) == 2
    assert "no data set given" in capsys.readouterr().err
