"""--shard auto: the share of a bulk job taken from Slurm, Kubernetes or torchrun variables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlightengan.cli import main
from enlightengan.commands._shard import ShardError, shard_from_environment
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

from .conftest import make_dark_rgb

SCHEDULER_VARIABLES = (
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "ENLIGHTENGAN_SHARD_COUNT",
    "RANK",
    "WORLD_SIZE",
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # sbatch --array=1-4: ids 1..4
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, (1, 4)),
        # sbatch --array=0-3: ids 0..3
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}, (4, 4)),
        # sbatch --array=10-40:10: ids 10, 20, 30, 40
        (
            {
                "SLURM_ARRAY_TASK_ID": "30",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "10",
                "SLURM_ARRAY_TASK_STEP": "10",
            },
            (3, 4),
        ),
        ({"JOB_COMPLETION_INDEX": "0", "ENLIGHTENGAN_SHARD_COUNT": "5"}, (1, 5)),
        ({"RANK": "7", "WORLD_SIZE": "8"}, (8, 8)),
    ],
)
def test_shares_from_each_scheduler(environ: dict[str, str], expected: tuple[int, int]) -> None:
    assert shard_from_environment(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no scheduler's variables"),
        ({"JOB_COMPLETION_INDEX": "1"}, "ENLIGHTENGAN_SHARD_COUNT"),
        ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT"),
        ({"RANK": "4", "WORLD_SIZE": "4"}, "not a share"),
        ({"RANK": "x", "WORLD_SIZE": "4"}, "whole number"),
        ({"SLURM_ARRAY_TASK_ID": "15", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "10"}, "grid"),
    ],
)
def test_bad_or_missing_variables_are_clear_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ShardError, match=message):
        shard_from_environment(environ)


def test_slurm_is_looked_at_before_torchrun() -> None:
    environ = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
    assert shard_from_environment({**environ, "RANK": "0", "WORLD_SIZE": "4"}) == (2, 2)


def test_cli_auto_takes_the_same_files_as_the_explicit_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SCHEDULER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    torch.manual_seed(0)
    weights = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), tmp_path / "g.safetensors"
    )
    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(5):
        Image.fromarray(make_dark_rgb(24, 24, seed=i)).save(photos / f"p{i}.png")
    common = [str(photos), "--weights", str(weights), "--device", "cpu", "--quiet"]
    assert main(["enhance", *common, "-o", str(tmp_path / "explicit"), "--shard", "2/3"]) == 0
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["enhance", *common, "-o", str(tmp_path / "auto"), "--shard", "auto"]) == 0
    names = sorted(p.name for p in (tmp_path / "auto").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "explicit").iterdir()) == ["p1.png", "p4.png"]
    for name in names:
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "auto" / name)),
            np.asarray(Image.open(tmp_path / "explicit" / name)),
        )
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main(["enhance", *common, "-o", str(tmp_path / "none"), "--shard", "auto"]) == 2
    assert "no scheduler's variables" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # refused before anything is written
