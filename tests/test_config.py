from pathlib import Path

import pytest

from ferkit.errors import ConfigError
from ferkit.training import TrainConfig, build_config


def test_seed_strategy_defaults():
    config = TrainConfig()
    assert (config.scheduler, config.plateau_factor, config.monitor) == ("plateau", 0.2, "val_loss")


def test_yaml_then_command_line_overrides(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("model: deep_cnn\nepochs: 5\nlr: 0.01\naugment: {hflip: 0.0}\n")
    config = build_config(path, {"epochs": 2, "lr": None})
    assert (config.model, config.epochs, config.lr) == ("deep_cnn", 2, 0.01)
    assert config.augment["hflip"] == 0.0 and config.augment["rotation"] == 10.0


def test_limit_batches_count_versus_fraction():
    assert build_config(overrides={"limit_train_batches": 3.0}).limit_train_batches == 3
    assert build_config(overrides={"limit_train_batches": 0.5}).limit_train_batches == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epoch": 3}, "unknown option.*epoch"),
        ({"scheduler": "step"}, "scheduler 'step' is not one of: plateau, cosine"),
        ({"label_mode": "votes"}, "label_mode 'votes'"),
        ({"augment": {"fog": 1}}, "augment: .*known keys"),
        ({"optimizer": "lbfgs"}, "optimizer .lbfgs. is not one of: adam, sgd"),
        ({"monitor": "val_f1"}, "monitor .val_f1. is not one of: .*last"),
    ],
)
def test_bad_options_are_clear_errors(overrides: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        build_config(overrides=overrides)


def test_broken_yaml_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(path)
