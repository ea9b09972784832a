"""Image quality metrics as the low-light literature computes them.

- :func:`niqe`: no-reference NIQE, MATLAB-exact, LIVE pristine parameters (lower is better);
- :func:`psnr`, :func:`ssim`: full-reference fidelity against a paired reference (higher is better);
- :func:`brightness`: mean 8-bit luminance, to see whether an enhancer brightens enough or too much.

All take 8-bit images (uint8 numpy arrays, HxWx3 RGB or HxW grey, or PIL images).
"""

from __future__ import annotations

from .fidelity import brightness, psnr, ssim
from .niqe import BLOCK_SIZE, imresize, niqe, niqe_features, rgb2gray

__all__ = ["BLOCK_SIZE", "brightness", "imresize", "niqe", "niqe_features", "psnr", "rgb2gray", "ssim"]
