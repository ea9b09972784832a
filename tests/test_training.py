"""End-to-end training: a tiny run, exact resume, DDP equivalence, bad data, divergence."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from enlightengan.config import apply_overrides, load_config
from enlightengan.models import EnlightenGenerator, GeneratorConfig, load_generator
from enlightengan.training.checkpoints import list_checkpoints, load_state
from enlightengan.training.objective import Batch
from enlightengan.training.trainer import Trainer, TrainingDiverged, init_weights, lr_factor

from .conftest import tiny_config, write_images


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_state(list_checkpoints(run_dir)[-1][1])
    return {f"{net}.{k}": v for net in ("generator", "d_global", "d_local") for k, v in state[net].items()}


def test_lr_schedule_by_hand() -> None:
    # 10 steps, decay over the last 4: constant through step 5, then 4/4, 3/4, 2/4, 1/4 -> 0 at 10
    factors = [lr_factor(s, 10, 6) for s in range(11)]
    assert factors == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25, 0.0]


def test_tiny_run_writes_everything(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(*tiny_data, **{"optim.max_steps": 5}), run_dir, progress=False)
    assert trainer.steps_per_epoch == 4 and trainer.total_steps == 5
    summary = trainer.fit()
    assert summary.steps == 5
    assert [s for s, _ in list_checkpoints(run_dir)] == [4, 5]  # keep_last=2 of 2, 4, 5
    assert (run_dir / "config.yaml").is_file()
    assert load_config(run_dir / "config.yaml").loss.feature_net == "random"
    previews = sorted((run_dir / "previews").glob("*.png"))
    assert previews, "a preview grid per epoch"
    with Image.open(previews[0]) as grid:
        assert grid.size == (5 * 32, 2 * 32)  # 5 columns, one row per preview image
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    generator = load_generator(run_dir / "generator.safetensors")
    assert generator.config.base_width == 4
    state = load_state(list_checkpoints(run_dir)[-1][1])
    assert state["step"] == 5 and state["versions"]["torch"] == torch.__version__
    for key in ("opt_g", "opt_dg", "opt_dl", "schedulers", "patch_rng", "torch_rng", "config"):
        assert key in state
    assert not list(run_dir.rglob("*.part*"))


def test_max_steps_is_the_length_past_the_configured_epochs(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # 2 epochs of 4 steps, the last one decaying; max_steps 11 asks for more than the 8 steps they hold
    trainer = Trainer(tiny_config(*tiny_data, **{"optim.max_steps": 11}), tmp_path / "run", progress=False)
    assert trainer.steps_per_epoch == 4
    assert (trainer.total_steps, trainer.decay_start) == (11, 6)  # half constant (5.5 rounded), half decay
    # the schedule over the run: constant, then linear to 0 at the last step
    factors = [trainer.schedulers[0].lr_lambdas[0](step) for step in range(12)]
    assert factors == pytest.approx([1] * 7 + [4 / 5, 3 / 5, 2 / 5, 1 / 5, 0])
    trainer = Trainer(tiny_config(*tiny_data, **{"optim.max_steps": 11}), tmp_path / "run2", progress=False)
    summary = trainer.fit()
    assert (summary.steps, summary.epochs_completed, summary.ended_by) == (11, 2, "max_steps")
    assert "optim.max_steps = 11" in summary.reason
    assert trainer.schedulers[0].get_last_lr()[0] == 0.0  # the schedule ended with the run


def test_the_summary_names_the_limit_that_ended_the_run(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    summary = Trainer(tiny_config(*tiny_data), tmp_path / "epochs", progress=False).fit()
    assert (summary.steps, summary.ended_by, summary.signal) == (8, "epochs", None)
    assert "optim.epochs = 2" in summary.reason
    config = tiny_config(*tiny_data, **{"optim.max_steps": 6, "run.stop_at": 3})
    summary = Trainer(config, tmp_path / "stop_at", progress=False).fit()
    assert (summary.steps, summary.ended_by) == (3, "stop_at")
    assert summary.reason == "reached run.stop_at = 3; the learning-rate schedule runs to step 6"


def test_steps_change_every_network(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(*tiny_data), tmp_path / "run", progress=False)
    before = {
        name: {k: v.clone() for k, v in net.state_dict().items()}
        for name, net in (("g", trainer.generator), ("dg", trainer.d_global), ("dl", trainer.d_local))
    }
    trainer.fit(stop_at=1)
    for name, net in (("g", trainer.generator), ("dg", trainer.d_global), ("dl", trainer.d_local)):
        for key, value in net.state_dict().items():
            if key.endswith("weight"):
                assert not torch.equal(before[name][key], value), f"{name}.{key} did not change"


def test_resume_is_exact(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(*tiny_data, **{"optim.max_steps": 6})
    straight = tmp_path / "straight"
    Trainer(config, straight, progress=False).fit()

    split = tmp_path / "split"
    Trainer(config, split, progress=False).fit(stop_at=3)
    assert list_checkpoints(split)[-1][0] == 3
    resumed = Trainer(config, split, resume=True, progress=False)
    assert resumed.step == 3
    resumed.fit()

    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_existing_run_needs_resume(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(*tiny_data, **{"optim.max_steps": 1})
    Trainer(config, tmp_path / "run", progress=False).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(config, tmp_path / "run", progress=False)
    changed = apply_overrides(config, {"optim.lr": 5e-4})
    with pytest.raises(ValueError, match=r"differs .*optim.lr"):
        Trainer(changed, tmp_path / "run", resume=True, progress=False)


def test_init_from_fine_tunes_trained_networks(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    source = tmp_path / "source"
    Trainer(tiny_config(*tiny_data, **{"optim.max_steps": 2}), source, progress=False).fit()
    trained = load_state(list_checkpoints(source)[-1][1])

    # from a run folder: its latest checkpoint, all three networks; a new run with its own settings
    config = tiny_config(*tiny_data, **{"model.init_from": str(source), "optim.lr": 5e-5})
    tuned = Trainer(config, tmp_path / "tuned", progress=False)
    for name, net in (
        ("generator", tuned.generator),
        ("d_global", tuned.d_global),
        ("d_local", tuned.d_local),
    ):
        for key, value in net.state_dict().items():
            assert torch.equal(value, trained[name][key]), f"{name}.{key}"
    assert tuned.step == 0
    assert tuned.config.model.init_from == str(list_checkpoints(source)[-1][1])  # recorded as the file

    # from a generator file: the generator only, the discriminators fresh
    gen_only = tiny_config(*tiny_data, **{"model.init_from": str(source / "generator.safetensors")})
    tuned = Trainer(gen_only, tmp_path / "gen-only", progress=False)
    for key, value in tuned.generator.state_dict().items():
        if not key.endswith("num_batches_tracked"):  # not stored in generator files (momentum is fixed)
            assert torch.equal(value, trained["generator"][key]), key
    assert not torch.equal(
        tuned.d_global.state_dict()["model.0.weight"], trained["d_global"]["model.0.weight"]
    )

    wider = tiny_config(*tiny_data, **{"model.init_from": str(source), "model.width": 8})
    with pytest.raises(ValueError, match="does not fit this run's networks"):
        Trainer(wider, tmp_path / "wider", progress=False)
    wider_file = tiny_config(
        *tiny_data, **{"model.init_from": str(source / "generator.safetensors"), "model.width": 8}
    )
    with pytest.raises(ValueError, match="generator of width 4"):
        Trainer(wider_file, tmp_path / "wider2", progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        Trainer(tiny_config(*tiny_data, **{"model.init_from": str(tmp_path)}), tmp_path / "x", progress=False)


def test_bn_recalibration_for_validation_and_exports(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    from enlightengan.data.unpaired import load_rgb
    from enlightengan.image_io import to_tensor
    from enlightengan.models.batchnorm import recalibrate_batchnorm
    from enlightengan.models.checkpoint import read_generator_file

    config = tiny_config(
        *tiny_data,
        **{
            "optim.max_steps": 2,
            "run.bn_recalibration": 3,
            "data.val_low": str(write_images(tmp_path / "val", 2, False, size=100)),
            "run.val_every": 2,
        },
    )
    run_dir = tmp_path / "run"
    trainer = Trainer(config, run_dir, progress=False)
    trainer.fit()
    state = load_state(list_checkpoints(run_dir)[-1][1])
    expected = EnlightenGenerator(GeneratorConfig(base_width=4))
    expected.load_state_dict(state["generator"])  # the training state keeps its own statistics
    recalibrate_batchnorm(expected, [to_tensor(load_rgb(p)) for p in trainer.dataset.low_files[:3]])
    for name in ("generator.safetensors", "generator-best.safetensors"):
        exported, _, meta = read_generator_file(run_dir / name)
        assert meta["batchnorm"] == "recalibrated on 3 training images"
        for key, value in expected.state_dict().items():
            if "running" in key:
                torch.testing.assert_close(exported[key], value, rtol=1e-5, atol=1e-6)
                assert not torch.equal(value, state["generator"][key]), key
            elif not key.endswith("num_batches_tracked"):
                assert torch.equal(exported[key], value), key


def test_divergence_stops_and_keeps_last_checkpoint(
    tiny_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(*tiny_data), run_dir, progress=False)
    trainer.fit(stop_at=2)
    good = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    with torch.no_grad():
        trainer.generator.conv10.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="not finite at step 3"):
        trainer.fit()
    assert list_checkpoints(run_dir)[-1][0] == 2
    saved = load_state(list_checkpoints(run_dir)[-1][1])["generator"]
    assert all(torch.equal(saved[k], good[k]) for k in good)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enlightengan", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


_CLI_TINY = [
    "--crop-size", "32", "--width", "4", "--feature-net", "random", "--device", "cpu", "--workers", "0",
    "--set", "model.d_width=8", "--set", "loss.local_patches=2", "--set", "loss.patch_size=16", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    """torchrun with 2 gloo processes of batch 2 == one process of batch 4, up to float rounding.

    Adam's first steps normalise each gradient element (update ~ lr * sign(g)), which turns rounding
    noise in near-zero gradients into full-size differences; a large epsilon (1.0, with lr 1.0) makes the
    update proportional to the gradient, so the comparison measures the gradients themselves. Without
    cross-process BatchNorm statistics the generator's updates differ by 0.6 %; with them by 0.02 %.
    The resolution consistency term is on: its second generator forward (unwrapped) must be reduced too.
    """
    low, normal = tiny_data
    common = ["--low", str(low), "--normal", str(normal), "--batch-size", "4", "--max-steps", "2",
              "--lr", "1.0", "--set", "optim.eps=1.0", "--set", "loss.scale_weight=1.0",
              *_CLI_TINY]  # fmt: skip
    single = _cli("train", *common, "--out", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "enlightengan", "train", *common, "--out", str(tmp_path / "ddp"),
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    assert a.keys() == b.keys()
    torch.manual_seed(0)
    init = EnlightenGenerator(GeneratorConfig(base_width=4))
    init.apply(init_weights)
    keys = [k for k in init.state_dict() if not k.endswith("num_batches_tracked")]
    start = torch.cat([init.state_dict()[k].flatten() for k in keys])
    update_single = torch.cat([a[f"generator.{k}"].flatten() for k in keys]) - start
    update_ddp = torch.cat([b[f"generator.{k}"].flatten() for k in keys]) - start
    assert update_single.norm() > 0.1  # the test is meaningful: the generator moved
    assert (update_ddp - update_single).norm() / update_single.norm() < 1e-3
    for key in a:
        if not key.startswith("generator."):
            torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0, msg=key)


def test_cli_tiny_run_and_enhance(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    low, normal = tiny_data
    run_dir = tmp_path / "run"
    result = _cli("train", "--low", str(low), "--normal", str(normal), "--out", str(run_dir),
                  "--batch-size", "2", "--max-steps", "2", *_CLI_TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # a run shorter than an epoch still leaves a preview grid, checkpoints and TensorBoard logs
    assert [p.name for p in (run_dir / "previews").glob("*.png")] == ["epoch_0001_step_0000002.png"]
    assert list((run_dir / "checkpoints").glob("step_*.pt"))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert result.stderr.lower().count("randomly initialised") == 1  # said once, not three times
    assert "ended: reached optim.max_steps = 2 (--max-steps" in result.stdout
    out = tmp_path / "enhanced"
    result = _cli(
        "enhance",
        str(low / "img_00.png"),
        "-o",
        str(out),
        "--weights",
        str(run_dir / "generator.safetensors"),
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out / "img_00.png") as image:
        assert image.size == (40, 40)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training_saves_and_exits_like_a_signal(
    tiny_data: tuple[Path, Path], tmp_path: Path, signum: int, status: int
) -> None:
    low, normal = tiny_data
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "enlightengan", "train", "--low", str(low), "--normal", str(normal),
         "--out", str(run_dir), "--batch-size", "2", "--max-steps", "100000", "--set", "run.save_every=1",
         *_CLI_TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(run_dir.glob("checkpoints/step_*.pt")):  # training runs: its handlers are set
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err
    name = signal.Signals(signum).name
    match = re.search(
        rf"ended: stopped by {name} at step (\d+), checkpoint saved; continue with --resume", err
    )
    assert match, err
    assert list_checkpoints(run_dir)[-1][0] == int(match[1])  # the last step is saved


def test_original_layout(tmp_path: Path) -> None:
    write_images(tmp_path / "root" / "trainA", 4, False)
    write_images(tmp_path / "root" / "trainB", 4, True)
    result = _cli("train", "--data", str(tmp_path / "root"), "--out", str(tmp_path / "run"),
                  "--batch-size", "2", "--max-steps", "1", *_CLI_TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "generator.safetensors").is_file()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist|not found|No such"),
        ("empty", "no image"),
        ("text_only", "no image"),
        ("all_corrupt", "no readable"),
    ],
)
def test_bad_data_is_a_clear_error_before_training(tmp_path: Path, setup: str, message: str) -> None:
    normal = write_images(tmp_path / "normal", 3, True)
    low = tmp_path / "low"
    if setup != "missing":
        low.mkdir()
    if setup == "text_only":
        (low / "notes.txt").write_text("hello")
    if setup == "all_corrupt":
        (low / "a.png").write_bytes(b"not a png at all")
        (low / "b.jpg").write_bytes(b"")
    result = _cli("train", "--low", str(low), "--normal", str(normal), "--out", str(tmp_path / "run"),
                  "--max-steps", "1", *_CLI_TINY)  # fmt: skip
    assert result.returncode == 2
    assert "error" in result.stderr
    assert re.search(message, result.stderr, re.IGNORECASE), result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unreadable_files_are_skipped_and_counted(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    low, normal = tiny_data
    (low / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with pytest.warns(UserWarning, match=r"broken.png"):
        trainer = Trainer(
            tiny_config(low, normal, **{"optim.max_steps": 1}), tmp_path / "run", progress=False
        )
    assert len(trainer.skipped) == 1
    assert trainer.fit().skipped_files == 1


def test_cli_usage_errors(tmp_path: Path) -> None:
    result = _cli("train", "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "--low" in result.stderr
    result = _cli("train", "--resume", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "config.yaml not found" in result.stderr


def test_fixed_statistics_training_starts_at_identity_and_exports_what_it_trained(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    from enlightengan.models.batchnorm import FixedStatisticsBatchNorm2d

    config = tiny_config(
        *tiny_data,
        **{
            "model.batchnorm": "fixed",
            "loss.identity_weight": 5.0,
            "loss.chroma_weight": 2.0,
            "loss.color_weight": 1.0,
            "loss.color_floor": 0.1,
            "optim.max_steps": 3,
            "run.keep_generators": True,
        },
    )
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert all(
        type(m) is FixedStatisticsBatchNorm2d for n, m in trainer.generator.named_modules() if "bn" in n
    )
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(trainer.generator(x).output, x)  # zero residual head: the identity
    summary = trainer.fit()
    logs = trainer.train_step(Batch.from_dict(next(trainer._batches(0, 0)), trainer.device))
    assert {"g_identity", "g_chroma", "g_color"} <= set(logs)
    # the statistics never move from mean 0, variance 1
    for name, module in trainer.generator.named_modules():
        if isinstance(module, FixedStatisticsBatchNorm2d):
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean)), name
            assert torch.equal(module.running_var, torch.ones_like(module.running_var)), name
    # the exported file, run as users run it (eval mode, running statistics), is the trained function
    exported = load_generator(summary.run_dir / "generators" / "step_0000003.safetensors")
    assert exported.config.batchnorm == "running"
    assert sorted(p.name for p in (summary.run_dir / "generators").iterdir()) == [
        f"step_{s:07d}.safetensors" for s in (2, 3)
    ]
    trainer.save_checkpoint()  # the state after the extra step above
    with torch.no_grad():
        users = load_generator(summary.generator_path).eval()
        torch.testing.assert_close(users(x).output, trainer.generator.train()(x).output)


def test_fixed_statistics_from_a_trained_generator_start_at_its_average_statistics(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    from enlightengan.data.unpaired import load_rgb
    from enlightengan.image_io import to_tensor
    from enlightengan.models.batchnorm import recalibrate_batchnorm

    source = tmp_path / "source"
    Trainer(tiny_config(*tiny_data, **{"optim.max_steps": 2}), source, progress=False).fit()
    config = tiny_config(
        *tiny_data,
        **{
            "model.init_from": str(source / "generator.safetensors"),
            "model.batchnorm": "fixed",
            "model.statistics_images": 3,
        },
    )
    tuned = Trainer(config, tmp_path / "tuned", progress=False)
    expected = load_generator(source / "generator.safetensors")
    files = sorted(tiny_data[0].iterdir())[:3]
    recalibrate_batchnorm(expected, (to_tensor(load_rgb(p)) for p in files))
    for key, value in expected.state_dict().items():
        assert torch.allclose(value, tuned.generator.state_dict()[key]), key
    # weights are the source's, untouched by the measurement
    source_weights = load_generator(source / "generator.safetensors").state_dict()
    assert torch.equal(tuned.generator.conv1_1.weight, source_weights["conv1_1.weight"])


def test_resume_may_change_the_validation_sets_and_their_criterion(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    val = write_images(tmp_path / "val", 2, False, size=100)
    ref = write_images(tmp_path / "ref", 2, True, size=100)
    config = tiny_config(
        *tiny_data,
        **{"optim.max_steps": 4, "run.val_every": 2, "data.val_low": str(val), "data.val_ref": str(ref)},
    )
    run = tmp_path / "run"
    Trainer(config, run, progress=False).fit(stop_at=2)
    assert load_state(list_checkpoints(run)[-1][1])["best"]["criterion"] == "psnr"
    # resumed with a dim set added: the criterion becomes the combined score, and its first value is best
    more = apply_overrides(config, {"data.val_dim": str(val), "data.val_normal": str(ref)})
    resumed = Trainer(more, run, resume=True, progress=False)
    summary = resumed.fit()
    assert summary.best is not None and summary.best["criterion"] == "score"
    assert summary.best["step"] == 4
    # training settings may not change on resume
    with pytest.raises(ValueError, match=r"differs .*optim\.lr"):
        Trainer(apply_overrides(config, {"optim.lr": 1e-3}), run, resume=True, progress=False)
