"""Optional image priors for training without ImageNet features (not in the paper; off by default).

The paper keeps content with VGG-16 ImageNet features. Where those weights cannot be had, a randomly
initialised VGG does not keep content (blobs and halos; see the project's training probes). These
three priors are cheap, need no pretrained network and constrain what the adversarial losses leave
free:

* :func:`structure_loss`: edges of the log-luminance must match the input's. A global brightness
  gain leaves it at zero, so it constrains structure, not exposure.
* :func:`color_loss`: the output's colour direction (the RGB vector of each coarse cell, up to its
  length) must match the input's, against colour casts. Brightening scales the vector and costs nothing.
* :func:`contrast_loss`: the relative contrast (standard deviation over mean) of coarse regions may
  shrink only so far: brightening by adding an offset (a grey haze over lifted blacks) is penalised,
  a gain is free.
* :func:`exposure_loss`: the mean luminance of 16 x 16 regions is pulled towards a target level
  (as in Zero-DCE, Guo et al. CVPR 2020), against under- and over-exposure.

All take RGB tensors in ``[-1, 1]`` of shape ``N x 3 x H x W`` and return a scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ColorLoss",
    "ExposureLoss",
    "StructureLoss",
    "chroma_noise_loss",
    "chromaticity_loss",
    "color_loss",
    "contrast_loss",
    "correlation_structure_loss",
    "exposure_loss",
    "structure_loss",
]


def _unit(x: Tensor) -> Tensor:
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def structure_loss(output: Tensor, reference: Tensor, offset: float = 0.05) -> Tensor:
    """Mean absolute difference of horizontal and vertical gradients of ``log(Y + offset)``.

    ``Y`` is the channel mean of the ``[0, 1]`` image after 2 x 2 average pooling (which also tames
    sensor noise). Scaling ``Y`` by a constant shifts the log by a constant and leaves the loss unchanged
    (up to ``offset``).
    """

    def log_luma(x: Tensor) -> Tensor:
        y = F.avg_pool2d(_unit(x).mean(dim=1, keepdim=True), 2)
        return torch.log(y + offset)

    a, b = log_luma(output), log_luma(reference)
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def correlation_structure_loss(output: Tensor, reference: Tensor, window: int = 7, c: float = 1e-5) -> Tensor:
    """``1 - mean local correlation`` of the two luminances: the structure term of SSIM as a loss.

    Over every ``window x window`` box (stride 1, no padding) the correlation of the two luminances,
    ``(cov + c) / sqrt((var_out + c) (var_ref + c))``, as in SSIM's structure term (Wang et al., IEEE TIP
    2004) but with the floor ``c`` inside both variances, so that an output flattened where the reference
    has texture scores low instead of perfectly. It is invariant to a gain *and* an offset within each
    window (up to ``c``), so a brightening that varies across the photo (more in the dark, less beside a
    bright window) costs nothing, unlike a gradient loss, which charges every change of local contrast
    and so leaves dark rings beside bright objects. ``c = 1e-5`` is a standard deviation of about 0.8/255:
    windows flatter than that in both images count as matching. Luminance is the channel mean of the
    ``[0, 1]`` images.
    """
    a = _unit(output).mean(dim=1, keepdim=True)
    b = _unit(reference).mean(dim=1, keepdim=True)
    mean_a, mean_b = F.avg_pool2d(a, window, stride=1), F.avg_pool2d(b, window, stride=1)
    var_a = (F.avg_pool2d(a * a, window, stride=1) - mean_a**2).clamp_min(0.0)
    var_b = (F.avg_pool2d(b * b, window, stride=1) - mean_b**2).clamp_min(0.0)
    cov = F.avg_pool2d(a * b, window, stride=1) - mean_a * mean_b
    correlation = (cov + c) / ((var_a + c) * (var_b + c)).sqrt()
    return 1.0 - correlation.mean()


def color_loss(
    output: Tensor, reference: Tensor, cell: int = 4, eps: float = 1e-6, floor: float = 0.0
) -> Tensor:
    """``1 - cos(angle)`` between the RGB vectors of ``cell x cell`` averages of the two images.

    The cosine ignores the vectors' lengths, so a pure brightening (any gain) costs nothing while a hue
    or saturation shift does. Cells are weighted by the reference vector's length plus ``floor``: with
    ``floor = 0`` a black cell of a dark photo has no colour to keep; a positive floor makes dark cells
    count too, so the output may not invent a colour there that the input does not have.
    """
    a = F.avg_pool2d(_unit(output), cell, ceil_mode=True)
    b = F.avg_pool2d(_unit(reference), cell, ceil_mode=True)
    b_norm = b.norm(dim=1)
    cosine = (a * b).sum(dim=1) / (a.norm(dim=1) * b_norm + eps)
    weight = b_norm.detach() + floor
    return ((1.0 - cosine) * weight).sum() / (weight.sum() + eps)


def chromaticity_loss(output: Tensor, reference: Tensor, cell: int = 8, black: float = 0.002) -> Tensor:
    """Mean absolute difference of the ``cell x cell`` chromaticities of the two images, in linear light.

    A cell's chromaticity is its linear-light RGB over the sum of the three (IEC 61966-2-1 decoding of
    the ``[0, 1]`` image, then ``cell x cell`` averages, which also average the sensor noise away). A
    gain in linear light leaves it unchanged, so brightening costs nothing, while a cast (a teal road, a
    purple sky, a green blob) changes it wherever it appears, in dark cells as much as in bright ones:
    unlike :func:`color_loss`, whose cosine weighs dark cells by their small length. Where the reference
    is nearly black its chromaticity is noise, so the target there is drawn towards neutral grey:
    ``target = w * chroma(reference) + (1 - w) / 3`` with ``w = s^2 / (s^2 + black^2)``, ``s`` the cell's
    linear RGB sum (``black = 0.002`` is about 2/255 in sRGB on each channel).
    """

    def linear(x: Tensor) -> Tensor:
        u = _unit(x)
        return torch.where(u <= 0.04045, u / 12.92, ((u + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)

    a = F.avg_pool2d(linear(output), cell, ceil_mode=True)
    b = F.avg_pool2d(linear(reference), cell, ceil_mode=True)
    sum_a, sum_b = a.sum(dim=1, keepdim=True), b.sum(dim=1, keepdim=True)
    chroma_a = a / (sum_a + 1e-6)
    weight = (sum_b**2 / (sum_b**2 + black**2)).detach()
    target = weight * b / (sum_b + 1e-6) + (1 - weight) / 3
    return (chroma_a - target.detach()).abs().mean()


def exposure_loss(output: Tensor, level: float = 0.5, cell: int = 16) -> Tensor:
    """Mean absolute distance of ``cell x cell`` mean luminances (channel mean, ``[0, 1]``) to ``level``.

    ``cell = 0`` takes each image's mean as a whole: it sets the exposure and leaves the contrast
    between regions alone (16 x 16 cells pull a dark region to ``level`` too, which lifts the blacks
    into a grey haze).
    """
    y = _unit(output).mean(dim=1, keepdim=True)
    y = y.mean(dim=(2, 3)) if cell == 0 else F.avg_pool2d(y, cell, ceil_mode=True)
    return (y - level).abs().mean()


def contrast_loss(
    output: Tensor, reference: Tensor, ratio: float = 0.7, cell: int = 32, eps: float = 0.02
) -> Tensor:
    """How far the output's relative contrast falls below ``ratio`` times the input's (a hinge).

    Over each ``cell x cell`` region the luminance (channel mean, ``[0, 1]``) has a coefficient of
    variation ``std / (mean + eps)``. A gain (a longer exposure) keeps it, a tone curve lowers it
    somewhat (``x ** gamma`` multiplies it by about ``gamma``), and an added offset, the haze of lifted
    blacks, lowers it without bound. The loss is ``mean(relu(ratio * cv_in - cv_out))``: zero until
    the output has lost more than ``1 - ratio`` of the input's contrast.
    """

    def variation(x: Tensor) -> Tensor:
        y = _unit(x).mean(dim=1, keepdim=True)
        mean = F.avg_pool2d(y, cell, ceil_mode=True)
        var = (F.avg_pool2d(y * y, cell, ceil_mode=True) - mean * mean).clamp_min(0.0)
        return torch.sqrt(var + 1e-8) / (mean + eps)

    return F.relu(ratio * variation(reference).detach() - variation(output)).mean()


def chroma_noise_loss(output: Tensor) -> Tensor:
    """Mean absolute high-frequency chroma: colour grain.

    Chroma is each channel of the ``[0, 1]`` image minus the mean of the three; its high frequencies are
    chroma minus its 3 x 3 box average (reflection at the borders). Natural photos carry little
    chroma at the finest scale (the premise of chroma subsampling), while amplified sensor noise carries
    much; luminance detail costs nothing.
    """
    x = _unit(output)
    chroma = x - x.mean(dim=1, keepdim=True)
    smooth = F.avg_pool2d(F.pad(chroma, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    return (chroma - smooth).abs().mean()


class StructureLoss(nn.Module):
    """Module form of :func:`structure_loss`."""

    def forward(self, output: Tensor, reference: Tensor) -> Tensor:
        return structure_loss(output, reference)


class ColorLoss(nn.Module):
    """Module form of :func:`color_loss`."""

    def forward(self, output: Tensor, reference: Tensor) -> Tensor:
        return color_loss(output, reference)


class ExposureLoss(nn.Module):
    """Module form of :func:`exposure_loss` with a fixed target ``level``."""

    def __init__(self, level: float = 0.5) -> None:
        super().__init__()
        self.level = level

    def forward(self, output: Tensor) -> Tensor:
        return exposure_loss(output, self.level)
