"""Random local patches for the local discriminator (Jiang et al., IEEE TIP 2021, Sec. III-A).

Each training step draws ``count`` patch locations (1 + 5 = 6 patches of 32 x 32 in the paper) and
cuts the SAME locations from the generator output, the normal-light image and the low-light input,
for every image of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["crop_patches", "random_patch_boxes"]


def random_patch_boxes(
    count: int, patch: int, height: int, width: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """``count`` uniformly random ``patch x patch`` boxes inside a ``height x width`` image.

    Args:
        count: number of boxes (0 gives an empty list).
        patch: box side in pixels.
        height: image height.
        width: image width.
        generator: the source of randomness (a CPU :class:`torch.Generator`), for reproducible runs.

    Returns:
        ``(top, left)`` corners with ``0 <= top <= height - patch`` and ``0 <= left <= width - patch``.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if patch < 1:
        raise ValueError(f"patch size must be positive, got {patch}")
    if patch > height or patch > width:
        raise ValueError(
            f"patch size {patch} exceeds the image size {height} x {width}: use a larger crop size"
        )
    tops = torch.randint(0, height - patch + 1, (count,), generator=generator)
    lefts = torch.randint(0, width - patch + 1, (count,), generator=generator)
    return [(int(t), int(left)) for t, left in zip(tops, lefts, strict=True)]


def crop_patches(images: Tensor, boxes: Sequence[tuple[int, int]], patch: int) -> Tensor:
    """Cut every box from every image.

    Args:
        images: ``N x C x H x W`` (any range).
        boxes: ``(top, left)`` corners, each box inside the image.
        patch: box side.

    Returns:
        ``(len(boxes) * N) x C x patch x patch``, box-major: rows ``k * N`` to ``k * N + N - 1`` are the
        N images' crops at ``boxes[k]``.
    """
    if images.ndim != 4:
        raise ValueError(f"crop_patches expects N x C x H x W images, got shape {tuple(images.shape)}")
    if not boxes:
        raise ValueError("no patch boxes given")
    height, width = images.shape[-2:]
    for top, left in boxes:
        if not (0 <= top <= height - patch and 0 <= left <= width - patch):
            raise ValueError(
                f"patch box (top {top}, left {left}, size {patch}) is outside the {height} x {width} image"
            )
    return torch.cat([images[:, :, top : top + patch, left : left + patch] for top, left in boxes], dim=0)
