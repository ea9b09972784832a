"""NIQE, the Natural Image Quality Evaluator, computed exactly as the MATLAB release does.

NIQE (Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE
Signal Processing Letters 20(3), 2013) fits a multivariate Gaussian to 36 natural-scene statistics of
96x96 blocks and reports its distance to the Gaussian of a corpus of pristine photos (lower is better).
The low-light enhancement literature, EnlightenGAN's Table 1 included (Jiang et al., IEEE TIP 2021),
quotes the MATLAB release with the LIVE pristine parameters. Every step below follows that release,
because small departures (another grey conversion, a resize without anti-aliasing, other blocks) move
scores by more than the differences between methods:

1. grey = MATLAB ``rgb2gray`` of the 8-bit image, rounded back to uint8 (:func:`rgb2gray`);
2. the image is cropped to a multiple of 96 in both directions;
3. per scale: MSCN coefficients with a 7x7 Gaussian window (sigma 7/6, replicated borders); per block
   (96x96, then 48x48) an AGGD fit of the coefficients and of their products with the four neighbours
   (right, down, down-right, down-left, wrapping inside the block): 18 features;
4. the second scale is MATLAB ``imresize(im, 0.5)``: bicubic with anti-aliasing (:func:`imresize`);
5. the distance ``sqrt(d' pinv((C_pristine + C_image) / 2) d)`` with ``d`` the difference of the means,
   the image's mean ignoring NaN features per column and its covariance taken over complete rows
   (MATLAB ``nanmean`` / ``nancov``).

One refinement: MSCN coefficients of flat neighbourhoods (black or saturated areas) are set to exactly
0, their value in exact arithmetic. Floating point leaves +-1e-13 noise there whose signs enter the
AGGD fits, so partly flat blocks otherwise score differently with every filter implementation (NIQE
ports disagree by up to 0.04 on such images for this reason alone).

The 64 DICM inputs score a mean of 4.254 with this code (the paper's Table 1: 4.255); the nine LIME
images of ../shared score 4.562.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage
from scipy.special import gamma as gamma_fn

__all__ = [
    "BLOCK_SIZE",
    "estimate_aggd_params",
    "imresize",
    "niqe",
    "niqe_features",
    "pristine_params",
    "rgb2gray",
    "to_uint8_array",
]

#: Side of the square blocks the features are pooled over (the LIVE parameters were fitted with 96).
BLOCK_SIZE = 96

#: MATLAB ``rgb2gray`` weights: the first row of the inverse of the NTSC YIQ matrix, as MATLAB prints them.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)

FloatArray = NDArray[np.float64]
UInt8Array = NDArray[np.uint8]

# The AGGD shape is searched on MATLAB's grid 0.2:0.001:10 (9801 values).
_SHAPE_GRID: FloatArray = np.arange(200, 10001, dtype=np.float64) / 1000.0
_RHO_GRID: FloatArray = gamma_fn(2.0 / _SHAPE_GRID) ** 2 / (
    gamma_fn(1.0 / _SHAPE_GRID) * gamma_fn(3.0 / _SHAPE_GRID)
)
# rho(alpha) increases strictly on the grid, so the nearest grid point is a neighbour of the
# searchsorted position; this replaces the O(grid) scan of the MATLAB code.
assert np.all(np.diff(_RHO_GRID) > 0)

# The 7x7 window of fspecial('gaussian', 7, 7/6), normalised; it is separable into this 1-D kernel.
_taps = np.exp(-(np.arange(-3, 4, dtype=np.float64) ** 2) / (2.0 * (7.0 / 6.0) ** 2))
_MSCN_TAPS: FloatArray = _taps / _taps.sum()

# |I - mu| below this (grey levels) is rounding noise of a flat neighbourhood, not signal: pixel values
# are at most 255, so rounding leaves about 1e-13, while real deviations are many orders larger.
_FLAT_TOLERANCE = 1e-8

# Neighbour offsets (rows, columns) of the four pairwise products, as MATLAB circshift shifts them.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def to_uint8_array(image: Any) -> UInt8Array:
    """Return ``image`` as a uint8 array, HxW (grey) or HxWx3 (RGB), with a clear error otherwise.

    Accepts a numpy array (uint8, HxW, HxWx1 or HxWx3) or a PIL image (modes ``L`` and ``RGB`` as
    they are; ``LA`` drops its alpha; ``RGBA``, ``P``, ``CMYK``, ``YCbCr`` are converted to RGB).
    """
    if isinstance(image, Image.Image):
        if image.mode in ("L", "RGB"):
            return np.asarray(image, dtype=np.uint8)
        if image.mode == "LA":
            return np.asarray(image.convert("L"), dtype=np.uint8)
        if image.mode in ("RGBA", "P", "PA", "CMYK", "YCbCr", "1"):
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
        raise ValueError(
            f"unsupported PIL image mode {image.mode!r}: NIQE and the fidelity metrics are defined on "
            "8-bit images; convert it to 'RGB' or 'L' first"
        )
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 image, got dtype {array.dtype}; scale [0, 1] floats with "
            "np.clip(np.round(x * 255), 0, 255).astype(np.uint8)"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        return array
    raise ValueError(f"expected an HxW grey or HxWx3 RGB image, got an array of shape {array.shape}")


def rgb2gray(image: Any) -> UInt8Array:
    """MATLAB ``rgb2gray`` of an 8-bit image: ``0.2989 R + 0.5870 G + 0.1140 B`` rounded to uint8.

    Args:
        image: uint8 HxWx3 RGB or HxW grey array, or a PIL image (see :func:`to_uint8_array`).

    Returns:
        uint8 HxW luminance in [0, 255]. A grey input is returned as it is. For uint8 input MATLAB
        computes the weighted sum in double precision and rounds half away from zero.
    """
    array = to_uint8_array(image)
    if array.ndim == 2:
        return array
    rgb = array.astype(np.float64)
    wr, wg, wb = RGB2GRAY_WEIGHTS
    luma = wr * rgb[:, :, 0] + wg * rgb[:, :, 1] + wb * rgb[:, :, 2]
    # The sum is never negative, so floor(x + 0.5) is MATLAB's round-half-away-from-zero.
    return np.clip(np.floor(luma + 0.5), 0, 255).astype(np.uint8)


def _cubic(x: FloatArray) -> FloatArray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool) -> FloatArray:
    """The out_length x in_length matrix of MATLAB ``imresize``'s ``contributions`` for one axis.

    Output sample ``u`` (1-based) sits at input coordinate ``u / scale + (1 - 1 / scale) / 2``. When
    shrinking with anti-aliasing the kernel is stretched by ``1 / scale`` (and scaled by ``scale``),
    so it low-passes before sampling. Taps are normalised to sum to one; taps falling outside the
    signal are mirrored back in (half-sample symmetric: ..., 2, 1, 1, 2, ...).
    """
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width /= scale
    centres = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(centres - kernel_width / 2.0)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = centres[:, None] - indices
    weights = scale * _cubic(scale * distance) if stretch else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    source = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], source.shape)
    np.add.at(matrix, (rows, source), weights)
    return matrix


def imresize(image: FloatArray, scale: float, *, antialiasing: bool = True) -> FloatArray:
    """MATLAB ``imresize(image, scale)`` (bicubic) of a 2-D float image, without rounding.

    Args:
        image: HxW array, any range; it is processed in float64 (as MATLAB does for ``double`` input).
        scale: positive factor; the output is ``ceil(H * scale) x ceil(W * scale)``.
        antialiasing: MATLAB's default ``true``; only matters when ``scale < 1``.

    Returns:
        float64 array. Rows are resized first, then columns, as MATLAB orders equal scales.

    Example:
        >>> imresize(np.full((4, 6), 7.0), 0.5)
        array([[7., 7., 7.],
               [7., 7., 7.]])
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"imresize expects a 2-D image, got shape {data.shape}")
    height, width = data.shape
    out_h, out_w = int(np.ceil(height * scale)), int(np.ceil(width * scale))
    rows = _resize_matrix(height, out_h, scale, antialiasing)
    cols = _resize_matrix(width, out_w, scale, antialiasing)
    result: FloatArray = (rows @ data) @ cols.T
    return result


def estimate_aggd_params(samples: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Moment-matching fit of an asymmetric generalised Gaussian per row (MATLAB ``estimateaggdparam``).

    Args:
        samples: N x M float array; each row is one sample set.

    Returns:
        ``(alpha, beta_left, beta_right)``, each of shape (N,): the shape parameter (on the grid
        0.2:0.001:10) and the left and right scales. A row without negative or without positive values
        gets NaN scales and ``alpha = 0.2``, as MATLAB's ``min`` over an all-NaN vector picks the first entry.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an N x M array of sample sets, got shape {x.shape}")
    sq = x * x
    negative, positive = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.where(negative, sq, 0.0).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt(np.where(positive, sq, 0.0).sum(axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(x).mean(axis=1) ** 2 / sq.mean(axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # Nearest grid value, lower index on a tie (MATLAB's min returns the first minimum).
    upper = np.clip(np.searchsorted(_RHO_GRID, r_hat_norm), 1, _RHO_GRID.size - 1)
    lower = upper - 1
    take_upper = (_RHO_GRID[upper] - r_hat_norm) ** 2 < (_RHO_GRID[lower] - r_hat_norm) ** 2
    index = np.where(take_upper, upper, lower)
    index[np.isnan(r_hat_norm)] = 0
    alpha = _SHAPE_GRID[index]
    ratio = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def _mscn(image: FloatArray) -> FloatArray:
    """Mean-subtracted contrast-normalised coefficients, ``(I - mu) / (sigma + 1)``, replicated borders."""

    def blur(values: FloatArray) -> FloatArray:
        once = ndimage.correlate1d(values, _MSCN_TAPS, axis=0, mode="nearest")
        return ndimage.correlate1d(once, _MSCN_TAPS, axis=1, mode="nearest")

    mu = blur(image)
    sigma = np.sqrt(np.abs(blur(image * image) - mu * mu))
    centred = image - mu
    # In exact arithmetic a flat neighbourhood (black or saturated areas) gives exactly 0; in floating
    # point it leaves +-1e-13 noise whose signs would enter the AGGD fits (zeros are on neither side),
    # so partly flat blocks would score differently with every filter implementation.
    centred[np.abs(centred) < _FLAT_TOLERANCE] = 0.0
    result: FloatArray = centred / (sigma + 1.0)
    return result


def _block_features(mscn: FloatArray, block: int) -> FloatArray:
    """The 18 features of every ``block`` x ``block`` tile (MATLAB ``computefeature``): N x 18."""
    height, width = mscn.shape
    tiles = (
        mscn.reshape(height // block, block, width // block, block)
        .transpose(0, 2, 1, 3)
        .reshape(-1, block, block)
    )
    count = tiles.shape[0]
    alpha, beta_l, beta_r = estimate_aggd_params(tiles.reshape(count, -1))
    columns = [alpha, (beta_l + beta_r) / 2.0]
    for shift in _SHIFTS:
        # circshift inside the block: the products wrap around the tile's own edges.
        products = tiles * np.roll(tiles, shift, axis=(1, 2))
        alpha, beta_l, beta_r = estimate_aggd_params(products.reshape(count, -1))
        mean = (beta_r - beta_l) * gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)
        columns += [alpha, mean, beta_l, beta_r]
    return np.stack(columns, axis=1)


def niqe_features(image: Any) -> FloatArray:
    """The NIQE feature matrix of an image: one row of 36 features per 96x96 block.

    Args:
        image: uint8 HxWx3 RGB or HxW grey array, or a PIL image; at least 96x96.

    Returns:
        float64 array of shape (blocks, 36): 18 features at full scale, then 18 at half scale. Blocks
        are ordered row-major; features may be NaN for blocks without texture.
    """
    grey = rgb2gray(image)
    height, width = grey.shape
    rows, cols = height // BLOCK_SIZE, width // BLOCK_SIZE
    if rows == 0 or cols == 0:
        raise ValueError(
            f"image of {width}x{height} px is smaller than one {BLOCK_SIZE}x{BLOCK_SIZE} NIQE block; "
            f"NIQE needs at least {BLOCK_SIZE} px in both directions"
        )
    scaled = grey[: rows * BLOCK_SIZE, : cols * BLOCK_SIZE].astype(np.float64)
    features = []
    for level in range(2):
        features.append(_block_features(_mscn(scaled), BLOCK_SIZE // (level + 1)))
        if level == 0:
            scaled = imresize(scaled, 0.5)
    return np.concatenate(features, axis=1)


@functools.lru_cache(maxsize=1)
def pristine_params() -> tuple[FloatArray, FloatArray]:
    """The LIVE pristine model shipped with the package: ``(mu (36,), cov (36, 36))``, read-only.

    Converted from LIVE's ``modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``) by
    ``scripts/make_niqe_params.py``.
    """
    source = resources.files("enlightengan.metrics").joinpath("niqe_pristine.npz")
    with source.open("rb") as handle, np.load(handle) as data:
        mu = np.array(data["mu"], dtype=np.float64)
        cov = np.array(data["cov"], dtype=np.float64)
    mu.setflags(write=False)
    cov.setflags(write=False)
    return mu, cov


def _pinv_matlab(matrix: FloatArray) -> FloatArray:
    """Moore-Penrose inverse with MATLAB's default tolerance ``max(size) * eps(norm(A))``."""
    u, s, vt = np.linalg.svd(matrix)
    tolerance = max(matrix.shape) * np.spacing(s[0])
    keep = s > tolerance
    result: FloatArray = (vt[keep].T / s[keep]) @ u[:, keep].T
    return result


def niqe(image: Any) -> float:
    """NIQE score of an 8-bit image with the LIVE pristine model (lower is better).

    Follows the MATLAB release of Mittal et al. (IEEE SPL 2013) step by step (see the module
    docstring), so the numbers compare with published tables.

    Args:
        image: uint8 HxWx3 RGB or HxW grey numpy array, or a PIL image. At least 96x96 pixels;
            the image is cropped to a multiple of 96 in both directions.

    Returns:
        The score as a Python float.

    Raises:
        ValueError: the image is not 8-bit, is smaller than a 96x96 block, or has no texture at all
            (every block constant: NIQE is undefined there).

    One deliberate departure: on an image with a single block (96-191 px in both directions) MATLAB's
    ``nanmean``/``nancov`` switch to vector semantics and average the 36 features into one number; here
    the single block is the mean and the image covariance is zero.

    Example:
        >>> from PIL import Image  # doctest: +SKIP
        >>> niqe(Image.open("dark.jpg"))  # doctest: +SKIP
        4.31
    """
    features = niqe_features(image)
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(features, axis=0) if np.isfinite(features).any(axis=0).all() else None
    if mu is None:
        raise ValueError(
            "NIQE is undefined for this image: it has no texture (every 96x96 block is flat, e.g. a "
            "constant or saturated image)"
        )
    complete = features[~np.isnan(features).any(axis=1)]
    cov = np.cov(complete, rowvar=False) if complete.shape[0] >= 2 else np.zeros((36, 36))
    mu_pristine, cov_pristine = pristine_params()
    difference = mu_pristine - mu
    inverse = _pinv_matlab((cov_pristine + cov) / 2.0)
    return float(np.sqrt(difference @ inverse @ difference))
