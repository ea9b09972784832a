"""Pure tensor operations around the generator, shared by the network, inference, data and losses.

* :func:`attention_map`: the self-regularised attention map ``1 - luminance`` (Jiang et al., IEEE TIP
  2021, Sec. III-C), the generator's second input;
* :func:`pad_to_multiple` and :func:`crop_padding`: the 16-pixel grid the U-Net needs (:data:`MULTIPLE`),
  reached by reflection padding split as the released code splits it;
* :func:`shrink`: the antialiased reduction the fast mode feeds the network (and the resolution
  consistency loss trains for).

No parameters, no state: each is a function of its input tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..formats import LUMA_WEIGHTS

__all__ = ["MULTIPLE", "attention_map", "crop_padding", "pad_to_multiple", "shrink"]

#: The network downsamples four times, so H and W must be multiples of 2**4.
MULTIPLE = 16


def attention_map(image: Tensor) -> Tensor:
    """Self-regularised attention map of an image: ``1 - luminance``.

    Args:
        image: ``N x 3 x H x W`` RGB in ``[-1, 1]``.

    Returns:
        ``N x 1 x H x W`` in ``[0, 1]`` for inputs in range: near 1 where the image is dark.
        Computed as ``1 - (0.299 (R + 1) + 0.587 (G + 1) + 0.114 (B + 1)) / 2``: the paper's
        "1 - I" of the illumination normalised to ``[0, 1]`` (Jiang et al., IEEE TIP 2021, Sec. III-C),
        with the BT.601 luma weights (:data:`~enlightengan.formats.LUMA_WEIGHTS`) as the released code.

    Example:
        >>> attention_map(torch.full((1, 3, 2, 2), -1.0)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"attention_map expects N x 3 x H x W, got {tuple(image.shape)}")
    # 1 - (w . (x + 1)) / 2 = 1 - sum(w) / 2 - (w . x) / 2, in one buffer (a 12 MP photo's map is
    # computed without five full-size temporaries)
    gray = torch.mul(image[:, 0:1], -LUMA_WEIGHTS[0] / 2.0)
    gray.add_(image[:, 1:2], alpha=-LUMA_WEIGHTS[1] / 2.0)
    gray.add_(image[:, 2:3], alpha=-LUMA_WEIGHTS[2] / 2.0)
    return gray.add_(1.0 - sum(LUMA_WEIGHTS) / 2.0)


def _split(total: int) -> tuple[int, int]:
    """Split ``total`` padding pixels: the first side gets the smaller half (as the original)."""
    first = total // 2
    return first, total - first


def pad_to_multiple(x: Tensor, multiple: int = MULTIPLE) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Reflection-pad H and W of ``x`` up to multiples of ``multiple``.

    The padding is split as evenly as possible, the left/top side receiving the smaller half, which is
    what the released code does. Images smaller than the padding they need (a side under about 9 px)
    cannot be reflected in one go; they are reflected repeatedly, which for ordinary sizes is the same
    single reflection.

    Args:
        x: ``N x C x H x W``, any range.
        multiple: the grid to pad to.

    Returns:
        The padded tensor and ``(left, right, top, bottom)`` for :func:`crop_padding`.
    """
    h, w = x.shape[-2:]
    left, right = _split((-w) % multiple)
    top, bottom = _split((-h) % multiple)
    pads = (left, right, top, bottom)
    remaining = list(pads)
    while any(remaining):
        # ReflectionPad needs padding < size of that dimension; take at most size - 1 per round.
        cur_h, cur_w = x.shape[-2:]
        step = [
            min(remaining[0], cur_w - 1),
            min(remaining[1], cur_w - 1),
            min(remaining[2], cur_h - 1),
            min(remaining[3], cur_h - 1),
        ]
        if cur_w == 1 or cur_h == 1:
            mode = "replicate"  # a single row or column has nothing to reflect
            step = remaining
        else:
            mode = "reflect"
        x = F.pad(x, tuple(step), mode=mode)
        remaining = [r - s for r, s in zip(remaining, step, strict=True)]
    return x, pads


def crop_padding(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Remove the padding added by :func:`pad_to_multiple` (``pads = (left, right, top, bottom)``)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def _shrunk_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(round(height / scale), min(height, MULTIPLE)), max(round(width / scale), min(width, MULTIPLE))


def shrink(image: Tensor, scale: float) -> Tensor:
    """``image`` shrunk by ``scale`` per side, as the fast mode feeds the network.

    Antialiased bilinear resampling; sides are rounded and kept at least 16 pixels (or the original
    side, when smaller). ``scale = 1`` returns ``image`` itself.

    Args:
        image: ``N x C x H x W``, any range.
        scale: shrink factor per side, >= 1.

    Returns:
        ``N x C x round(H / scale) x round(W / scale)`` (see above for the smallest sides).
    """
    height, width = image.shape[-2:]
    size = _shrunk_size(height, width, scale)
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
