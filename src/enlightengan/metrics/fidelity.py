"""Full-reference fidelity (PSNR, SSIM) and mean brightness of 8-bit images.

Conventions, chosen to match what the low-light papers report on LOL (e.g. EnlightenGAN's 17.48 dB /
0.650 on LOL-v1 eval15 as quoted by later work) and what scikit-image computes:

- both images are 8-bit, compared in [0, 255] with ``data_range = 255``;
- PSNR is over all pixels and channels at once: ``10 log10(255^2 / MSE)``;
- SSIM (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 13(4), 2004) uses an 11x11 Gaussian window with
  sigma 1.5 (scipy ``gaussian_filter``, truncate 3.5, reflected borders), K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, the mean of the SSIM map after discarding a 5-pixel border,
  and, on RGB, the mean over the three channels. This equals scikit-image's
  ``structural_similarity(pred, ref, channel_axis=-1, gaussian_weights=True,
  use_sample_covariance=False, data_range=255)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .niqe import rgb2gray, to_uint8_array

__all__ = ["brightness", "psnr", "ssim"]

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11x11 window
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_K1, _K2 = 0.01, 0.03


def _pair(pred: Any, ref: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both images as float64 arrays of the same shape, with a clear error when they differ."""
    a, b = to_uint8_array(pred), to_uint8_array(ref)
    if a.shape != b.shape:
        raise ValueError(
            f"prediction and reference differ in size: {_describe(a.shape)} vs {_describe(b.shape)}; "
            "fidelity metrics compare pixel by pixel, so resize or crop one to match"
        )
    return a.astype(np.float64), b.astype(np.float64)


def _describe(shape: tuple[int, ...]) -> str:
    channels = "grey" if len(shape) == 2 else "RGB"
    return f"{shape[1]}x{shape[0]} {channels}"


def psnr(pred: Any, ref: Any, data_range: float = 255) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)`` over all pixels and channels.

    Args:
        pred: the enhanced image, uint8 HxWx3 RGB or HxW grey array, or a PIL image.
        ref: the reference, same size and channels.
        data_range: the peak value; 255 for 8-bit images.

    Returns:
        PSNR in dB; ``inf`` for identical images.

    Example:
        >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 255
        >>> round(psnr(a, b), 3)  # MSE = 255^2 / 16
        12.041
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    a, b = _pair(pred, ref)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def _ssim_channel(a: NDArray[np.float64], b: NDArray[np.float64], data_range: float) -> float:
    def blur(values: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = ndimage.gaussian_filter(
            values, _SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect"
        )
        return result

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    r = _SSIM_RADIUS
    # Border pixels see the reflected padding, not the image; the standard mean skips them.
    return float(ssim_map[r:-r, r:-r].mean())


def ssim(pred: Any, ref: Any) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian-weighted, on 8-bit images; 1 means identical.

    See the module docstring for the exact convention (scikit-image's ``channel_axis=-1,
    gaussian_weights=True, use_sample_covariance=False, data_range=255``): RGB images score the
    mean of the per-channel SSIMs; no conversion to luminance is made.

    Args:
        pred: the enhanced image, uint8 HxWx3 RGB or HxW grey array, or a PIL image; at least 11x11.
        ref: the reference, same size and channels.

    Returns:
        Mean SSIM in [-1, 1].
    """
    a, b = _pair(pred, ref)
    window = 2 * _SSIM_RADIUS + 1
    if min(a.shape[0], a.shape[1]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} px, got {_describe(a.shape)}")
    if a.ndim == 2:
        return _ssim_channel(a, b, 255.0)
    return float(np.mean([_ssim_channel(a[:, :, c], b[:, :, c], 255.0) for c in range(a.shape[2])]))


def brightness(image: Any) -> float:
    """Mean of the 8-bit luminance (MATLAB ``rgb2gray``, as NIQE uses), in [0, 255].

    Low-light inputs of LOL average about 20, their normal-light references about 115.

    Args:
        image: uint8 HxWx3 RGB or HxW grey array, or a PIL image.
    """
    return float(rgb2gray(image).mean())
