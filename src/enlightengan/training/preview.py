"""Image grids that show how training goes: input | attention | latent | output | a normal-light sample.

Written as PNG per epoch (``RUN_DIR/previews/epoch_0001_step_0000123.png``) for people without
TensorBoard, and returned as an ``H x W x 3`` uint8 array for TensorBoard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from .._atomic import atomic_path

__all__ = ["PreviewWriter", "make_grid"]


def _to_uint8(x: Tensor, signed: bool) -> np.ndarray:
    """``C x H x W`` tensor -> ``H x W x 3`` uint8; signed tensors are in [-1, 1], others in [0, 1]."""
    x = x.detach().float().cpu()
    if signed:
        x = (x + 1.0) / 2.0
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def make_grid(input: Tensor, gray: Tensor, latent: Tensor, output: Tensor, normal: Tensor) -> np.ndarray:
    """One row per image: input, attention map, latent (shown as ``latent / 2 + 0.5``), output, normal sample.

    All arguments are ``N x C x S x S`` (gray ``N x 1 x S x S`` in [0, 1]; the others in [-1, 1]).
    Returns ``(N S) x (5 S) x 3`` uint8.
    """
    rows = []
    for i in range(input.shape[0]):
        tiles = [
            _to_uint8(input[i], signed=True),
            _to_uint8(gray[i], signed=False),
            _to_uint8(latent[i], signed=True),
            _to_uint8(output[i], signed=True),
            _to_uint8(normal[i], signed=True),
        ]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


class PreviewWriter:
    """Saves preview grids as PNG under ``run_dir/previews``."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.folder = run_dir / "previews"
        self.enabled = enabled

    def write(
        self,
        epoch: int,
        step: int,
        input: Tensor,
        gray: Tensor,
        latent: Tensor,
        output: Tensor,
        normal: Tensor,
    ) -> np.ndarray:
        grid = make_grid(input, gray, latent, output, normal)
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.folder / f"epoch_{epoch:04d}_step_{step:07d}.png") as tmp:
                Image.fromarray(grid).save(tmp)
        return grid
