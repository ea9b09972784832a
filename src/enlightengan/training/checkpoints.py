"""Training checkpoints: everything needed to continue a run exactly, written atomically.

Layout of a run folder::

    RUN_DIR/config.yaml                   resolved configuration
    RUN_DIR/checkpoints/step_0000500.pt   the last ``keep_last`` training states
    RUN_DIR/checkpoints/best.pt           the best state by the validation criterion (if validating)
    RUN_DIR/generator.safetensors         the latest generator alone, for ``enlightengan enhance --weights``

Training states are plain dicts of tensors, numbers and strings, so they load with ``weights_only=True``.
"""

from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_path
from .._version import __version__

__all__ = [
    "CHECKPOINT_DIR",
    "find_latest",
    "list_checkpoints",
    "load_state",
    "prune",
    "save_state",
    "versions",
]

CHECKPOINT_DIR = "checkpoints"
_PATTERN = re.compile(r"step_(\d+)\.pt$")


def versions() -> dict[str, str]:
    """Software versions recorded in every checkpoint."""
    return {
        "enlightengan": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step checkpoints in ``run_dir``, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    found = []
    for path in folder.glob("step_*.pt") if folder.is_dir() else []:
        match = _PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def find_latest(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def save_state(state: dict[str, Any], run_dir: Path, step: int) -> Path:
    """Write a training state atomically as ``checkpoints/step_XXXXXXX.pt``."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def save_best(source: Path, run_dir: Path) -> Path:
    """Copy a step checkpoint to ``checkpoints/best.pt`` (atomically)."""
    target = run_dir / CHECKPOINT_DIR / "best.pt"
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints; returns the deleted paths."""
    checkpoints = list_checkpoints(run_dir)
    doomed = [path for _, path in checkpoints[:-keep_last]] if keep_last > 0 else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def load_state(path: Path) -> dict[str, Any]:
    """Read a training state (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read training checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or "step" not in state or "generator" not in state:
        raise ValueError(f"{path} is not an enlightengan training checkpoint")
    return state
