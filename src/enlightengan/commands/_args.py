"""Argument types and small helpers shared by the sub-commands (one definition, one error wording)."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, Literal

from ..formats import MAX_STRENGTH, parse_exposure_fade

__all__ = [
    "BACKEND_CHOICES",
    "DENOISE_STRENGTH",
    "add_backend_argument",
    "add_denoise_argument",
    "add_device_argument",
    "add_weights_argument",
    "enhancement_strength",
    "natural_key",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "strength",
]

#: ``--denoise`` given without a value: the default strength of
#: enlightengan.inference.denoise.DenoiseConfig (repeated here so that building the parsers imports no
#: inference module; a test keeps the two equal).
DENOISE_STRENGTH = 10.0

#: ``--backend`` choices: enlightengan.inference.backend.BACKENDS, the default first (repeated here for
#: the same reason; a test keeps the two equal).
BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "openvino")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def strength(text: str) -> float:
    """A finite number >= 0 (the enhancement strength and other scales)."""
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def enhancement_strength(text: str) -> float:
    """``--strength``: a number from 0 to :data:`~enlightengan.formats.MAX_STRENGTH` (1 = the model)."""
    value = _number(text)
    if not math.isfinite(value) or not 0 <= value <= MAX_STRENGTH:
        raise argparse.ArgumentTypeError(
            f"must be a number from 0 to {MAX_STRENGTH:g} (1 = the published model, 0 = unchanged), "
            f"got {text}"
        )
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1; underscores are allowed as in Python literals (``120_000_000``)."""
    value = _integer(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def exposure_fade(text: str) -> tuple[float, float] | str:
    """``LOW,HIGH`` mean brightnesses (``0 <= LOW < HIGH <= 1``) of an exposure fade, or ``"none"``."""
    try:
        fade = parse_exposure_fade(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return "none" if fade is None else fade


def add_exposure_fade_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--exposure-fade LOW,HIGH|none`` for commands that enhance; read it with :func:`fade_choice`."""
    parser.add_argument(
        "--exposure-fade",
        type=exposure_fade,
        metavar="LOW,HIGH",
        help="fade the enhancement out between these mean brightnesses of a photo (0-1: full below LOW, "
        "none above HIGH); 0.25,0.35 leaves low-key well-exposed photos nearly as they are but "
        "enhances moderately dim ones less; 'none' enhances every photo fully; default: as the "
        "weights record (the bundled model: 0.35,0.45)",
    )


def fade_choice(value: tuple[float, float] | str | None) -> tuple[float, float] | Literal["weights"] | None:
    """The ``Enhancer(exposure_fade=...)`` for a parsed ``--exposure-fade`` (absent: the weights')."""
    if value is None:
        return "weights"
    if isinstance(value, str):  # "none", the only text :func:`exposure_fade` returns
        return None
    return value


def natural_key(text: str) -> list[Any]:
    """Sort key putting "img2" before "img10", as people number their files."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def add_denoise_argument(parser: argparse.ArgumentParser | Any, help_text: str) -> None:
    """``--denoise [H]``: off (0) unless given; given alone it means :data:`DENOISE_STRENGTH`."""
    parser.add_argument(
        "--denoise",
        type=strength,
        nargs="?",
        const=DENOISE_STRENGTH,
        default=0.0,
        metavar="H",
        help=help_text,
    )


def add_weights_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--weights PATH``: the generator file (default ``$ENLIGHTENGAN_WEIGHTS``, else the bundled model)."""
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help="generator weights (released 200_net_G_A.pth, a state dict, or .safetensors); "
        "default: $ENLIGHTENGAN_WEIGHTS, else the bundled model",
    )


def add_device_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--device DEVICE``: ``auto`` (the default), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)",
    )


def add_backend_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--backend``: one of :data:`BACKEND_CHOICES`, ``auto`` by default."""
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=BACKEND_CHOICES[0],
        help="auto (default): the fastest installed for the model on the CPU (openvino for models with "
        "fixed BatchNorm statistics, such as the bundled one, when the openvino extra is installed; "
        "onnxruntime for per-image BatchNorm models when the onnx extra is; else torch); torch; "
        "onnxruntime (CPU; the onnx extra); or openvino (CPU, fixed-statistics models; the openvino extra)",
    )
