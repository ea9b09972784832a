"""One typed configuration schema for training.

A YAML file fills the dataclass fields section by section (``data``, ``model``, ``loss``, ``optim``,
``run``); unknown sections or keys are an error, values are type-checked, and command-line overrides
(``--set section.key=value`` or the dedicated flags of ``enlightengan train``) go through the same
validation. Every run writes its resolved configuration to ``RUN_DIR/config.yaml``.

``configs/paper.yaml`` is the published setting (Jiang et al., IEEE TIP 2021, Sec. IV-A).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "builtin_config_path",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """An invalid configuration file or override."""


@dataclass
class DataConfig:
    """Training images: ``low`` + ``normal`` folders, or ``root`` with ``trainA/`` (low) and ``trainB/``."""

    low: str | None = None
    normal: str | None = None
    root: str | None = None
    #: side of the random square crops (320 in the paper)
    crop_size: int = 320
    #: probability that the generator's input is a darkened copy of the low crop
    darken_prob: float = 0.5
    #: the darkening divides [0, 1] values by a factor drawn uniformly from this range
    darken_range: tuple[float, float] = (2.0, 4.0)
    flip: bool = True
    #: before cropping, each image is shrunk by a factor drawn uniformly from this range (antialiased;
    #: ``(1, 1)`` = never): crops then hold more of the scene, closer to what a whole photo shows the
    #: network at inference. Images are never shrunk below the crop size.
    resize_range: tuple[float, float] = (1.0, 1.0)
    #: DataLoader worker processes per rank
    num_workers: int = 2
    #: optional whole-image validation images (low-light), scored in eval mode while training
    #: (enlightengan.training.validation; a resumed run may change the validation settings)
    val_low: str | None = None
    #: optional references for ``val_low`` (same file names): PSNR becomes the "best" criterion
    val_ref: str | None = None
    #: optional held-out dim photos without references: NIQE and invented colour (false_color)
    val_dim: str | None = None
    #: optional held-out well-exposed photos: how much the generator changes them (do no harm)
    val_normal: str | None = None
    #: at most this many images of each validation set are used (whole images: keep it small on a CPU)
    val_max_images: int = 8


@dataclass
class ModelConfig:
    #: generator base width (32 = the published model)
    width: int = 32
    #: discriminators' base width (64 as published)
    d_width: int = 64
    global_layers: int = 5
    local_layers: int = 4
    #: the generator's BatchNorm while training: "batch" (batch statistics, as published) or "fixed"
    #: (the stored statistics, mean 0 and variance 1, in training too: each layer is a learned
    #: per-channel scale and shift, so training and inference compute the same function and large
    #: photos tile exactly; the network starts as the identity, its residual head at zero, with
    #: He-initialised convolutions)
    batchnorm: Literal["batch", "fixed"] = "batch"
    #: ``(low, high)`` mean brightness over which the Enhancer fades the enhancement out
    #: (:attr:`enlightengan.models.generator.GeneratorConfig.exposure_fade`): recorded in the exported
    #: generator files and applied in validation; it does not change training. None = off
    exposure_fade: tuple[float, float] | None = None
    #: with ``batchnorm: fixed`` and ``init_from``: first set the statistics to their average over this
    #: many whole low-light training images (0 = keep the loaded running statistics)
    statistics_images: int = 0
    #: start from trained networks instead of random ones (fine-tuning): a training checkpoint
    #: (``step_*.pt``, ``best.pt``: generator and both discriminators) or a run folder (its latest
    #: checkpoint), or a generator file (released ``.pth`` or ``.safetensors``: the generator only).
    #: Optimisers and the schedule start afresh.
    init_from: str | None = None


@dataclass
class LossConfig:
    #: random local patches per step (1 + 5 in the paper)
    local_patches: int = 6
    patch_size: int = 32
    #: "vgg16" (ImageNet VGG-16, the paper), "random" (a randomly initialised VGG-16: only if asked for),
    #: or "none" (no self feature preserving loss; use the priors below instead)
    feature_net: Literal["vgg16", "random", "none"] = "vgg16"
    #: VGG-16 weights file (torchvision's vgg16-397923af.pth or the original repository's vgg16.weight);
    #: None downloads torchvision's file into the torch hub cache
    vgg_weights: str | None = None
    feature_weight: float = 1.0
    patch_feature_weight: float = 1.0
    global_adv_weight: float = 1.0
    local_adv_weight: float = 1.0
    #: optional priors beyond the paper (enlightengan.losses.priors), 0 = off
    structure_weight: float = 0.0
    #: what ``structure_weight`` weighs: "log_gradient" (gradients of log-luminance) or "correlation"
    #: (SSIM's local correlation of luminance: free to brighten unevenly, so no dark rings at bright edges)
    structure_kind: Literal["log_gradient", "correlation"] = "log_gradient"
    color_weight: float = 0.0
    exposure_weight: float = 0.0
    exposure_level: float = 0.5
    #: side of the regions whose mean luminance the exposure loss pulls to ``exposure_level`` (16 as in
    #: Zero-DCE); 0 = each crop's mean as a whole (exposure without flattening the contrast)
    exposure_cell: int = 16
    #: ``color_loss`` weighs each cell by the input's colour length plus this floor, so that dark cells
    #: (little colour to keep) still forbid invented colour; 0 = as before
    color_floor: float = 0.0
    #: casts: L1 between the 8 x 8-cell linear-light chromaticities of the output and the input (free for
    #: any brightening; dark cells count as much as bright ones; nearly black ones are pulled to neutral)
    chromaticity_weight: float = 0.0
    #: haze: hinge on the loss of relative contrast (std over mean of 32 x 32 regions of luminance)
    #: below ``contrast_ratio`` times the input's (enlightengan.losses.priors.contrast_loss)
    contrast_weight: float = 0.0
    contrast_ratio: float = 0.7
    #: do no harm: L1 between the generator's output on a normal-light crop and that crop
    identity_weight: float = 0.0
    #: colour grain: mean absolute high-frequency chroma of the output (chroma minus its 3 x 3 mean)
    chroma_weight: float = 0.0
    #: resolution consistency (beyond the paper, 0 = off): L1 between the generator's output on the
    #: input shrunk by a factor drawn uniformly from ``scale_range`` and its (detached) full-size output
    #: shrunk the same way; makes the result independent of the resolution the network sees, which is
    #: what ``enhance --fast`` relies on
    scale_weight: float = 0.0
    scale_range: tuple[float, float] = (1.5, 3.0)
    #: exposure consistency (beyond the paper, 0 = off): L1 between the generator's output on a darkened
    #: copy of the low-light crop (``data.darken_prob``, ``data.darken_range``) and its (detached) output
    #: on the crop itself: less light in, the same picture out
    exposure_consistency_weight: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    #: Adam's epsilon (torch's default; the original code used the same)
    eps: float = 1e-8
    #: global batch size (split evenly over the processes of a distributed run)
    batch_size: int = 32
    #: total epochs (unless ``max_steps`` sets the length); the last ``decay_epochs`` of them decay
    #: the learning rate linearly to 0
    epochs: int = 200
    decay_epochs: int = 100
    #: the run's length in steps when set, instead of ``epochs`` (fewer steps, or more: the run goes on
    #: into further epochs); the learning-rate schedule keeps its proportions over it (constant for
    #: the first ``1 - decay_epochs / epochs`` of the steps, then linear to 0)
    max_steps: int | None = None


@dataclass
class RunConfig:
    seed: int = 0
    #: auto | cpu | cuda | cuda:N | mps
    device: str = "auto"
    #: bfloat16 autocast on CUDA (ignored elsewhere)
    amp: bool = True
    #: torch.compile the generator and discriminators
    compile: bool = False
    channels_last: bool = False
    #: steps between scalar logs
    log_every: int = 10
    #: steps between checkpoints (also written at the end of every epoch and of the run)
    save_every: int = 500
    #: stop the run at this step, keeping its learning-rate schedule as if it ran to the end (a stage
    #: of a recipe that ends early); None = run to the end
    stop_at: int | None = None
    #: steps between validations (0: only at epoch ends)
    val_every: int = 0
    #: checkpoints kept besides the best one
    keep_last: int = 3
    #: also keep the generator of every checkpoint as ``generators/step_<N>.safetensors`` (a few MB
    #: each), to compare or choose later without the full training states
    keep_generators: bool = False
    #: re-estimate the generator's BatchNorm statistics on this many whole low-light training images
    #: (precise BN, :func:`enlightengan.models.batchnorm.recalibrate_batchnorm`) for validation and for
    #: the exported generator files; the training state keeps its own. 0 = off, as in the paper.
    bn_recalibration: int = 0


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> TrainConfig:
        """Check value ranges; returns self. Raises :class:`ConfigError`."""
        checks: list[tuple[bool, str]] = [
            (self.data.crop_size >= 32, "data.crop_size must be >= 32 (the local patches are 32 px)"),
            (self.loss.patch_size <= self.data.crop_size, "loss.patch_size must not exceed data.crop_size"),
            (0.0 <= self.data.darken_prob <= 1.0, "data.darken_prob must be in [0, 1]"),
            (
                1.0 <= self.data.darken_range[0] <= self.data.darken_range[1],
                "data.darken_range must be (low, high) with 1 <= low <= high",
            ),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (
                1.0 <= self.data.resize_range[0] <= self.data.resize_range[1],
                "data.resize_range must be (low, high) with 1 <= low <= high",
            ),
            (
                min(
                    self.loss.color_floor,
                    self.loss.identity_weight,
                    self.loss.chroma_weight,
                    self.loss.chromaticity_weight,
                )
                >= 0,
                "loss.color_floor, loss.identity_weight and loss.chroma_weight must be >= 0",
            ),
            (self.model.width >= 1 and self.model.d_width >= 1, "model widths must be >= 1"),
            (self.model.statistics_images >= 0, "model.statistics_images must be >= 0"),
            (self.loss.local_patches >= 0, "loss.local_patches must be >= 0"),
            (self.loss.scale_weight >= 0, "loss.scale_weight must be >= 0"),
            (
                self.loss.exposure_consistency_weight >= 0,
                "loss.exposure_consistency_weight must be >= 0",
            ),
            (self.loss.contrast_weight >= 0, "loss.contrast_weight must be >= 0"),
            (0 < self.loss.contrast_ratio <= 1, "loss.contrast_ratio must be in (0, 1]"),
            (self.loss.exposure_cell >= 0, "loss.exposure_cell must be >= 0 (0: the whole crop)"),
            (
                1.0 < self.loss.scale_range[0] <= self.loss.scale_range[1],
                "loss.scale_range must be (low, high) with 1 < low <= high",
            ),
            (self.optim.lr > 0, "optim.lr must be > 0"),
            (self.optim.eps > 0, "optim.eps must be > 0"),
            (all(0 <= b < 1 for b in self.optim.betas), "optim.betas must be in [0, 1)"),
            (self.optim.batch_size >= 1, "optim.batch_size must be >= 1"),
            (self.optim.epochs >= 1, "optim.epochs must be >= 1"),
            (0 <= self.optim.decay_epochs, "optim.decay_epochs must be >= 0"),
            (self.optim.max_steps is None or self.optim.max_steps >= 1, "optim.max_steps must be >= 1"),
            (self.run.save_every >= 1 and self.run.log_every >= 1, "run.save_every/log_every must be >= 1"),
            (self.run.keep_last >= 1, "run.keep_last must be >= 1"),
            (self.run.stop_at is None or self.run.stop_at >= 1, "run.stop_at must be >= 1"),
            (self.run.bn_recalibration >= 0, "run.bn_recalibration must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "run": RunConfig,
}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation (str | None, int, float, tuple[float, float], Literal)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")  # pragma: no cover


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_from_dict(data: dict[str, Any] | None, base: TrainConfig | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts, on top of ``base`` (defaults when None)."""
    config = copy.deepcopy(base) if base is not None else TrainConfig()
    for section, values in (data or {}).items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section {section!r}; expected one of {sorted(_SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
        target = getattr(config, section)
        hints = _hints(type(target))
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(
                    f"unknown config key {section}.{key}; known keys: {', '.join(sorted(hints))}"
                )
            setattr(target, key, _coerce(value, hints[key], f"{section}.{key}"))
    return config.validate()


def config_to_dict(config: TrainConfig) -> dict[str, dict[str, Any]]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""
    out: dict[str, dict[str, Any]] = {}
    for section in _SECTIONS:
        values = dataclasses.asdict(getattr(config, section))
        out[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return out


def builtin_config_path(name: str) -> Path | None:
    """A ``configs/<name>.yaml`` shipped with the package (``paper``, ``cpu-small``, ...), or None."""
    candidate = CONFIG_DIR / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def load_config(source: str | Path | None) -> TrainConfig:
    """Read a YAML config file (or the name of a built-in one); None gives the defaults (= paper)."""
    if source is None:
        return TrainConfig().validate()
    path = Path(source)
    if not path.is_file():
        builtin = builtin_config_path(str(source))
        if builtin is None:
            names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise ConfigError(f"config file not found: {source} (built-in configs: {', '.join(names)})")
        path = builtin
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Apply ``{"section.key": value}`` overrides (values already parsed, e.g. from YAML scalars)."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, dot, key = dotted.partition(".")
        if not dot or not key:
            raise ConfigError(f"override {dotted!r} must look like section.key=value")
        nested.setdefault(section, {})[key] = value
    return config_from_dict(nested, base=config)


def parse_set_option(text: str) -> tuple[str, Any]:
    """Parse ``section.key=value`` with the value read as a YAML scalar (``1e-4``, ``true``, ``[2, 4]``)."""
    key, eq, raw = text.partition("=")
    if not eq:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: cannot parse the value ({exc})") from exc
    return key.strip(), value


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from ._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
