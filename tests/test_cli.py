from pathlib import Path

import pytest

from ferkit.cli import main
from ferkit.detection import DetectorOptions
from ferkit.inference.bundled import DEFAULT_MODEL


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



def test_serve_options_show_serve_settings_defaults_and_leave_them_to_it():
    """Every `ferkit serve` setting option defaults to None (its FERKIT_SERVE_* variable, else the
    ServeSettings field default applies) and its help states that field default."""
    import argparse

    from ferkit.cli import build_parser
    from ferkit.serve.settings import ServeSettings

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.dest: a for a in commands.choices["serve"]._actions}
    d = ServeSettings()
    shown = {"max_upload_mb": f"{d.max_upload_mb:g}", "max_pixels": f"{d.max_pixels:,}", "timeout": f"{d.timeout_s:g}",
             "max_batch_images": d.max_batch_images, "queue_size": d.queue_size, "batch_wait_ms": f"{d.batch_wait_ms:g}",
             "max_batch_faces": d.max_batch_faces, "detect_size": d.detect_size, "prior": d.prior}
    for dest, text in shown.items():
        assert options[dest].default is None
        assert f"default {text})" in options[dest].help.replace("default: ", "default "), dest
    assert d.detect_size == DetectorOptions().max_side and d.model == DEFAULT_MODEL  # one definition each


def test_serve_refuses_tampered_weights_in_one_line_before_any_worker_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    import shutil

    import ferkit.serve.server

    started: list[object] = []
    monkeypatch.setattr(ferkit.serve.server, "run", lambda *args, **kwargs: started.append(args))
    folder = shutil.copytree(Path(ferkit.serve.server.__file__).parent.parent / "weights" / DEFAULT_MODEL,
                             tmp_path / "mine")
    assert main(["serve", "--model", str(folder)]) == 0 and len(started) == 1  # intact: the server starts
    for weights in [*folder.glob("*.onnx"), folder / "weights.safetensors"]:  # whichever the default runs
        with weights.open("ab") as handle:
            handle.write(b"\0")
    assert main(["serve", "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and "sha256 differs" in err and "Traceback" not in err
    assert len(started) == 1
