"""Attention-guided denoising: clean the noise that brightening lifts out of dark regions.

EnlightenGAN amplifies sensor noise where the input was dark, because that is where its residual is
largest. This step denoises the enhanced image with non-local means (OpenCV's
``fastNlMeansDenoisingColored``, the standard NL-means implementation; luminance and chroma are
filtered separately, chroma blotches being the most visible artefact) and blends the result back with
a per-pixel weight taken from the generator's own attention map ``A = 1 - luminance(input)``:

    ``out = enhanced + A ** gamma * (NLM(enhanced) - enhanced)``

so the filter is at full strength where the input was black, fades as the input gets brighter, and is
practically off in well-lit regions (``A = 0.2`` -> weight 0.04 with the default ``gamma = 2``), which
keeps their texture. NL-means works on 8-bit images; the correction is computed at 8-bit precision and
added to the full-precision output, so 16-bit images stay 16-bit.

Uses OpenCV (``opencv-python-headless``, a dependency of the package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..image_io import from_tensor
from ..models.ops import attention_map

__all__ = ["DenoiseConfig", "attention_denoise", "denoise_weight", "require_opencv"]


@dataclass(frozen=True)
class DenoiseConfig:
    """Settings of the attention-guided denoising.

    Attributes:
        strength: NL-means filter strength ``h`` on the 0-255 scale (OpenCV's parameter): 3 is light,
            10 strong; larger removes more noise and more fine detail.
        gamma: exponent of the attention weight: larger confines the filter to darker input regions.
        template: NL-means patch side in pixels (odd).
        search: NL-means search window side in pixels (odd); the cost grows with its square.
    """

    strength: float = 7.0
    gamma: float = 2.0
    template: int = 7
    search: int = 21

    def __post_init__(self) -> None:
        if not (math.isfinite(self.strength) and self.strength > 0):
            raise ValueError(f"denoise strength must be a finite number > 0, got {self.strength!r}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"denoise gamma must be a finite number > 0, got {self.gamma!r}")
        for name in ("template", "search"):
            value = getattr(self, name)
            if value < 1 or value % 2 == 0:
                raise ValueError(f"denoise {name} window must be an odd number >= 1, got {value!r}")


def require_opencv() -> Any:
    """The ``cv2`` module, or an ImportError that says how to install it."""
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            "denoising needs OpenCV, a dependency of enlightengan: pip install opencv-python-headless"
        ) from exc
    return cv2


def denoise_weight(source: Tensor, gamma: float = 2.0) -> Tensor:
    """Where and how much to denoise: ``attention_map(source) ** gamma``.

    Args:
        source: the generator's input, ``N x 3 x H x W`` RGB in ``[-1, 1]``.
        gamma: exponent (> 0).

    Returns:
        ``N x 1 x H x W`` in ``[0, 1]``: 1 where the input was black, 0 where it was white.
    """
    return attention_map(source).clamp(0.0, 1.0).pow(gamma)


def attention_denoise(enhanced: Tensor, source: Tensor, config: DenoiseConfig | None = None) -> Tensor:
    """Denoise ``enhanced`` where ``source`` was dark (see the module docstring).

    Args:
        enhanced: the enhanced images, ``N x 3 x H x W`` RGB in ``[-1, 1]`` (any float dtype/device).
        source: the images they were enhanced from, same shape, RGB in ``[-1, 1]``.
        config: filter settings; ``None`` uses :class:`DenoiseConfig`'s defaults.

    Returns:
        A new tensor like ``enhanced`` (same shape, dtype and device), clipped to ``[-1, 1]``.

    Raises:
        ValueError: shapes differ or are not ``N x 3 x H x W``.
        ImportError: OpenCV is not installed.
    """
    cfg = config or DenoiseConfig()
    if enhanced.ndim != 4 or enhanced.shape[1] != 3 or enhanced.shape != source.shape:
        raise ValueError(
            "attention_denoise expects two N x 3 x H x W RGB tensors of the same shape, "
            f"got {tuple(enhanced.shape)} and {tuple(source.shape)}"
        )
    cv2 = require_opencv()
    out = enhanced.detach().to("cpu", torch.float32).clone()
    weight = denoise_weight(source.detach().to("cpu", torch.float32), cfg.gamma)
    for i in range(out.shape[0]):
        noisy = from_tensor(out[i : i + 1])  # H x W x 3 uint8, rounded to nearest
        # OpenCV takes BGR and filters in CIELAB: h for lightness, hColor for the two chroma channels.
        clean = cv2.fastNlMeansDenoisingColored(
            np.ascontiguousarray(noisy[..., ::-1]),
            None,
            float(cfg.strength),
            float(cfg.strength),
            cfg.template,
            cfg.search,
        )[..., ::-1]
        delta = torch.from_numpy(clean.astype(np.float32) - noisy.astype(np.float32)).permute(2, 0, 1)
        out[i].add_(delta.div_(127.5).mul_(weight[i]))
    return out.clamp_(-1.0, 1.0).to(enhanced.device, enhanced.dtype)
