"""Image quality metrics as the low-light literature computes them.

- :func:`niqe`: no-reference NIQE, MATLAB-exact, LIVE pristine parameters (lower is better);
- :func:`psnr`, :func:`ssim`: full-reference fidelity against a paired reference (higher is better);
- :func:`brightness`: mean 8-bit luminance, to see whether an enhancer brightens enough or too much;
- :func:`color_difference`: mean CIEDE2000, against a reference (colour fidelity) or against the input
  (how much a photo changed: the do-no-harm measure on well-exposed photos);
- :func:`false_color`: colour the output invents where the input was dark (blobs, casts).

All take 8-bit images (uint8 numpy arrays, HxWx3 RGB or HxW grey, or PIL images).
"""

from __future__ import annotations

from .color import color_difference, false_color
from .fidelity import brightness, psnr, ssim
from .niqe import BLOCK_SIZE, imresize, niqe, niqe_features, rgb2gray

__all__ = [
    "BLOCK_SIZE",
    "brightness",
    "color_difference",
    "false_color",
    "imresize",
    "niqe",
    "niqe_features",
    "psnr",
    "rgb2gray",
    "ssim",
]
