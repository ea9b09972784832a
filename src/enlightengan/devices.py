"""Choosing the device a network runs on: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

Inference and training both resolve ``--device`` here, so neither imports the other for it.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` into a usable device.

    ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. A device asked for explicitly that this
    machine does not have is an error (never a silent fallback to the CPU).

    Raises:
        ValueError: an unknown name, or a device that is not available here.
    """
    if isinstance(name, str) and name.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} asked for, but CUDA is not available here (no NVIDIA GPU, or a CPU-only "
                "build of torch): use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} asked for, but this machine has {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"device {name!r} asked for, but Apple MPS is not available here: use cpu or auto"
            )
        return device
    raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda, cuda:N or mps")
