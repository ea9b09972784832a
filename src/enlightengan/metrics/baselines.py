"""Classical low-light baselines, to put learned enhancers' scores in context.

- :func:`gamma_baseline`: a global power curve ``255 (x / 255) ** gamma`` on each RGB channel; with
  ``gamma=None`` the exponent is chosen so the output's mean luminance reaches 0.45 (in [0, 1]).
- :func:`clahe_baseline`: contrast-limited adaptive histogram equalisation (Zuiderveld 1994) on the
  L channel of CIE Lab (OpenCV), which brightens locally without touching the chroma.

Both take and return uint8 HxWx3 RGB arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .niqe import RGB2GRAY_WEIGHTS

__all__ = ["DEFAULT_TARGET_LUMINANCE", "choose_gamma", "clahe_baseline", "gamma_baseline"]

#: Mean luminance (in [0, 1]) that ``gamma_baseline`` aims for when no exponent is given.
DEFAULT_TARGET_LUMINANCE = 0.45

# Exponents outside this range make no visible difference on 8-bit images.
_GAMMA_RANGE = (1.0 / 64.0, 64.0)

UInt8Array = NDArray[np.uint8]


def _check_rgb(image: UInt8Array) -> UInt8Array:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 HxWx3 RGB array, got dtype {array.dtype} and shape {array.shape}; "
            "convert a PIL image with np.asarray(image.convert('RGB'))"
        )
    return array


def _gamma_lut(gamma: float) -> UInt8Array:
    levels = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(np.floor(255.0 * levels**gamma + 0.5), 0, 255).astype(np.uint8)


def choose_gamma(rgb_uint8: UInt8Array, target: float = DEFAULT_TARGET_LUMINANCE) -> float:
    """The exponent whose power curve brings the mean luminance of ``rgb_uint8`` to ``target``.

    The output's mean luminance (``rgb2gray`` weights, in [0, 1]) falls monotonically as gamma grows,
    so a bisection on log(gamma) finds it; per-channel histograms make each step cost 768 operations.
    Targets out of reach (a black or saturated image) return the nearest end of [1/64, 64].

    Args:
        rgb_uint8: uint8 HxWx3 RGB array.
        target: desired mean luminance in (0, 1).
    """
    array = _check_rgb(rgb_uint8)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target mean luminance must lie in (0, 1), got {target}")
    histograms = [np.bincount(array[:, :, c].ravel(), minlength=256) for c in range(3)]
    weights = np.stack([w * h for w, h in zip(RGB2GRAY_WEIGHTS, histograms, strict=True)]).sum(axis=0)
    weights = weights / (255.0 * array.shape[0] * array.shape[1])

    def mean_luminance(gamma: float) -> float:
        return float(weights @ _gamma_lut(gamma).astype(np.float64))

    low, high = np.log(_GAMMA_RANGE[0]), np.log(_GAMMA_RANGE[1])
    for _ in range(40):
        middle = 0.5 * (low + high)
        if mean_luminance(float(np.exp(middle))) > target:
            low = middle
        else:
            high = middle
    return float(np.exp(0.5 * (low + high)))


def gamma_baseline(rgb_uint8: UInt8Array, gamma: float | None = None) -> UInt8Array:
    """Global gamma correction, ``255 (x / 255) ** gamma`` per channel, rounded.

    Args:
        rgb_uint8: uint8 HxWx3 RGB array.
        gamma: the exponent (below 1 brightens); None picks it with :func:`choose_gamma` so the
            mean luminance reaches about 0.45.

    Returns:
        uint8 HxWx3 RGB array of the same size.
    """
    array = _check_rgb(rgb_uint8)
    if gamma is None:
        gamma = choose_gamma(array)
    elif not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    result: UInt8Array = _gamma_lut(gamma)[array]
    return result


def clahe_baseline(rgb_uint8: UInt8Array, clip_limit: float = 2.0, tiles: int = 8) -> UInt8Array:
    """CLAHE on the L channel of CIE Lab (OpenCV), chroma untouched.

    Args:
        rgb_uint8: uint8 HxWx3 RGB array.
        clip_limit: OpenCV's contrast limit (histogram bins clipped at this multiple of the mean).
        tiles: the image is split into ``tiles x tiles`` regions for the local histograms.

    Returns:
        uint8 HxWx3 RGB array of the same size.
    """
    import cv2

    array = _check_rgb(rgb_uint8)
    if not clip_limit > 0 or tiles < 1:
        raise ValueError(f"clip_limit must be positive and tiles at least 1, got {clip_limit} and {tiles}")
    lab = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), dtype=np.uint8)
