"""Attention-guided denoising: clean the noise that brightening lifts out of dark regions.

EnlightenGAN amplifies sensor noise where the input was dark, because that is where its residual is
largest, and there the output's colour is least trustworthy: the grain is coloured (red, green and blue
speckle, coarse blotches), and smoothing the colours of such an output (NL-means on all channels)
merges the speckle into smooth patches of whatever colour the blotches averaged to. This step is
*chroma-first*: it keeps no colour of the output where the input was dark, only its brightness.

1. **Luminance**: the output's luma (ITU-R BT.601 weights, 8-bit) is denoised with non-local means
   (OpenCV's ``fastNlMeansDenoising``, strength ``h``).
2. **Colour**: each pixel's colour is taken from the *input*, as its channel-to-luma ratios
   ``(c + 1) / (Y + 1)`` (8-bit values; a gain on the input leaves them nearly unchanged), smoothed by
   a guided filter (He, Sun and Tang, TPAMI 2013) with the denoised luma as guide, so colour edges
   follow luminance edges and the input's own chroma noise is averaged away. The radius is 1 % of
   the image diagonal (at least 4 pixels).
3. The clean image is ``ratio * denoised luma`` per channel, blended back with a per-pixel weight
   taken from the generator's own attention map ``A = 1 - luminance(input)``:

       ``out = enhanced + A ** gamma * (clean - enhanced)``

   so it acts fully where the input was black, fades as the input gets brighter, and is practically
   off in well-lit regions (``A = 0.2`` -> weight 0.04 with the default ``gamma = 2``), which keep the
   model's colour and texture.

The correction is computed at 8-bit precision and added to the full-precision output, so 16-bit images
stay 16-bit. Uses OpenCV (``opencv-python-headless``, a dependency of the package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ..formats import LUMA_WEIGHTS
from ..image_io import from_tensor
from ..models.ops import attention_map

__all__ = [
    "DenoiseConfig",
    "attention_denoise",
    "chroma_first_clean",
    "denoise_weight",
    "guided_filter",
    "require_opencv",
]


@dataclass(frozen=True)
class DenoiseConfig:
    """Settings of the attention-guided denoising.

    Attributes:
        strength: NL-means filter strength ``h`` of the luma, on the 0-255 scale (OpenCV's parameter):
            5 is light, 14 strong; larger removes more noise and more fine detail.
        gamma: exponent of the attention weight: larger confines the filter to darker input regions.
        template: NL-means patch side in pixels (odd).
        search: NL-means search window side in pixels (odd); the cost grows with its square.
    """

    strength: float = 10.0
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


_LUMA = np.array(LUMA_WEIGHTS, np.float32)


def _box(x: NDArray[np.float32], radius: int, cv2: Any) -> NDArray[np.float32]:
    side = 2 * radius + 1
    result: NDArray[np.float32] = cv2.boxFilter(x, -1, (side, side), borderType=cv2.BORDER_REFLECT)
    return result


def guided_filter(
    guide: NDArray[np.float32], source: NDArray[np.float32], radius: int, eps: float, cv2: Any
) -> NDArray[np.float32]:
    """The guided filter of He, Sun and Tang (TPAMI 2013): ``source`` smoothed along ``guide``'s edges.

    Args:
        guide: ``H x W`` float32 (here the denoised luma in ``[0, 1]``).
        source: ``H x W`` float32 to smooth.
        radius: window radius in pixels; eps: regularisation on the guide's variance scale.
    """
    mean_g, mean_s = _box(guide, radius, cv2), _box(source, radius, cv2)
    var_g = _box(guide * guide, radius, cv2) - mean_g * mean_g
    cov = _box(guide * source, radius, cv2) - mean_g * mean_s
    a = (cov / (var_g + np.float32(eps))).astype(np.float32)
    b = (mean_s - a * mean_g).astype(np.float32)
    return _box(a, radius, cv2) * guide + _box(b, radius, cv2)


def chroma_first_clean(
    enhanced: NDArray[np.uint8], source: NDArray[np.uint8], config: DenoiseConfig, cv2: Any
) -> NDArray[np.float32]:
    """The clean image of the module docstring (steps 1 and 2), before the attention blend.

    Args:
        enhanced: the enhanced image, ``H x W x 3`` uint8 RGB.
        source: the input it came from, same shape.
        config: the NL-means settings (``strength``, ``template``, ``search``).

    Returns:
        ``H x W x 3`` float32 on the 0-255 scale: the input's smoothed colour ratios times the denoised
        luma of ``enhanced``.
    """
    luma = np.clip(np.round(enhanced.astype(np.float32) @ _LUMA), 0, 255).astype(np.uint8)
    denoised = cv2.fastNlMeansDenoising(
        np.ascontiguousarray(luma), None, float(config.strength), config.template, config.search
    ).astype(np.float32)
    src = source.astype(np.float32)
    src_luma = src @ _LUMA
    radius = max(4, round(0.01 * math.hypot(*enhanced.shape[:2])))
    guide = denoised / 255.0
    ratios = [guided_filter(guide, (src[..., c] + 1) / (src_luma + 1), radius, 1e-3, cv2) for c in range(3)]
    return np.stack([ratio * denoised for ratio in ratios], axis=-1)


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
    src = source.detach().to("cpu", torch.float32)
    weight = denoise_weight(src, cfg.gamma)
    for i in range(out.shape[0]):
        noisy = from_tensor(out[i : i + 1])  # H x W x 3 uint8, rounded to nearest
        clean = chroma_first_clean(noisy, from_tensor(src[i : i + 1]), cfg, cv2)
        delta = torch.from_numpy(clean - noisy.astype(np.float32)).permute(2, 0, 1)
        out[i].add_(delta.div_(127.5).mul_(weight[i]))
    return out.clamp_(-1.0, 1.0).to(enhanced.device, enhanced.dtype)
