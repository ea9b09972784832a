"""Which generator weights to use: an explicit path, ``$ENLIGHTENGAN_WEIGHTS``, or the bundled default.

The bundled default model is declared here as data (:data:`DEFAULT_MODEL`, a
:class:`~enlightengan.weights.spec.WeightsSpec`: file name, sha256, licence, input format), beside the
file it describes, ``enlightengan/weights/enlightengan-default.safetensors``. The file is verified
against its sha256 before first use.

The default model is EnlightenGAN's generator at base width 16, trained by this package on a 2-core
CPU (recipe and scores: docs/MODEL_CARD.md), stored in float16 (4.3 MB), normalising each image with
its own BatchNorm statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

from .spec import WeightsSpec, sha256_file

__all__ = [
    "DEFAULT_MODEL",
    "ENV_VAR",
    "WEIGHTS_DIR",
    "NoDefaultWeightsError",
    "WeightsError",
    "bundled_path",
    "resolve_weights",
]

#: Environment variable naming a weights file, used when no explicit path is given.
ENV_VAR = "ENLIGHTENGAN_WEIGHTS"

#: Folder of the bundled weights (this package).
WEIGHTS_DIR = Path(__file__).resolve().parent


#: The default model shipped with the package.
DEFAULT_MODEL = WeightsSpec(
    name="enlightengan-default",
    filename="enlightengan-default.safetensors",
    sha256="4abd90dd1a11a5e98f45c69f8e70fe8a9cc7d86ea07911547160c7a97530e432",
    licence="research and non-commercial use, as its training data (LOL-v1, BSDS500, SICE); see "
    "docs/MODEL_CARD.md",
    input_format="RGB in [-1, 1], N x 3 x H x W, any H and W (padded to multiples of 16 internally)",
    description="EnlightenGAN generator (base width 16, fixed BatchNorm statistics, exposure fade) trained "
    "on a 2-core CPU in four stages, configs/recipe (docs/MODEL_CARD.md)",
)


class WeightsError(ValueError):
    """Weights that cannot be used: a missing file, or a bundled file that fails its checksum."""


class NoDefaultWeightsError(WeightsError):
    """No weights were given and the bundled default model is missing from this installation."""


# (path, size, mtime_ns) of files already verified in this process: hash each file once.
_VERIFIED: set[tuple[str, int, int]] = set()


def bundled_path(spec: WeightsSpec | None = None) -> Path:
    """Where the bundled file of ``spec`` (default :data:`DEFAULT_MODEL`) lives, present or not."""
    return WEIGHTS_DIR / (spec or DEFAULT_MODEL).filename


def _verify(path: Path, info: WeightsSpec) -> None:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    actual = sha256_file(path)
    if info.sha256 is None:
        raise WeightsError(
            f"the bundled model {path} has no declared sha256: set sha256={actual!r} in DEFAULT_MODEL "
            "of enlightengan/weights/bundled.py (the file is only used once its checksum is declared)"
        )
    if not info.matches(actual):
        raise WeightsError(
            f"the bundled model {path} is damaged: its sha256 is {actual}, expected {info.sha256}; "
            "reinstall enlightengan, or pass weights with --weights / ENLIGHTENGAN_WEIGHTS"
        )
    _VERIFIED.add(key)


def _existing_file(raw: str, source: str) -> Path:
    path = Path(raw).expanduser()
    if not path.exists():
        raise WeightsError(f"the weights file {path} ({source}) does not exist")
    if path.is_dir():
        raise WeightsError(f"the weights path {path} ({source}) is a folder; pass the weights file itself")
    return path


def resolve_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Pick the generator weights: ``explicit`` > ``$ENLIGHTENGAN_WEIGHTS`` > the bundled default.

    Args:
        explicit: a path given by the caller (``--weights``); ``None`` to fall back.

    Returns:
        The path of an existing file (not yet loaded: see :func:`enlightengan.load_generator`).
        The bundled default is checked against :data:`DEFAULT_MODEL` ``.sha256`` (once per process).

    Raises:
        WeightsError: the explicit or environment path does not exist, or the bundled file fails
            its checksum.
        NoDefaultWeightsError: nothing given and the bundled default model is missing.
    """
    if explicit is not None:
        return _existing_file(os.fspath(explicit), "given explicitly")
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return _existing_file(from_env, f"from the environment variable {ENV_VAR}")
    path = bundled_path()
    if not path.is_file():
        raise NoDefaultWeightsError(
            f"no weights given, and the default model {path} is missing from this installation "
            "(reinstall enlightengan to restore it). Or pass a generator explicitly: "
            "'enlightengan enhance --weights 200_net_G_A.pth ...' (the authors' released weights) or a "
            f"generator you trained (RUN_DIR/generator.safetensors), or set {ENV_VAR}=/path/to/weights."
        )
    _verify(path, DEFAULT_MODEL)
    return path
