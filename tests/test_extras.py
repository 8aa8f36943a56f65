"""The core install runs inference without any extra; everything else says which extra to install.

Missing extras are simulated in child processes whose imports of the extras' modules fail
(missing_modules.py); the real install without extras is tested in test_core_install.py (slow).
"""

from __future__ import annotations

import csv
import io
import json
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
from missing_modules import EXTRA_MODULES, REPO, json_without

from ferkit.extras import EXTRAS, Extra, MissingExtraError, extra_for, require

DATA = Path(__file__).parent / "data"
TRAIN = EXTRAS["train"].modules


def _message(feature: str, extra: str, title: str) -> str:
    return f"ferkit: error: {feature} needs the {title}: pip install 'ferkit[{extra}]'"


CORE_RUN = """
import contextlib, io, json, sys
import ferkit
from ferkit.cli import main

photo, clip = sys.argv[1], sys.argv[2]
rec = ferkit.load()
found = rec.analyze(photo)
answer = {"classifier": type(rec.classifier).__name__, "file": rec.classifier.path.name,
          "faces": [[f.emotion, f.box, f.probabilities] for f in found]}
for fmt in ("json", "csv"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        answer[fmt + "_status"] = main(["predict", photo, "--format", fmt])
    answer[fmt] = out.getvalue()
with contextlib.redirect_stdout(io.StringIO()):
    answer["video_status"] = main(["video", clip, "--csv", "timeline.csv", "--out", "annotated.mp4"])
answer["timeline"] = open("timeline.csv").read()
answer["torch_imported"] = "torch" in sys.modules
print(json.dumps(answer))
"""


def test_the_core_analyzes_predicts_and_runs_video_without_any_extra(tmp_path: Path):
    from test_video import _clip

    clip = _clip(tmp_path / "clip.mp4")
    got = json_without(EXTRA_MODULES, CORE_RUN, tmp_path, str(DATA / "amy1.png"), str(clip))
    assert (got["classifier"], got["file"], got["torch_imported"]) == ("OnnxClassifier", "model.int8.onnx", False)
    [(emotion, box, probabilities)] = got["faces"]
    assert emotion == "happiness"
    assert got["json_status"] == got["csv_status"] == got["video_status"] == 0
    [line] = got["json"].splitlines()
    [face] = json.loads(line)["faces"]
    assert (face["emotion"], face["box"]) == (emotion, box)
    assert face["probabilities"] == pytest.approx(probabilities, abs=1e-5)
    [row] = list(csv.DictReader(io.StringIO(got["csv"])))
    assert (row["emotion"], float(row["p_happiness"])) == ("happiness", pytest.approx(probabilities["happiness"], abs=1e-5))
    timeline = list(csv.DictReader(io.StringIO(got["timeline"])))
    assert len({r["frame"] for r in timeline}) == 12 and len({r["track_id"] for r in timeline}) == 5
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


RUN_COMMANDS = """
import contextlib, io, json, sys
from ferkit.cli import main

answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except BaseException as exc:  # an ImportError that got through, or argparse's exit
            status = f"{type(exc).__name__}: {exc}"
    answers.append([status, err.getvalue()])
print(json.dumps(answers))
"""
PHOTO = str(DATA / "amy1.png")
NO_EXTRAS, NO_RAY, NO_ONNX = "no extras", "no ray", "no onnx"
BLOCKED = {NO_EXTRAS: EXTRA_MODULES, NO_RAY: frozenset({"ray"}), NO_ONNX: frozenset({"onnx", "onnxscript"})}
CASES = [
    (NO_EXTRAS, ["train", "--epochs", "3", "--model", "fernet"], _message("'ferkit train'", "train", "training extra")),
    (NO_EXTRAS, ["models"], _message("'ferkit models'", "train", "training extra")),
    (NO_EXTRAS, ["evaluate", "--data", "ferplus.tar.gz"], _message("'ferkit evaluate'", "train", "training extra")),
    (NO_EXTRAS, ["calibrate", "--weights", "run", "--data", "ferplus.tar.gz"],
     _message("'ferkit calibrate'", "train", "training extra")),
    (NO_EXTRAS, ["explain", PHOTO], _message("'ferkit explain'", "train", "training extra")),
    (NO_EXTRAS, ["export", "model.onnx"], _message("'ferkit export'", "export", "export extra")),
    (NO_EXTRAS, ["app"], _message("'ferkit app'", "app", "app extra")),
    (NO_EXTRAS, ["serve"], _message("'ferkit serve'", "serve", "service extra")),
    (NO_EXTRAS, ["serve", "--ray"], _message("'ferkit serve'", "serve", "service extra")),
    (NO_EXTRAS, ["predict", PHOTO, "--output", "faces.parquet"], _message("'ferkit predict'", "parquet", "Parquet extra")),
    (NO_EXTRAS, ["predict", PHOTO, "--engine", "ray"], _message("'ferkit predict'", "ray", "Ray extra")),
    (NO_EXTRAS, ["video", "never-read.mp4", "--plot", "timeline.png"],
     _message("'ferkit video --plot'", "plot", "plotting extra")),
    (NO_RAY, ["serve", "--ray"], _message("'ferkit serve'", "ray", "Ray extra")),
    (NO_RAY, ["predict", PHOTO, "--engine", "ray"], _message("'ferkit predict'", "ray", "Ray extra")),
    (NO_ONNX, ["export", "model.onnx"], _message("'ferkit export'", "export", "export extra")),
]


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, tuple[str, ...]], tuple[object, str]]:
    """(blocked set, argv) -> (exit status, standard error): one child process per blocked set."""
    out: dict[tuple[str, tuple[str, ...]], tuple[object, str]] = {}
    for name, modules in BLOCKED.items():
        argvs = [argv for blocked, argv, _ in CASES if blocked == name]
        folder = tmp_path_factory.mktemp(name.replace(" ", "-"))
        got = json_without(modules, RUN_COMMANDS, folder, json.dumps(argvs))
        out.update({(name, tuple(argv)): (status, err) for argv, (status, err) in zip(argvs, got)})
    return out


@pytest.mark.parametrize(("blocked", "argv", "message"), CASES, ids=[f"{b}: {' '.join(a[:3])}" for b, a, _ in CASES])
def test_a_command_without_its_extra_names_the_extra_in_one_line(answers, blocked: str, argv: list[str], message: str):
    status, stderr = answers[blocked, tuple(argv)]
    assert "Traceback" not in stderr and "ImportError" not in stderr
    assert (status, stderr.strip().splitlines()[-1]) == (2, message)


def test_unknown_options_are_still_refused_while_the_training_options_are_known(capsys: pytest.CaptureFixture[str]):
    from ferkit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["predict", PHOTO, "--no-such-option"])
    assert exit_.value.code == 2 and "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


SERVICE_GRADCAM = """
import json, sys
from fastapi.testclient import TestClient
from ferkit.serve.app import create_app

photo = open(sys.argv[1], "rb").read()
with TestClient(create_app()) as client:
    plain = client.post("/v1/analyze", files={"file": ("amy1.png", photo, "image/png")})
    cam = client.post("/v1/analyze", params={"gradcam": "true"}, files={"file": ("amy1.png", photo, "image/png")})
print(json.dumps([plain.status_code, [f["emotion"] for f in plain.json()["faces"]], cam.status_code, cam.json()]))
"""


def test_the_service_answers_gradcam_without_torch_with_the_extra_to_install(tmp_path: Path):
    plain_status, emotions, status, body = json_without(TRAIN, SERVICE_GRADCAM, tmp_path, PHOTO)
    assert (plain_status, emotions) == (200, ["happiness"])  # the service itself needs no torch
    assert (status, body["error"]["code"]) == (501, "not_installed")
    assert body["error"]["message"] == "Grad-CAM needs the training extra: pip install 'ferkit[train]' on the server"


APP_GRADCAM = """
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
at.selectbox[0].set_value("close-up.png").run()
plain = at.get("image")[0].proto.imgs[0].url
next(t for t in at.sidebar.toggle if t.label == "Grad-CAM heatmaps").set_value(True).run()
print(json.dumps({"exceptions": [e.value for e in at.exception], "errors": [e.value for e in at.error],
                  "warnings": [w.value for w in at.warning], "same_image": at.get("image")[0].proto.imgs[0].url == plain,
                  "faces": [m.value for m in at.markdown if m.value.startswith("**Face ")]}))
"""


def test_the_app_gradcam_toggle_without_torch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("streamlit", reason="the web app needs streamlit (pip install ferkit[app])")
    monkeypatch.delenv("FERKIT_WEIGHTS", raising=False)  # the bundled model, on ONNX Runtime
    got = json_without(TRAIN, APP_GRADCAM, tmp_path, str(REPO / "src" / "ferkit" / "app" / "main.py"))
    assert got["exceptions"] == got["errors"] == []
    assert got["warnings"] == ["Grad-CAM needs the training extra: pip install 'ferkit[train]'"]
    assert got["same_image"] and len(got["faces"]) == 1  # the photo and its face are still shown, without heatmap


def test_require_and_extra_for(monkeypatch: pytest.MonkeyPatch):
    require("train", "Grad-CAM")  # this test environment has every extra
    monkeypatch.setitem(EXTRAS, "parquet", Extra("parquet", "Parquet extra", ("pyarrow", "no_such_module.inside")))
    with pytest.raises(MissingExtraError, match=re.escape("X needs the Parquet extra: pip install 'ferkit[parquet]'")):
        require("parquet", "X")
    assert extra_for(ModuleNotFoundError(name="matplotlib.pyplot")) == "plot"  # the smallest extra that has it
    assert extra_for(ModuleNotFoundError(name="matplotlib"), prefer=["train"]) == "train"
    assert extra_for(ModuleNotFoundError(name="torch"), prefer=["app"]) == "train"
    assert extra_for(ModuleNotFoundError(name="no_such_module")) is None
    assert extra_for(ImportError("cannot import name x")) is None


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _dist(requirement: str) -> str:
    return _normal(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])


def _closure(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """The distributions ``ferkit[extra]`` installs directly, its own ferkit[...] extras expanded."""
    out: set[str] = set()
    for requirement in extras[extra]:
        if requirement.startswith("ferkit["):
            for inner in requirement[len("ferkit["):-1].split(","):
                out |= _closure(inner, extras)
        else:
            out.add(_dist(requirement))
    return out


def test_the_extras_modules_are_what_pyproject_installs():
    project = _pyproject()
    extras = project["optional-dependencies"]
    owners = packages_distributions()  # module -> distributions, in this environment that has every extra
    core = {_dist(r) for r in project["dependencies"]}
    for extra in EXTRAS.values():
        installs = _closure(extra.name, extras)
        for module in extra.modules:
            assert {_normal(d) for d in owners[module]} & installs, f"ferkit[{extra.name}] does not install {module}"
        assert not installs & core, f"ferkit[{extra.name}] repeats core requirements"
    assert _closure("all", extras) >= set().union(*(_closure(name, extras) for name in EXTRAS))
    assert set(extras) - set(EXTRAS) == {"all", "dev", "tensorboard"}
    assert not {"torch", "lightning", "scikit-learn", "matplotlib", "pyarrow", "scipy", "captum"} & core
