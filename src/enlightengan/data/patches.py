"""Random local patches for the local discriminator (Jiang et al., IEEE TIP 2021, Sec. III-B).

Each step cuts the same ``count`` patch locations from the generator output, the normal-light image
and the low-light input (1 + 5 = 6 patches of 32 x 32 in the paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["crop_patches", "random_patch_boxes"]


def random_patch_boxes(
    count: int, patch: int, height: int, width: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """``count`` uniformly random ``(top, left)`` corners of ``patch x patch`` boxes inside ``height x width``."""
    if patch > height or patch > width:
        raise ValueError(f"patch size {patch} exceeds the image size {height} x {width}")
    tops = torch.randint(0, height - patch + 1, (count,), generator=generator)
    lefts = torch.randint(0, width - patch + 1, (count,), generator=generator)
    return [(int(t), int(l)) for t, l in zip(tops, lefts, strict=True)]


def crop_patches(images: Tensor, boxes: Sequence[tuple[int, int]], patch: int) -> Tensor:
    """Cut every box from every image.

    Args:
        images: ``N x C x H x W``.
        boxes: ``(top, left)`` corners.
        patch: box side.

    Returns:
        ``(len(boxes) * N) x C x patch x patch``, box-major (all images' first box, then the second, ...).
    """
    if not boxes:
        raise ValueError("no patch boxes given")
    return torch.cat([images[..., t : t + patch, l : l + patch] for t, l in boxes], dim=0)
