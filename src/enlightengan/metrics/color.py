"""Colour measures of an enhancer's output: fidelity, change, and invented colour in dark regions.

All three work in CIELAB (D65, scikit-image's ``rgb2lab`` of the sRGB image) and report CIE colour
differences, where about 2.3 is a just-noticeable difference and 10 or more is a different colour:

- :func:`color_difference`: mean CIEDE2000 (Sharma, Wu, Dalal, Color Res. Appl. 30(1), 2005) between
  two images of the same size. Against a paired reference it is a *colour-fidelity* measure; against
  the input it measures how much an enhancer changed a photo, which on well-exposed photos is the
  *do-no-harm* measure (a good enhancer leaves them nearly as they are).
- :func:`false_color`: the *false-colour* measure, colour that the output shows in regions where the
  input was dark and that brightening the input cannot explain (green or yellow blobs, teal casts in
  shadows). Defined in the docstring; the definition is also in the README's "Measures" section.

All take 8-bit images (uint8 ``H x W x 3`` RGB arrays or PIL images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .niqe import to_uint8_array

__all__ = ["FALSE_COLOR_DARK_L", "FALSE_COLOR_SIDE", "color_difference", "false_color", "lab"]

#: :func:`false_color` works on images area-averaged to at most this many pixels on their longer side.
FALSE_COLOR_SIDE = 256

#: :func:`false_color` looks at pixels whose input lightness L* is below this (about sRGB 60/255).
FALSE_COLOR_DARK_L = 25.0


def _rgb(image: Any, what: str) -> NDArray[np.uint8]:
    array = to_uint8_array(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what} must be an RGB image (H x W x 3), got shape {array.shape}")
    return array


def _same_size(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"the images differ in size: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}; "
            "colour measures compare pixel by pixel"
        )


def lab(image: Any) -> NDArray[np.float64]:
    """CIELAB (D65) of an 8-bit sRGB image: ``H x W x 3`` float64, L* in [0, 100]."""
    from skimage.color import rgb2lab

    result: NDArray[np.float64] = rgb2lab(_rgb(image, "the image").astype(np.float64) / 255.0)
    return result


def color_difference(image: Any, other: Any) -> float:
    """Mean CIEDE2000 colour difference between two 8-bit RGB images of the same size.

    Args:
        image: the enhanced image, uint8 ``H x W x 3`` or PIL.
        other: the paired reference (colour fidelity) or the input (how much the photo changed).

    Returns:
        The mean over pixels, >= 0; 0 for identical images.

    Example:
        >>> grey = np.full((4, 4, 3), 128, np.uint8)
        >>> color_difference(grey, grey)
        0.0
    """
    from skimage.color import deltaE_ciede2000

    a, b = _rgb(image, "the image"), _rgb(other, "the other image")
    _same_size(a, b)
    return float(np.mean(deltaE_ciede2000(lab(a), lab(b))))


def _area_shrink(array: NDArray[np.uint8], side: int) -> NDArray[np.float64]:
    """Area-average ``array`` so that its longer side is at most ``side`` (float64 in [0, 1])."""
    from PIL import Image

    h, w = array.shape[:2]
    factor = max(h, w) / side
    unit = array.astype(np.float64) / 255.0
    if factor <= 1.0:
        return unit
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    channels = [
        np.asarray(
            Image.fromarray(unit[..., c].astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
        )
        for c in range(3)
    ]
    stacked = np.stack([np.asarray(c) for c in channels], axis=-1)
    return np.clip(stacked.astype(np.float64), 0.0, 1.0)


def _linear(srgb: NDArray[np.float64]) -> NDArray[np.float64]:
    """sRGB in [0, 1] -> linear light (IEC 61966-2-1)."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _srgb(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    """Linear light in [0, 1] -> sRGB (IEC 61966-2-1)."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


_LUMINANCE = np.array([0.2126, 0.7152, 0.0722])


def false_color(output: Any, input: Any, dark_l: float = FALSE_COLOR_DARK_L) -> float:
    """Invented colour in the regions where the input was dark (CIELAB chroma units; 0 is best).

    Definition:

    1. Both images are area-averaged to at most ``FALSE_COLOR_SIDE`` (256) pixels on their longer side,
       so the measure sees low-frequency colour (blobs, casts) and not pixel noise, at any photo size.
    2. The colour the input *explains* at each pixel is the input's colour brought to the output's
       luminance by a gain in linear light (a gain keeps the chromaticity):
       ``explained = input * Y(output) / Y(input)``, with ``Y`` the linear luminance; where the input is
       exactly black it explains no colour (neutral). An output equal to its input scores 0.
    3. In CIELAB, the output's colour ``(a*, b*)`` is compared with the segment from neutral to the
       explained colour: losing saturation is allowed, inventing it or shifting the hue is not. The
       invented colour of a pixel is the distance from the output's ``(a*, b*)`` to that segment.
    4. The measure is its mean over the pixels whose input lightness L* is below ``dark_l`` (25, about
       sRGB 60/255): where the input holds little colour, so what the output shows there comes from the
       model. An image with no such pixel scores 0.

    A neutral dark input brightened to neutral grey scores near 0, as does a dark red one brightened by a
    gain or by a gamma curve (colour that the input holds, even as noise, is amplified, not invented);
    a green disc painted into a dark neutral area scores its chroma times the
    share of the dark area it covers, and a teal cast over a neutral dark scene its chroma.

    Args:
        output: the enhanced image, uint8 ``H x W x 3`` or PIL.
        input: the low-light input, same size.
        dark_l: the L* below which an input pixel counts as dark.

    Returns:
        The mean invented chroma over the dark pixels, >= 0.
    """
    from skimage.color import rgb2lab

    out, inp = _rgb(output, "output"), _rgb(input, "input")
    _same_size(out, inp)
    out_srgb = _area_shrink(out, FALSE_COLOR_SIDE)
    in_srgb = _area_shrink(inp, FALSE_COLOR_SIDE)
    lab_in = rgb2lab(in_srgb)
    dark = lab_in[..., 0] < dark_l
    if not dark.any():
        return 0.0
    in_linear = _linear(in_srgb)
    in_y = in_linear @ _LUMINANCE
    gain = np.where(in_y > 0, (_linear(out_srgb) @ _LUMINANCE) / np.maximum(in_y, 1e-12), 0.0)
    explained = rgb2lab(_srgb(in_linear * gain[..., None]))[..., 1:]
    seen = rgb2lab(out_srgb)[..., 1:]
    norm2 = (explained**2).sum(axis=-1)
    share = np.clip((seen * explained).sum(axis=-1) / np.maximum(norm2, 1e-12), 0.0, 1.0)
    invented = np.linalg.norm(seen - share[..., None] * explained, axis=-1)
    return float(invented[dark].mean())
