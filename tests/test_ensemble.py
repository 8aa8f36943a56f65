"""Ensembles: the network averages its members' log-probabilities over each face and its mirror
image; `ferkit ensemble` joins trained runs into one calibrated weights folder that every backend runs."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ferkit
from ferkit.cli import main
from ferkit.errors import ConfigError
from ferkit.explain import gradcam
from ferkit.inference.bundled import bundled_weights
from ferkit.inference.checkpoint import load_model
from ferkit.inference.classifier import FaceClassifier
from ferkit.models import count_parameters, create_model, list_models
from ferkit.models.ensemble import Ensemble, member_spec

SMALL = member_spec("fernet", {"widths": [8, 8, 16, 16], "depths": [1, 1, 1]})
OTHER = member_spec("fernet", {"widths": [8, 16, 16, 24], "depths": [0, 1, 1]})


def _ensemble(mirror: bool = True) -> Ensemble:
    torch.manual_seed(0)
    model = create_model("ensemble", members=[SMALL, OTHER], mirror=mirror).eval()
    assert isinstance(model, Ensemble)
    return model


def test_the_output_is_the_members_mean_log_probability_over_the_face_and_its_mirror():
    model, x = _ensemble(), torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        expected = torch.stack([
            (F.log_softmax(m(x), dim=1) + F.log_softmax(m(x.flip(-1)), dim=1)) / 2 for m in model.members
        ]).mean(dim=0)
        out = model(x)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(model(x.flip(-1)), out, rtol=0, atol=1e-5)  # mirror-invariant by construction
        plain = _ensemble(mirror=False)(x)
        assert not torch.allclose(plain, out, atol=1e-3)
        torch.testing.assert_close(plain, torch.stack([F.log_softmax(m(x), 1) for m in model.members]).mean(0),
                                   rtol=0, atol=1e-5)


def test_weights_scale_each_members_log_probability_and_stay_out_of_the_weights_file():
    torch.manual_seed(0)
    weighted = create_model("ensemble", members=[SMALL, OTHER], mirror=False, weights=[3, 1]).eval()
    assert isinstance(weighted, Ensemble)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        first, second = (F.log_softmax(m(x), dim=1) for m in weighted.members)
        torch.testing.assert_close(weighted(x), 0.75 * first + 0.25 * second, rtol=0, atol=1e-5)
        alike = _ensemble(mirror=False)  # same seed: the same networks
        alike.load_state_dict(weighted.state_dict(), strict=True)  # the weights are no tensor of the file
        torch.testing.assert_close(alike(x), (first + second) / 2, rtol=0, atol=1e-5)
        assert not torch.allclose(alike(x), weighted(x), atol=1e-3)
    for weights, error in [([1], "needs 2 weights"), ([1, 1, 1], "needs 2 weights"), ("31", "needs 2 weights"),
                           ([1, 0], "positive and finite"), ([1, -2], "positive and finite"),
                           ([1, float("nan")], "positive and finite"), ([1, float("inf")], "positive and finite"),
                           ([1e308, 1e308], "positive and finite"), ([1, "a"], "are numbers")]:
        with pytest.raises(ConfigError, match=error):
            create_model("ensemble", members=[SMALL, OTHER], weights=weights)


def test_the_average_stays_in_float32_under_autocast():
    """A distillation teacher runs inside bf16 autocast: the members may, the weighting may not."""
    torch.manual_seed(0)
    model = create_model("ensemble", members=[SMALL, OTHER], mirror=False, weights=[3, 1]).eval()
    x = torch.randn(6, 1, 48, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        parts = [F.log_softmax(m(x).float(), dim=1).double() for m in model.members]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), 0.75 * parts[0] + 0.25 * parts[1], rtol=0, atol=1e-5)


def test_members_are_checked():
    with pytest.raises(ConfigError, match="at least one member"):
        create_model("ensemble")
    with pytest.raises(ConfigError, match="cannot itself be an ensemble"):
        create_model("ensemble", members=[member_spec("ensemble", {"members": [SMALL]})])
    with pytest.raises(ConfigError, match="an ensemble member is"):
        create_model("ensemble", members=["fernet"])
    assert "ensemble" not in list_models()  # not an architecture to train or list


def test_gradcam_explains_the_ensembles_decision_on_its_first_members_layer():
    model, x = _ensemble(), torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    maps = gradcam(model, x)
    assert maps.shape == (2, 48, 48) and 0 <= maps.min() and maps.max() <= 1
    np.testing.assert_allclose(maps, gradcam(model.members[0], x, target=predicted.tolist()), atol=1e-6)


@pytest.fixture(scope="module")
def ensemble_run(trained_run: Path, smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ferkit.data import load_dataset
    from ferkit.training.ensemble import build_ensemble

    data = load_dataset(smoke_data, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return build_ensemble([trained_run, "fast"], tmp_path_factory.mktemp("ens") / "ens", data)


def test_an_ensemble_run_holds_its_members_and_is_calibrated(ensemble_run: Path, trained_run: Path):
    meta = load_model(ensemble_run).metadata
    members = [load_model(trained_run).metadata, load_model(bundled_weights("fast")).metadata]
    assert [m["sha256"] for m in meta["members"]] == [m["sha256"] for m in members]
    assert meta["model_kwargs"] == {"members": [member_spec(m["model"], m["model_kwargs"]) for m in members],
                                    "mirror": True}
    assert meta["calibration"]["fitted_on"] == "valid" and "uniform_prior" in meta
    assert meta["parameters_total"] == sum(count_parameters(load_model(m).model).total for m in (trained_run, bundled_weights("fast")))


def test_an_ensemble_run_computes_what_its_members_compute(ensemble_run: Path, trained_run: Path):
    faces = np.random.default_rng(1).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    members = [FaceClassifier.from_path(trained_run), ferkit.load("fast", backend="torch").classifier]

    def log_probs(classifier: FaceClassifier, images: np.ndarray) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(classifier.raw_logits(images)).double(), dim=1).numpy()

    expected = np.mean([(log_probs(m, faces) + log_probs(m, faces[..., ::-1])) / 2 for m in members], axis=0)
    torch_backend = FaceClassifier.from_path(ensemble_run)
    np.testing.assert_allclose(torch_backend.raw_logits(faces), expected, atol=1e-4)
    tta = FaceClassifier.from_path(ensemble_run, tta=True)  # TTA would only repeat the mirror inside
    assert tta.mirrored_inside and not members[0].mirrored_inside
    np.testing.assert_array_equal(tta.raw_logits(faces), torch_backend.raw_logits(faces))


def test_an_ensemble_joined_with_a_run_adds_its_members_one_by_one(ensemble_run: Path, trained_run: Path,
                                                                  smoke_data: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture):
    from ferkit.data import load_dataset
    from ferkit.training.ensemble import build_ensemble

    data = load_dataset(smoke_data, cache_dir=tmp_path / "cache", progress=False)
    grown = load_model(build_ensemble([ensemble_run, trained_run], tmp_path / "grown", data))
    inner = load_model(ensemble_run)
    assert [m["sha256"] for m in grown.metadata["members"]] == [m["sha256"] for m in inner.metadata["members"]] + [
        load_model(trained_run).metadata["sha256"]]
    assert grown.metadata["model_kwargs"]["members"] == inner.metadata["model_kwargs"]["members"] + [
        member_spec(load_model(trained_run).metadata["model"], load_model(trained_run).metadata["model_kwargs"])]
    assert isinstance(grown.model, Ensemble) and len(grown.model.members) == 3
    assert [m.get("via") for m in grown.metadata["members"]] == [f"{ensemble_run} (member 1)",
                                                                 f"{ensemble_run} (member 2)", None]
    assert "the same network joins the ensemble 2 times" in caplog.text  # trained_run is in both
    faces = torch.rand(4, 1, 48, 48)
    networks = [*inner.model.members, load_model(trained_run).model.eval()]
    with torch.no_grad():  # the mean over three networks, not of the inner ensemble and the run
        expected = torch.stack([F.log_softmax(torch.cat([m(faces), m(faces.flip(-1))]), dim=1).view(2, 4, -1).mean(0)
                                for m in networks]).mean(0)
        np.testing.assert_allclose(grown.model.eval()(faces), expected, atol=1e-5)
    caplog.clear()  # the networks of a mirrored ensemble may join one without mirror images: the plain mean
    plain = load_model(build_ensemble([ensemble_run, trained_run], tmp_path / "plain", data, mirror=False))
    assert "averages with mirror images; its networks join an ensemble without them" in caplog.text
    assert plain.metadata["model_kwargs"]["mirror"] is False and "calibration" in plain.metadata
    with torch.no_grad():
        expected = torch.stack([F.log_softmax(m(faces), dim=1) for m in networks]).mean(0)
        np.testing.assert_allclose(plain.model.eval()(faces), expected, atol=1e-5)


def test_source_colon_numbers_picks_an_ensembles_networks(ensemble_run: Path, trained_run: Path, smoke_data: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    inner = load_model(ensemble_run)  # networks: trained_run, fast
    fast = load_model(bundled_weights("fast"))
    out = tmp_path / "swapped"  # fast alone, then the run: the order given, not the inner one
    assert main(["ensemble", f"{ensemble_run}:2", str(trained_run), "--out", str(out), "--data", str(smoke_data)]) == 0
    swapped = load_model(out)
    assert [m["sha256"] for m in swapped.metadata["members"]] == [inner.metadata["members"][1]["sha256"],
                                                                  load_model(trained_run).metadata["sha256"]]
    assert swapped.metadata["members"][0]["via"] == f"{ensemble_run} (member 2)"
    faces = torch.rand(3, 1, 48, 48)
    with torch.no_grad():  # the picked network is fast's own, weights and all
        np.testing.assert_allclose(swapped.model.members[0].eval()(faces), fast.model.eval()(faces), atol=1e-6)
    out = tmp_path / "reversed"  # one ensemble's networks alone, reordered, make an ensemble too
    assert main(["ensemble", f"{ensemble_run}:2,1", "--out", str(out), "--data", str(smoke_data)]) == 0
    assert [m["sha256"] for m in load_model(out).metadata["members"]] == [
        inner.metadata["members"][i]["sha256"] for i in (1, 0)]
    for members, error in [([f"{ensemble_run}:3", "fast"], "has 2 networks; cannot pick network 3"),
                           ([f"{trained_run}:1", "fast"], "is one network, not an ensemble"),
                           ([f"{ensemble_run}:1"], "at least two members")]:
        assert main(["ensemble", *members, "--out", str(tmp_path / "refused"), "--data", str(smoke_data)]) == 2
        assert error in capsys.readouterr().err
        assert not (tmp_path / "refused").exists()


def test_the_ensemble_command_bounds_what_the_logit_adjustment_costs(ensemble_run: Path, trained_run: Path,
                                                                    smoke_data: Path, tmp_path: Path):
    out = tmp_path / "strict"
    assert main(["ensemble", str(trained_run), "fast", "--out", str(out), "--data", str(smoke_data),
                 "--max-accuracy-drop", "0"]) == 0
    record = load_model(out).metadata["calibration"]
    assert record["max_accuracy_drop"] == 0 and record["accuracy_after"] >= record["accuracy_before"]
    from ferkit.training.calibrate import MAX_ACCURACY_DROP

    assert load_model(ensemble_run).metadata["calibration"]["max_accuracy_drop"] == MAX_ACCURACY_DROP > 0


def test_an_ensemble_exports_to_onnx_and_runs_there_as_in_torch(ensemble_run: Path, tmp_path: Path):
    from ferkit.inference.onnx_backend import OnnxClassifier, export_onnx

    faces = np.random.default_rng(2).integers(0, 256, (7, 48, 48), dtype=np.uint8)
    onnx = OnnxClassifier(export_onnx(ensemble_run, ensemble_run / "model.onnx"))
    np.testing.assert_allclose(onnx.probabilities(faces), FaceClassifier.from_path(ensemble_run).probabilities(faces),
                               atol=1e-5)
    assert ferkit.load(ensemble_run).classifier.path == ensemble_run / "model.onnx"


def test_the_ensemble_command_weighs_networks_as_told_in_every_backend(ensemble_run: Path, trained_run: Path,
                                                                       smoke_data: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       caplog: pytest.LogCaptureFixture):
    from ferkit.data import load_dataset
    from ferkit.inference.onnx_backend import OnnxClassifier, export_onnx, quantize_int8
    from ferkit.training.ensemble import build_ensemble

    out = tmp_path / "weighted"
    assert main(["ensemble", str(trained_run), "fast", "--weights", "1,3", "--out", str(out), "--data",
                 str(smoke_data)]) == 0
    weighted = load_model(out)
    assert weighted.metadata["model_kwargs"]["weights"] == [1.0, 3.0] and "calibration" in weighted.metadata
    faces = torch.rand(3, 1, 48, 48)
    networks = [load_model(trained_run).model.eval(), load_model(bundled_weights("fast")).model.eval()]
    with torch.no_grad():
        run_part, fast_part = (F.log_softmax(torch.cat([m(faces), m(faces.flip(-1))]), dim=1).view(2, 3, -1).mean(0)
                               for m in networks)
        np.testing.assert_allclose(weighted.model.eval()(faces), 0.25 * run_part + 0.75 * fast_part, atol=1e-5)
    images = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    onnx = OnnxClassifier(export_onnx(out, out / "model.onnx"))  # the weights are in the exported graph too
    np.testing.assert_allclose(onnx.probabilities(images), FaceClassifier.from_path(out).probabilities(images), atol=1e-5)
    calibration = np.random.default_rng(4).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    int8 = OnnxClassifier(quantize_int8(out / "model.onnx", out / "model.int8.onnx", calibration))
    many = np.random.default_rng(5).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    logits = int8.raw_logits(many)  # combined in float: not 256 levels, as a quantized output would be
    assert min(len(np.unique(column)) for column in logits.T) > 0.9 * len(logits)
    np.testing.assert_allclose(logits, onnx.raw_logits(many), atol=0.1)
    caplog.clear()  # networks taken from a weighted ensemble weigh as the new one says
    data = load_dataset(smoke_data, cache_dir=tmp_path / "cache", progress=False)
    regrown = load_model(build_ensemble([out], tmp_path / "regrown", data))
    assert "weighs its networks unequally" in caplog.text and "weights" not in regrown.metadata["model_kwargs"]
    for weights, error in [("1,2,3", "needs 2 weights"), ("1,0", "positive and finite")]:
        assert main(["ensemble", str(trained_run), "fast", "--weights", weights, "--out", str(tmp_path / "refused"),
                     "--data", str(smoke_data)]) == 2
        assert error in capsys.readouterr().err and not (tmp_path / "refused").exists()
    with pytest.raises(SystemExit):
        main(["ensemble", str(trained_run), "fast", "--weights", "3;1", "--out", str(tmp_path / "refused"),
              "--data", str(smoke_data)])
    assert "not comma-separated numbers: 3;1" in capsys.readouterr().err


def test_the_ensemble_command_refuses_one_member_and_a_used_folder(trained_run: Path, smoke_data: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]):
    assert main(["ensemble", str(trained_run), "--out", str(tmp_path / "one"), "--data", str(smoke_data)]) == 2
    assert "at least two members" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["ensemble", str(trained_run), "fast", "--out", str(tmp_path / "used"), "--data", str(smoke_data)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_the_accurate_recipe_trains_two_members_side_by_side_then_joins_them_with_its_second_network(
        smoke_data: Path, tmp_path: Path):
    """scripts/train_accurate.sh with 1 planned epoch: the first call starts both members in the
    background, a call while they train starts nothing, the call after they finish builds the two
    candidate ensembles (the first member and the shipped accurate's third network, the `fast` of
    its day; both members and that network), and a further call leaves them alone."""
    import os
    import subprocess
    import sys
    import time

    script = Path(__file__).resolve().parent.parent / "scripts" / "train_accurate.sh"
    env = {**os.environ, "EPOCHS": "1", "FERKIT": str(Path(sys.executable).parent / "ferkit")}

    def call() -> str:
        return subprocess.run(["bash", str(script), str(smoke_data)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, check=True, timeout=600).stdout

    assert call().count("in the background") == 2
    assert call().count("is training") == 2
    for seed in (1, 2):
        pid = int((tmp_path / "runs" / f"accurate-m{seed}-e1" / "pid").read_text())
        while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text():
            time.sleep(1)
    out = call()
    assert "ensemble of 2 networks" in out and "ensemble of 3 networks" in out, out
    assert [m["run"] for m in load_model(tmp_path / "runs" / "accurate-ens2").metadata["members"]][0] == "accurate-m1-e1"
    meta = load_model(tmp_path / "runs" / "accurate-ens3").metadata
    assert [meta["members"][i]["run"] for i in (0, 2)] == ["accurate-m1-e1", "accurate-m2-e1"]
    shipped = load_model(bundled_weights("accurate")).metadata["members"]  # its third network: the fast of its day
    assert meta["members"][1]["sha256"] == shipped[2]["sha256"] and shipped[2]["sha256"].startswith("4eae97")
    trained = [meta["members"][i]["training"] for i in (0, 2)]  # the shipped model's order: m1, that network, m2
    assert [t["seed"] for t in trained] == [1, 3] and [t["augment"]["degrade"] for t in trained] == [0.5, 0.5]
    assert [(t["augment"]["rotation"], t["augment"]["shift"]) for t in trained] == [(10.0, 0.1), (15.0, 0.15)]
    assert meta["calibration"]["max_accuracy_drop"] == 0.003
    assert call().count("is built") == 2
