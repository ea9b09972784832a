"""The training loop of EnlightenGAN: data, networks, optimisers, schedule, logging, checkpoints.

One step follows the released code's order (docs/ARCHITECTURE.md, "A training step"): the generator
update with both discriminators frozen, then the global and local discriminator updates from the same
generator forward. Learning
rates are constant, then decay linearly to 0 over the last ``decay_epochs`` (applied per step).

Runs on one CPU, one GPU, or many processes under ``torchrun`` (DistributedDataParallel; only rank 0
logs and saves). A run can be continued exactly from its last checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import TrainConfig, config_from_dict, config_to_dict, save_config
from ..data.folders import DataError, list_images
from ..data.patches import random_patch_boxes
from ..data.unpaired import UnpairedImageDataset, load_rgb, scan_images
from ..devices import resolve_device
from ..image_io import to_tensor
from ..losses.feature import SelfFeaturePreservingLoss
from ..models.batchnorm import fix_batchnorm_statistics, recalibrate_batchnorm
from ..models.checkpoint import load_generator, save_generator
from ..models.discriminator import DiscriminatorConfig, PatchDiscriminator
from ..models.generator import EnlightenGenerator, GeneratorConfig
from ..models.vgg import load_vgg16_features, random_vgg16_features
from ..weights import VGG16_TORCHVISION, cached_path
from . import checkpoints as ckpt
from .distributed import DistEnv, ResumableSampler, convert_batchnorm, init_distributed, shard_batch_size
from .objective import Batch, EnlightenGANObjective, unwrap
from .preview import PreviewWriter

__all__ = ["EndedBy", "Trainer", "TrainingDiverged", "TrainingSummary", "init_weights", "lr_factor"]

log = logging.getLogger("enlightengan.train")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


#: Which limit ended a run (:attr:`TrainingSummary.ended_by`).
EndedBy = Literal["max_steps", "epochs", "stop_at", "signal"]


@dataclass
class TrainingSummary:
    """What :meth:`Trainer.fit` did.

    ``ended_by`` names the limit that ended the run: ``"max_steps"`` (``optim.max_steps``, the run's
    length when set), ``"epochs"`` (``optim.epochs`` whole epochs), ``"stop_at"`` (``run.stop_at``
    or ``fit(stop_at=...)``, before the schedule's end) or ``"signal"`` (SIGINT or SIGTERM, number in
    ``signal``; the checkpoint of the last step is saved). ``reason`` says the same in words.
    """

    steps: int
    epochs_completed: int
    seconds: float
    run_dir: Path
    generator_path: Path
    best: dict[str, Any] | None
    skipped_files: int
    ended_by: EndedBy = "epochs"
    reason: str = ""
    signal: int | None = None


def init_weights(module: nn.Module) -> None:
    """The original initialisation: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def init_identity_generator(generator: EnlightenGenerator) -> None:
    """Initialisation for a generator without batch statistics (``model.batchnorm: fixed``).

    He-normal convolutions (LeakyReLU slope 0.2) keep activations at a steady scale through the
    layers without normalisation, and a zero residual head makes the network start as the identity
    (``output = input``): training begins from "do no harm".
    """
    for module in generator.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=0.2)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.zeros_(generator.conv10.weight)
    if generator.conv10.bias is not None:
        nn.init.zeros_(generator.conv10.bias)


def lr_factor(step: int, total_steps: int, decay_start: int) -> float:
    """Multiplier of the base learning rate: 1 until ``decay_start``, then linear to 0 at ``total_steps``."""
    if step < decay_start:
        return 1.0
    return max(0.0, (total_steps - step) / max(1, total_steps - decay_start))


def resolve_training_device(name: str, env: DistEnv) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and env.world_size > 1:
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    return device


class Trainer:
    """Trains EnlightenGAN according to a :class:`~enlightengan.config.TrainConfig`.

    Args:
        config: the resolved configuration (``data.low``/``data.normal`` or ``data.root`` set).
        run_dir: folder for checkpoints, logs, previews and the exported generator.
        resume: continue from the newest checkpoint in ``run_dir`` (the config must equal the saved one,
            except for ``optim.max_steps``, which may grow, and the ``run`` section).
        progress: show a tqdm progress bar (rank 0 only).
    """

    def __init__(
        self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True
    ):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        self.env = init_distributed(_device_type(config.run.device))
        self.device = resolve_training_device(config.run.device, self.env)
        self.progress = progress and self.env.is_main
        self.resume = resume
        self.skipped: list[tuple[Path, str]] = []

        low_files, normal_files = self._find_data()
        self.generator, self.d_global, self.d_local = self._build_networks()
        if config.model.init_from is not None and not resume:
            self._init_from(Path(config.model.init_from))
            if config.model.batchnorm == "fixed" and config.model.statistics_images:
                self._measure_statistics(low_files[: config.model.statistics_images])
        if config.model.batchnorm == "fixed":
            fix_batchnorm_statistics(self.generator)
        feature_loss = self._feature_loss()
        self._place([self.generator, self.d_global, self.d_local, feature_loss])

        self.per_rank_batch = shard_batch_size(config.optim.batch_size, self.env)
        self.dataset, self.sampler = self._build_data(low_files, normal_files)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps, self.decay_start = self._schedule_steps()
        self.objective = EnlightenGANObjective(*self._wrapped_networks(), feature_loss, config.loss)
        self.opt_g, self.opt_dg, self.opt_dl = self._build_optimizers()
        self.schedulers = self._build_schedulers()

        self.patch_rng = torch.Generator().manual_seed(config.run.seed)
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.validator = self._validator()
        self.preview = PreviewWriter(self.run_dir, enabled=self.env.is_main)
        self._preview_batch: Batch | None = None
        self._best_pending = False
        self._last_saved_step = -1
        self._recalibrated: tuple[int, EnlightenGenerator] | None = None

        if resume:
            self._load_latest()
        elif ckpt.find_latest(self.run_dir) is not None:
            raise FileExistsError(
                f"{self.run_dir} already holds checkpoints: continue it with --resume {self.run_dir}, "
                "or choose another --out folder"
            )

    # ------------------------------------------------------------------ set-up
    def _build_networks(self) -> tuple[EnlightenGenerator, PatchDiscriminator, PatchDiscriminator]:
        """The generator and the global and local discriminators, initialised from ``run.seed``.

        The same seed on every rank gives every process the same initial weights. Conv weights
        N(0, 0.02) and BatchNorm N(1, 0.02) as published (:func:`init_weights`); with
        ``model.batchnorm: fixed`` the generator starts as the identity (:func:`init_identity_generator`);
        its BatchNorm layers get fixed statistics after ``model.init_from`` and
        ``model.statistics_images`` have set them.
        """
        model = self.config.model
        torch.manual_seed(self.config.run.seed)
        generator = EnlightenGenerator(
            GeneratorConfig(base_width=model.width, exposure_fade=model.exposure_fade)
        )
        d_global = PatchDiscriminator(
            DiscriminatorConfig(n_layers=model.global_layers, base_width=model.d_width)
        )
        d_local = PatchDiscriminator(
            DiscriminatorConfig(n_layers=model.local_layers, base_width=model.d_width)
        )
        for net in (generator, d_global, d_local):
            net.apply(init_weights)
        if model.batchnorm == "fixed":
            init_identity_generator(generator)  # its layers are fixed after init_from (see __init__)
        return generator, d_global, d_local

    def _place(self, modules: list[nn.Module | None]) -> None:
        """Move the networks (and the feature loss) to the device, in the configured memory format."""
        fmt = torch.channels_last if self.config.run.channels_last else torch.contiguous_format
        for module in modules:
            if module is not None:
                module.to(self.device)
                module.to(memory_format=fmt)  # type: ignore[call-overload]  # missing from torch's stubs

    def _build_data(
        self, low_files: list[Path], normal_files: list[Path]
    ) -> tuple[UnpairedImageDataset, ResumableSampler]:
        """The unpaired dataset and this rank's resumable sampler of it."""
        data = self.config.data
        dataset = UnpairedImageDataset(
            low_files,
            normal_files,
            data.crop_size,
            darken_prob=data.darken_prob,
            darken_range=data.darken_range,
            flip=data.flip,
            seed=self.config.run.seed,
            resize_range=data.resize_range,
        )
        return dataset, ResumableSampler(dataset, self.env, self.per_rank_batch, self.config.run.seed)

    def _schedule_steps(self) -> tuple[int, int]:
        """``(total_steps, decay_start)``: the run's length and the step where the learning rates
        start their linear decay.

        The length is ``optim.max_steps`` when it is set (``train --max-steps``), however many epochs
        that takes: fewer than ``optim.epochs``, or more (the run goes on into further epochs).
        Otherwise it is ``optim.epochs`` whole epochs. The schedule keeps its proportions over that
        length: constant for the first ``1 - decay_epochs / epochs`` of the steps, then linear to 0 at
        the last one. ``cpu-small`` (2 epochs, the last decaying) with ``--max-steps 20``: constant
        for 10 steps, then down to 0 at step 20, whatever the epoch length.
        """
        optim = self.config.optim
        total = optim.max_steps if optim.max_steps else optim.epochs * self.steps_per_epoch
        decay_fraction = min(optim.decay_epochs, optim.epochs) / optim.epochs
        return total, round(total * (1.0 - decay_fraction))

    def _wrapped_networks(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The networks as the objective calls them: DistributedDataParallel in a distributed run
        (with a global-batch BatchNorm in the generator), compiled with ``run.compile``."""
        gen: nn.Module = self.generator
        d_global: nn.Module = self.d_global
        d_local: nn.Module = self.d_local
        if self.env.world_size > 1:
            if self.config.model.batchnorm == "batch":
                gen = convert_batchnorm(gen, self.device.type)
            ids = [self.device.index] if self.device.type == "cuda" else None
            gen = DistributedDataParallel(gen, device_ids=ids)
            d_global = DistributedDataParallel(d_global, device_ids=ids)
            d_local = DistributedDataParallel(d_local, device_ids=ids)
        if self.config.run.compile:
            gen = torch.compile(gen)  # type: ignore[assignment]
            d_global = torch.compile(d_global)  # type: ignore[assignment]
            d_local = torch.compile(d_local)  # type: ignore[assignment]
        return gen, d_global, d_local

    def _build_optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam, torch.optim.Adam]:
        """Adam for the generator and for each discriminator, with the same settings (``optim``)."""
        opt = self.config.optim

        def adam(params: Iterator[nn.Parameter]) -> torch.optim.Adam:
            return torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps)

        return (
            adam(self.generator.parameters()),
            adam(self.d_global.parameters()),
            adam(self.d_local.parameters()),
        )

    def _build_schedulers(self) -> list[torch.optim.lr_scheduler.LambdaLR]:
        """One learning-rate schedule per optimiser: constant, then linear decay to 0 (:func:`lr_factor`)."""

        def schedule(step: int) -> float:
            return lr_factor(step, self.total_steps, self.decay_start)

        return [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in self._optimizers()]

    # ------------------------------------------------------------------ set-up
    def _find_data(self) -> tuple[list[Path], list[Path]]:
        data = self.config.data
        if data.root is not None:
            low_dir, normal_dir = Path(data.root) / "trainA", Path(data.root) / "trainB"
        elif data.low is not None and data.normal is not None:
            low_dir, normal_dir = Path(data.low), Path(data.normal)
        else:
            raise ValueError(
                "training needs --low DIR and --normal DIR, or --data ROOT with trainA/ and trainB/"
            )
        found = []
        for kind, folder in (("low-light", low_dir), ("normal-light", normal_dir)):
            files = list_images(folder)
            good, bad = scan_images(files)
            self.skipped.extend(bad)
            for path, reason in bad:
                warnings.warn(f"skipping unreadable {kind} image {path}: {reason}", stacklevel=2)
            if not good:
                raise DataError(f"no readable {kind} images in {folder} ({len(bad)} unreadable)")
            found.append(good)
        return found[0], found[1]

    def _feature_loss(self) -> SelfFeaturePreservingLoss | None:
        cfg = self.config.loss
        if cfg.feature_net == "none" or (cfg.feature_weight == 0 and cfg.patch_feature_weight == 0):
            return None
        if cfg.feature_net == "random":
            features = random_vgg16_features(self.config.run.seed)
        else:
            if cfg.vgg_weights is None and self.env.world_size > 1:
                # one download for the whole job: rank 0 fetches into the shared cache, the others wait
                if self.env.is_main:
                    cached_path(VGG16_TORCHVISION)
                torch.distributed.barrier()
            features = load_vgg16_features(cfg.vgg_weights, progress=self.env.is_main)
        return SelfFeaturePreservingLoss(features)

    def _validator(self) -> Any:
        data = self.config.data
        if data.val_low is None and data.val_dim is None and data.val_normal is None:
            return None
        from .validation import Validator

        return Validator(self.config.data, self.device)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_dg, self.opt_dl]

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.config.run.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "generator": self.generator.state_dict(),
            "d_global": self.d_global.state_dict(),
            "d_local": self.d_local.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_dg": self.opt_dg.state_dict(),
            "opt_dl": self.opt_dl.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "patch_rng": self.patch_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best": self.best,
            "config": config_to_dict(self.config),
            "versions": ckpt.versions(),
        }

    def _init_from(self, source: Path) -> None:
        """Copy trained weights into the fresh networks (``model.init_from``); strict keys and shapes."""
        if source.is_dir():
            latest = ckpt.find_latest(source)
            if latest is None:
                raise FileNotFoundError(f"model.init_from: no checkpoints in {source / ckpt.CHECKPOINT_DIR}")
            source = latest
        if not source.is_file():
            raise FileNotFoundError(f"model.init_from: {source} does not exist")
        try:
            state = ckpt.load_state(source)
        except ValueError:
            state = None  # not a training checkpoint: a generator file
        try:
            if state is None:
                loaded = load_generator(source)
                if loaded.config.base_width != self.config.model.width:
                    raise ValueError(
                        f"it holds a generator of width {loaded.config.base_width}, "
                        f"the run's model.width is {self.config.model.width}"
                    )
                self.generator.load_state_dict(loaded.state_dict())
            else:
                self.generator.load_state_dict(state["generator"])
                self.d_global.load_state_dict(state["d_global"])
                self.d_local.load_state_dict(state["d_local"])
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"model.init_from: {source} does not fit this run's networks: {exc}") from exc
        self.config.model.init_from = str(source)  # the file itself, recorded in config.yaml
        log.info("networks initialised from %s", source)

    def _measure_statistics(self, files: list[Path]) -> None:
        """Set the generator's BatchNorm statistics to their average over whole training images.

        For fine-tuning a generator trained with batch statistics in the fixed-statistics regime: it
        starts from the function it computes on a typical photo with that photo's own statistics.
        """
        _recalibrate_on(self.generator, files)
        log.info("BatchNorm statistics measured on %d low-light training images", len(files))

    def _load_latest(self) -> None:
        latest = ckpt.find_latest(self.run_dir)
        if latest is None:
            raise FileNotFoundError(f"--resume: no checkpoints in {self.run_dir / ckpt.CHECKPOINT_DIR}")
        state = ckpt.load_state(latest)
        saved = config_from_dict(state["config"])
        mine = config_to_dict(self.config)
        theirs = config_to_dict(saved)
        changed = [
            f"{section}.{key}"
            for section in mine
            if section != "run"
            for key in mine[section]
            if mine[section][key] != theirs[section][key] and not _may_change_on_resume(f"{section}.{key}")
        ]
        if changed:
            raise ValueError(f"--resume: the configuration differs from the run's saved one in {changed}")
        self.generator.load_state_dict(state["generator"])
        self.d_global.load_state_dict(state["d_global"])
        self.d_local.load_state_dict(state["d_local"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_dg.load_state_dict(state["opt_dg"])
        self.opt_dl.load_state_dict(state["opt_dl"])
        for scheduler, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(sched_state)
        self.patch_rng.set_state(state["patch_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self._last_saved_step = self.step
        self.best = state.get("best")
        if self.env.is_main:
            log.info("resumed %s at step %d", latest, self.step)

    def save_checkpoint(self) -> Path | None:
        """Write the training state and the generator export (rank 0 only); prune old checkpoints."""
        if not self.env.is_main:
            return None
        path = ckpt.save_state(self.state_dict(), self.run_dir, self.step)
        save_generator(self.inference_generator(), self.run_dir / "generator.safetensors", self._metadata())
        if self.config.run.keep_generators:
            snapshot = self.run_dir / "generators" / f"step_{self.step:07d}.safetensors"
            snapshot.parent.mkdir(exist_ok=True)
            save_generator(self.inference_generator(), snapshot, self._metadata())
        ckpt.prune(self.run_dir, self.config.run.keep_last)
        return path

    def _metadata(self) -> dict[str, str]:
        meta = {"step": str(self.step), "feature_net": self.config.loss.feature_net}
        if self.config.run.bn_recalibration:
            meta["batchnorm"] = f"recalibrated on {self.config.run.bn_recalibration} training images"
        return meta

    def inference_generator(self) -> EnlightenGenerator:
        """The generator as validated and exported: with ``run.bn_recalibration``, a copy whose
        BatchNorm statistics are re-estimated on whole low-light training images (cached per step)."""
        count = self.config.run.bn_recalibration
        if count == 0:
            return self.generator
        if self._recalibrated is not None and self._recalibrated[0] == self.step:
            return self._recalibrated[1]
        # a plain copy (in a distributed run self.generator's BatchNorm layers are cross-process ones,
        # and only rank 0 runs this)
        model = EnlightenGenerator(self.generator.config).to(self.device)
        model.load_state_dict(self.generator.state_dict())
        _recalibrate_on(model, self.dataset.low_files[:count])
        model.eval()
        self._recalibrated = (self.step, model)
        return model

    # ------------------------------------------------------------------ loop
    def _batches(self, epoch: int, start_step: int) -> Iterator[dict[str, Tensor]]:
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start_step)
        loader = DataLoader(
            self.dataset,
            batch_size=self.per_rank_batch,
            sampler=self.sampler,
            num_workers=self.config.data.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )
        return iter(loader)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One published step: G update (Ds frozen), then both Ds from the same forward."""
        boxes = random_patch_boxes(
            self.config.loss.local_patches,
            self.config.loss.patch_size,
            batch.input.shape[-2],
            batch.input.shape[-1],
            self.patch_rng,
        )
        scale = None
        if self.config.loss.scale_weight:
            low, high = self.config.loss.scale_range
            scale = low + (high - low) * float(torch.rand((), generator=self.patch_rng))
        for d in (self.d_global, self.d_local):
            d.requires_grad_(False)
        with self._autocast():
            g_step = self.objective.generator_step(batch, boxes, scale)
        _check_finite(g_step.logs, self.step)
        self.opt_g.zero_grad(set_to_none=True)
        g_step.loss.backward()
        self.opt_g.step()

        for d in (self.d_global, self.d_local):
            d.requires_grad_(True)
        with self._autocast():
            d_global, d_local, d_logs = self.objective.discriminator_losses(batch, g_step.output, boxes)
        _check_finite(d_logs, self.step)
        self.opt_dg.zero_grad(set_to_none=True)
        self.opt_dl.zero_grad(set_to_none=True)
        total = d_global if d_local is None else d_global + d_local
        total.backward()  # the two Ds share no parameters: one backward fills both
        self.opt_dg.step()
        if d_local is not None:
            self.opt_dl.step()
        for scheduler in self.schedulers:
            scheduler.step()
        self.step += 1
        if self._preview_batch is None:
            self._preview_batch = Batch(
                **{k: getattr(batch, k)[:4].detach().clone() for k in Batch.__annotations__}
            )
        return {k: float(v) for k, v in {**g_step.logs, **d_logs}.items()}

    def fit(self, stop_at: int | None = None) -> TrainingSummary:
        """Train until ``total_steps`` (or ``stop_at``, default ``run.stop_at``: a stop that keeps the
        schedule).

        SIGINT/SIGTERM stop after the current step and save a checkpoint, so ``--resume`` continues;
        the summary then names the signal (:attr:`TrainingSummary.ended_by`).
        """
        start = time.perf_counter()
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
        writer = _tensorboard(self.run_dir) if self.env.is_main else None
        if stop_at is None:
            stop_at = self.config.run.stop_at
        end = min(self.total_steps, stop_at) if stop_at is not None else self.total_steps
        bar = _progress(self.progress, self.total_steps, self.step)
        stop = {"signal": 0}

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop["signal"] = signum

        previous = (
            {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
            if _main_thread()
            else {}
        )
        try:
            while self.step < end and not stop["signal"]:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                for raw in self._batches(epoch, offset):
                    batch = Batch.from_dict(raw, self.device, self.config.run.channels_last)
                    logs = self.train_step(batch)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            {k: f"{v:.3f}" for k, v in logs.items() if k != "g_total"}, refresh=False
                        )
                    if writer is not None and self.step % self.config.run.log_every == 0:
                        for key, value in logs.items():
                            writer.add_scalar(f"loss/{key}", value, self.step)
                        writer.add_scalar("lr", self.schedulers[0].get_last_lr()[0], self.step)
                    epoch_end = self.step % self.steps_per_epoch == 0
                    if self.validator is not None and self._validation_due(epoch_end):
                        self._validate(writer)
                    if epoch_end or self.step >= end:  # per epoch, and at the end of a run
                        self._write_preview(writer, epoch + 1)
                    if self.step % self.config.run.save_every == 0 or epoch_end or self.step >= end:
                        self._save_and_track()
                    if self.step >= end or stop["signal"]:
                        break
            if self._last_saved_step != self.step:  # stopped by a signal between saves
                self._save_and_track()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        ended_by, reason = self._ending(stop["signal"], stop_at, end)
        return TrainingSummary(
            steps=self.step,
            epochs_completed=self.step // self.steps_per_epoch,
            seconds=time.perf_counter() - start,
            run_dir=self.run_dir,
            generator_path=self.run_dir / "generator.safetensors",
            best=self.best,
            skipped_files=len(self.skipped),
            ended_by=ended_by,
            reason=reason,
            signal=stop["signal"] or None,
        )

    def _ending(self, signum: int, stop_at: int | None, end: int) -> tuple[EndedBy, str]:
        """Which limit ended the run at ``self.step``, and a sentence saying so."""
        if signum:
            name = signal.Signals(signum).name
            return "signal", (
                f"stopped by {name} at step {self.step}, checkpoint saved; "
                f"continue with --resume {self.run_dir}"
            )
        if stop_at is not None and end == stop_at and stop_at < self.total_steps:
            return "stop_at", (
                f"reached run.stop_at = {stop_at}; the learning-rate schedule runs to step {self.total_steps}"
            )
        epochs = self.total_steps / self.steps_per_epoch
        if self.config.optim.max_steps:
            return "max_steps", (
                f"reached optim.max_steps = {self.total_steps} (--max-steps; {epochs:.3g} epochs of "
                f"{self.steps_per_epoch} steps)"
            )
        return "epochs", (
            f"completed optim.epochs = {self.config.optim.epochs} ({self.steps_per_epoch} steps each; "
            "--max-steps sets the length in steps)"
        )

    def _validation_due(self, epoch_end: bool) -> bool:
        every = self.config.run.val_every
        return epoch_end if every == 0 else self.step % every == 0

    def _validate(self, writer: Any) -> None:
        if not self.env.is_main:
            return
        result = self.validator.evaluate(self.inference_generator())
        if writer is not None:
            for key, value in result.metrics.items():
                writer.add_scalar(f"val/{key}", value, self.step)
            if result.montage is not None:
                writer.add_image("val/montage", result.montage, self.step, dataformats="HWC")
        # a resumed run whose validation sets changed may have a new criterion: its first result is best
        if (
            self.best is None
            or self.best.get("criterion") != result.criterion
            or result.better_than(self.best)
        ):
            self.best = {"step": self.step, **result.metrics, "criterion": result.criterion}
            self._best_pending = True

    def _save_and_track(self) -> None:
        path = self.save_checkpoint()
        self._last_saved_step = self.step
        if path is not None and self._best_pending:
            ckpt.save_best(path, self.run_dir)
            save_generator(
                self.inference_generator(), self.run_dir / "generator-best.safetensors", self._metadata()
            )
            self._best_pending = False

    def _write_preview(self, writer: Any, epoch: int) -> None:
        if self._preview_batch is None or not self.env.is_main:
            return
        generator = unwrap(self.objective.generator)
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            b = self._preview_batch
            output, latent = generator(b.input, b.gray)
        generator.train(was_training)
        grid = self.preview.write(epoch, self.step, b.input, b.gray, latent, output, b.normal)
        if writer is not None:
            writer.add_image("preview", grid, self.step, dataformats="HWC")


def _recalibrate_on(model: nn.Module, files: list[Path]) -> None:
    """BatchNorm statistics of ``model`` averaged over the whole photos ``files`` (precise BN)."""
    recalibrate_batchnorm(model, (to_tensor(load_rgb(path)) for path in files))


def _may_change_on_resume(key: str) -> bool:
    """Settings a resumed run may change: ``optim.max_steps`` (it may grow), the validation sets and the
    exposure fade, which never change what is trained (the ``run`` section is never compared)."""
    return key in ("optim.max_steps", "model.exposure_fade") or key.startswith("data.val_")


def _check_finite(logs: dict[str, Tensor], step: int) -> None:
    bad = [k for k, v in logs.items() if not torch.isfinite(v).all()]
    if bad:
        raise TrainingDiverged(
            f"loss {', '.join(bad)} is not finite at step {step + 1}; training stopped and the last good "
            "checkpoint is kept. Lower optim.lr or check the data, then --resume."
        )


def _device_type(name: str) -> str:
    if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _progress(enabled: bool, total: int, initial: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn(
            "tensorboard is not installed: no TensorBoard logs (PNG previews are still written); "
            "pip install 'enlightengan[train]'",
            stacklevel=2,
        )
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
