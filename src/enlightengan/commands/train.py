"""``enlightengan train``: train EnlightenGAN on two folders of unpaired low-light and normal-light photos."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

EPILOG = """\
examples:
  # try it on a CPU in minutes (tiny generator, random feature network):
  enlightengan train --low photos/dark --normal photos/bright --out runs/try \\
      --config cpu-small --max-steps 20 --feature-net random

  # the published setting (configs/paper.yaml) on one GPU; VGG-16 weights are downloaded once:
  enlightengan train --low data/trainA --normal data/trainB --out runs/paper --config paper

  # the original repository's layout (ROOT/trainA = low, ROOT/trainB = normal):
  enlightengan train --data ROOT --out runs/paper --config paper

  # continue an interrupted run exactly where it stopped (Ctrl-C saves a checkpoint):
  enlightengan train --resume runs/paper

  # several GPUs on one machine, or several machines (torchrun sets the environment):
  torchrun --standalone --nproc_per_node=4 -m enlightengan train --data ROOT --out runs/ddp --config paper
  torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \\
      --rdzv_endpoint=HOST:29500 -m enlightengan train --data ROOT --out runs/ddp --config paper

any config key can be set with --set section.key=value (e.g. --set loss.local_patches=4);
the resolved configuration is saved as RUN_DIR/config.yaml. Outputs: RUN_DIR/checkpoints/,
RUN_DIR/generator.safetensors (use with 'enlightengan enhance --weights'), RUN_DIR/previews/*.png,
RUN_DIR/tensorboard/ (tensorboard --logdir RUN_DIR).

length: --max-steps N (optim.max_steps) is the run's length in steps when given, whatever the config's
epochs: fewer, or more (the run goes on into further epochs); otherwise the config's epochs are run. The
learning rate keeps its shape over that length: constant, then linear to 0 over the last
decay_epochs/epochs of the steps. run.stop_at ends a run early with the schedule unchanged. The last
line printed says which limit ended the run. With --resume, a larger --max-steps stretches the schedule
over the new length: a run whose rate had decayed to 0 goes on at the rate the new length gives its
step (750 steps resumed to 1500 with the recipe's proportions: the full rate again, decaying from there).

exit status: 0 the run ended at its limit; 1 a loss became NaN or infinite (the last good checkpoint
is kept); 2 usage error (configuration, data, weights); 130 stopped with Ctrl-C, 143 with SIGTERM,
each after saving the checkpoint of the last step (--resume continues).
"""

#: dedicated flags -> config keys
_FLAGS = {
    "crop_size": "data.crop_size",
    "batch_size": "optim.batch_size",
    "width": "model.width",
    "max_steps": "optim.max_steps",
    "epochs": "optim.epochs",
    "lr": "optim.lr",
    "device": "run.device",
    "seed": "run.seed",
    "feature_net": "loss.feature_net",
    "vgg_weights": "loss.vgg_weights",
    "workers": "data.num_workers",
    "val_low": "data.val_low",
    "val_ref": "data.val_ref",
    "val_dim": "data.val_dim",
    "val_normal": "data.val_normal",
    "init_from": "model.init_from",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train on your own unpaired low-light / normal-light photos",
        description="Train EnlightenGAN (generator, global and local discriminators, self feature "
        "preserving loss) on two folders of unrelated low-light and normal-light images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--low", metavar="DIR", help="folder of low-light images (searched recursively)")
    data.add_argument("--normal", metavar="DIR", help="folder of normal-light images (searched recursively)")
    data.add_argument(
        "--data", metavar="ROOT", help="original layout: ROOT/trainA (low) and ROOT/trainB (normal)"
    )
    data.add_argument("--val-low", metavar="DIR", help="whole low-light images validated in eval mode")
    data.add_argument("--val-ref", metavar="DIR", help="references for --val-low (same names): best = PSNR")
    data.add_argument(
        "--val-dim",
        metavar="DIR",
        help="held-out dim photos: NIQE, invented colour (best: a combined score)",
    )
    data.add_argument(
        "--val-normal", metavar="DIR", help="held-out well-exposed photos: how much they change (do no harm)"
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (checkpoints, logs, previews, generator)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument(
        "--init-from",
        metavar="PATH",
        help="fine-tune: start from a training checkpoint or run folder (G and both Ds) or a generator file",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config, or a built-in name: paper, cpu-small")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override any config key")
    o = p.add_argument_group("common overrides")
    o.add_argument("--crop-size", type=int, help="random square crop side (paper: 320)")
    o.add_argument("--batch-size", type=int, help="global batch size (paper: 32)")
    o.add_argument("--width", type=int, help="generator base width (paper: 32)")
    o.add_argument(
        "--max-steps",
        type=int,
        help="the run's length in steps, whatever the config's epochs (fewer or more; see 'length')",
    )
    o.add_argument(
        "--epochs",
        type=int,
        help="total epochs when --max-steps is not given (paper: 200, the last 100 decaying)",
    )
    o.add_argument("--lr", type=float, help="learning rate of G and both Ds (paper: 1e-4)")
    o.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    o.add_argument("--seed", type=int, help="random seed")
    o.add_argument(
        "--feature-net",
        choices=["vgg16", "random", "none"],
        help="feature network of the preserving loss (none: leave the loss out)",
    )
    o.add_argument("--vgg-weights", metavar="PATH", help="vgg16-397923af.pth (torchvision) or vgg16.weight")
    o.add_argument("--workers", type=int, help="DataLoader worker processes per GPU/process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _resolve(args: argparse.Namespace) -> tuple[Any, Path, bool]:
    from ..config import apply_overrides, load_config, parse_set_option

    overrides: dict[str, Any] = {}
    for name, key in _FLAGS.items():
        value = getattr(args, name)
        if value is not None:
            overrides[key] = value
    if args.data is not None:
        overrides["data.root"] = args.data
    if args.low is not None:
        overrides["data.low"] = args.low
    if args.normal is not None:
        overrides["data.normal"] = args.normal
    for item in args.set:
        key, value = parse_set_option(item)
        overrides[key] = value

    if args.resume is not None:
        run_dir = Path(args.resume)
        if args.out is not None and Path(args.out) != run_dir:
            raise ValueError("--resume RUN_DIR continues that run; do not pass a different --out")
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise ValueError(f"--resume: {saved} not found; is {run_dir} a training run folder?")
        config = load_config(saved if args.config is None else args.config)
        return apply_overrides(config, overrides), run_dir, True

    if args.out is None:
        raise ValueError("--out RUN_DIR is required (or --resume RUN_DIR)")
    if args.data is not None and (args.low is not None or args.normal is not None):
        raise ValueError("use either --data ROOT or --low/--normal, not both")
    config = apply_overrides(load_config(args.config), overrides)
    if config.data.root is None and (config.data.low is None or config.data.normal is None):
        raise ValueError(
            "training needs --low DIR and --normal DIR (or --data ROOT with trainA/ and trainB/)"
        )
    return config, Path(args.out), False


#: Words of the warning that :func:`enlightengan.models.vgg.random_vgg16_features` gives through both
#: ``warnings`` and ``logging``; the command says it once, in its own words (:func:`_random_vgg_notice`).
_RANDOM_VGG = "RANDOMLY INITIALISED VGG-16"


def _not_random_vgg(record: logging.LogRecord) -> bool:
    return _RANDOM_VGG not in record.getMessage()


@contextlib.contextmanager
def _random_vgg_notice(config: Any, is_main: Callable[[], bool]) -> Iterator[None]:
    """Say once (on the main process) that the feature network is a random VGG-16, instead of the
    library's warning and log line on every process."""
    vgg_log = logging.getLogger("enlightengan.models.vgg")
    vgg_log.addFilter(_not_random_vgg)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=f".*{_RANDOM_VGG}", category=UserWarning)
            yield
    finally:
        vgg_log.removeFilter(_not_random_vgg)
    if config.loss.feature_net == "random" and is_main():
        print(
            "WARNING: --feature-net random: the self feature preserving loss uses a RANDOMLY initialised "
            "VGG-16, not ImageNet features; results will differ from the paper (recorded in config.yaml).",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..data.folders import DataError
    from ..training.distributed import shutdown_distributed
    from ..training.trainer import Trainer, TrainingDiverged
    from ..weights import WeightsUnavailableError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config, run_dir, resume = _resolve(args)
        trainer: Trainer | None = None
        with _random_vgg_notice(config, lambda: trainer is not None and trainer.env.is_main):
            trainer = Trainer(config, run_dir, resume=resume, progress=not args.quiet)
    except (
        ConfigError,
        DataError,
        WeightsUnavailableError,
        ValueError,
        FileExistsError,
        FileNotFoundError,
    ) as exc:
        print(f"enlightengan train: error: {exc}", file=sys.stderr)
        return 2
    assert trainer is not None
    try:
        summary = trainer.fit()
    except TrainingDiverged as exc:
        print(f"enlightengan train: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown_distributed()
    if trainer.env.is_main:
        print(
            f"trained {summary.steps} steps ({summary.epochs_completed} epochs) in {summary.seconds:.0f} s; "
            f"generator: {summary.generator_path}"
            + (f"; {summary.skipped_files} unreadable files skipped" if summary.skipped_files else "")
            + (f"; best: {summary.best}" if summary.best else "")
        )
        print(f"ended: {summary.reason}", file=sys.stderr if summary.signal else sys.stdout)
    # interrupted: the shell's status for a process ended by that signal (130 Ctrl-C, 143 SIGTERM)
    return 128 + summary.signal if summary.signal else 0
