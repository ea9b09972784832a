"""The typed training configuration: YAML files, overrides, validation, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from enlightengan.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_set_option,
    save_config,
)


def test_paper_config_is_the_published_setting() -> None:
    c = load_config("paper")
    assert c.data.crop_size == 320
    assert c.optim.batch_size == 32
    assert (c.loss.local_patches, c.loss.patch_size) == (6, 32)
    assert (c.optim.epochs, c.optim.decay_epochs) == (200, 100)
    assert c.optim.lr == pytest.approx(1e-4)
    assert c.optim.betas == (0.5, 0.999)
    assert c.loss.feature_net == "vgg16"
    assert (c.model.width, c.model.global_layers, c.model.local_layers) == (32, 5, 4)
    assert c.data.darken_range == (2.0, 4.0) and c.data.darken_prob == 0.5


def test_cpu_small_config_loads_and_defaults_equal_paper() -> None:
    small = load_config("cpu-small")
    assert small.model.width == 8 and small.data.crop_size == 64
    defaults, paper = config_to_dict(TrainConfig()), config_to_dict(load_config("paper"))
    for section in ("model", "loss", "optim"):
        assert defaults[section] == paper[section], section


def test_unknown_keys_and_sections_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key optim.learning_rate"):
        config_from_dict({"optim": {"learning_rate": 1}})
    with pytest.raises(ConfigError, match="unknown config section"):
        config_from_dict({"optimizer": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  crop_size: big\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: data.crop_size: expected an integer"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"built-in configs: .*paper"):
        load_config("no-such-config")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"data.crop_size": 16}, "crop_size must be >= 32"),
        ({"loss.feature_net": "resnet"}, "must be one of"),
        ({"optim.betas": [0.5]}, "expected a list of 2"),
        ({"data.darken_range": [4, 2]}, "darken_range"),
        ({"optim.lr": -1.0}, "lr must be > 0"),
        ({"run.amp": "yes"}, "true/false"),
        ({"lr": 1.0}, "section.key"),
    ],
)
def test_invalid_overrides(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(TrainConfig(), override)


def test_overrides_do_not_mutate_the_base() -> None:
    base = TrainConfig()
    changed = apply_overrides(base, {"optim.lr": 2e-4, "data.darken_range": [1.5, 3]})
    assert changed.optim.lr == 2e-4 and changed.data.darken_range == (1.5, 3.0)
    assert base.optim.lr == 1e-4 and base.data.darken_range == (2.0, 4.0)


def test_set_option_parsing() -> None:
    key, value = parse_set_option("optim.lr=1e-4")  # YAML 1.1 keeps "1e-4" a string ...
    assert (
        apply_overrides(TrainConfig(), {key: value}).optim.lr == 1e-4
    )  # ... the schema reads it as a number
    assert parse_set_option("run.amp=false") == ("run.amp", False)
    assert parse_set_option("data.darken_range=[2, 3]") == ("data.darken_range", [2, 3])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_set_option("optim.lr")


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    config = apply_overrides(load_config("cpu-small"), {"data.low": "a", "data.normal": "b", "run.seed": 7})
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
