"""Fast mode: run the generator at reduced resolution, carry its enhancement to full resolution.

EnlightenGAN's output is ``image + latent`` with ``latent = conv10(features) * gray`` (Jiang et al.,
IEEE TIP 2021, Sec. III-C: the attention-guided, "times-residual" output). The fast mode

1. shrinks the image by ``scale`` per side (antialiased bilinear), runs the exact generator there
   (:func:`~enlightengan.inference.tiling.tiled_forward`, so memory stays bounded), and keeps its ``latent``;
2. fits, in every ``(2 radius + 1)``-pixel window of the small image, the latent as an affine
   function of the attention map, ``latent ≈ a * gray + b`` per colour channel (the guided filter of
   He, Sun and Tang, TPAMI 2013, with the attention map as guide; box filters only);
3. upsamples the smoothed coefficients ``a`` and ``b`` bilinearly and applies them to the
   *full-resolution* attention map: ``output = image + a * gray + b`` (the "fast guided filter" of
   He and Sun, arXiv 1505.00996).

The attention map is computed exactly at full resolution, so edges of the attention (where the
latent changes fastest) stay sharp; only the coefficients are coarse. Nothing is rescaled in the
result: the output has the input's size.

With the default ``scale = 2.25`` the network sees about a fifth of the pixels, the smallest shrink
that made fast mode 8 times faster than the eager reference at 4 MP on a 2-core CPU (``scale = 2``:
about 7 times). Quality against the exact output, per image and per scale, is measured in
``benchmarks/RESULTS.md`` ("Fast mode").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.generator import GeneratorOutput
from ..models.ops import attention_map, shrink
from .backend import Backend
from .tiling import DEFAULT_MARGIN, default_budget, tiled_output

__all__ = [
    "FastConfig",
    "box_filter",
    "fast_forward",
    "fast_latent",
    "guided_coefficients",
    "reduced_budget",
]


@dataclass(frozen=True)
class FastConfig:
    """Settings of the fast mode.

    Attributes:
        scale: the network runs on the image shrunk by this factor per side (>= 1; 1 is exact).
        radius: guided-filter window radius, in pixels of the shrunk image.
        eps: guided-filter regularisation (on the ``[0, 1]`` attention scale); larger is smoother.
    """

    scale: float = 2.25
    radius: int = 1
    eps: float = 1e-4

    def __post_init__(self) -> None:
        if not self.scale >= 1.0:
            raise ValueError(f"FastConfig.scale must be at least 1 (1 = exact), got {self.scale}")
        if not isinstance(self.radius, int) or self.radius < 1:
            raise ValueError(f"FastConfig.radius must be a positive integer, got {self.radius!r}")
        if not self.eps > 0:
            raise ValueError(f"FastConfig.eps must be positive, got {self.eps}")


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over each ``(2 radius + 1)^2`` window, windows cut at the borders (not zero-padded).

    Args:
        x: ``N x C x H x W``, any range.
        radius: window radius in pixels.

    Returns:
        ``N x C x H x W``: each value the mean of the pixels of its window that lie in the image.

    Example:
        >>> box_filter(torch.ones(1, 1, 3, 3), 1).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    height, width = x.shape[-2:]
    # sums of shifted slices: several times faster than F.avg_pool2d on NCHW maps (18 ms against 3.4 ms
    # for 3 x 0.8 MP on a 2-core Xeon, the fast mode's size at 4 MP); the counts make the border exact
    ones = x.new_ones(1, 1, height, width)
    return _window_sum(x, radius).div_(_window_sum(ones, radius))


def _window_sum(x: Tensor, radius: int) -> Tensor:
    """Sum over each ``(2 radius + 1)^2`` window, zeros outside the image (separable: rows, then columns)."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (radius, radius, radius, radius))
    rows = padded[..., :, 0:width].clone()
    for k in range(1, 2 * radius + 1):
        rows.add_(padded[..., :, k : k + width])
    total = rows[..., 0:height, :].clone()
    for k in range(1, 2 * radius + 1):
        total.add_(rows[..., k : k + height, :])
    return total


def guided_coefficients(guide: Tensor, target: Tensor, radius: int, eps: float) -> tuple[Tensor, Tensor]:
    """Per-pixel affine coefficients of the guided filter, smoothed (He et al., TPAMI 2013, Eq. 5-8).

    Args:
        guide: ``N x 1 x H x W`` (the attention map, ``[0, 1]``).
        target: ``N x C x H x W`` (the latent, ``[-1, 1]`` scale).
        radius: window radius.
        eps: regularisation of the slope.

    Returns:
        ``(a, b)``, each ``N x C x H x W``, such that ``a * guide + b`` is the guided-filter output.
    """
    mean_g = box_filter(guide, radius)
    mean_t = box_filter(target, radius)
    cov = box_filter(guide * target, radius) - mean_g * mean_t
    var = box_filter(guide * guide, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_t - a * mean_g
    return box_filter(a, radius), box_filter(b, radius)


def reduced_budget(image: Tensor, budget: int | None = None) -> int:
    """Bytes left for the reduced-resolution run of :func:`fast_latent` on ``image`` out of ``budget``.

    The input, the latent, the attention map and the caller's copies stay at full resolution; the
    rest of ``budget`` (default :func:`~enlightengan.inference.tiling.default_budget`) sizes the tiles.
    """
    full_size = 4 * image.numel() * image.element_size()
    return max((budget if budget is not None else default_budget()) - full_size, 0)


def fast_latent(
    backend: Backend,
    image: Tensor,
    config: FastConfig | None = None,
    *,
    tile: int | None = None,
    margin: int = DEFAULT_MARGIN,
    budget: int | None = None,
    base_width: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """The approximate residual ``latent`` of ``generator(image)`` (see the module doc).

    Args:
        backend: runs the network (:mod:`enlightengan.inference.backend`).
        image: ``N x 3 x H x W`` RGB in ``[-1, 1]``.
        config: the fast-mode settings (default :class:`FastConfig`).
        tile, margin, budget, base_width: passed to :func:`~enlightengan.inference.tiling.tiled_output` for
            the reduced-resolution run; the full-resolution buffers of this function are taken out
            of ``budget`` (default :func:`~enlightengan.inference.tiling.default_budget`) first.
        progress: called with ``(tiles done, tiles in all)`` after each tile of that run.

    Returns:
        ``N x 3 x H x W`` at the input's size; ``image + latent`` is the enhanced image (not clipped).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
    config = config or FastConfig()
    height, width = image.shape[-2:]
    budget = reduced_budget(image, budget)
    with torch.inference_mode():
        small = shrink(image, config.scale)
        if small is image:  # nothing to shrink: the exact path
            output = tiled_output(
                backend,
                image,
                tile=tile,
                margin=margin,
                budget=budget,
                base_width=base_width,
                progress=progress,
            )
            return output.sub_(image)
        small_gray = attention_map(small)
        small_output = tiled_output(
            backend,
            small,
            small_gray,
            tile=tile,
            margin=margin,
            budget=budget,
            base_width=base_width,
            progress=progress,
        )
        a, b = guided_coefficients(small_gray, small_output.sub_(small), config.radius, config.eps)
        del small, small_output
        gray = attention_map(image)
        latent = torch.empty_like(image)
        # One channel at a time keeps the full-resolution temporaries to two single-channel maps.
        for c in range(3):
            up_a = F.interpolate(a[:, c : c + 1], size=(height, width), mode="bilinear", align_corners=False)
            up_b = F.interpolate(b[:, c : c + 1], size=(height, width), mode="bilinear", align_corners=False)
            torch.addcmul(up_b, up_a, gray, out=latent[:, c : c + 1])
        return latent


def fast_forward(
    backend: Backend,
    image: Tensor,
    config: FastConfig | None = None,
    *,
    tile: int | None = None,
    margin: int = DEFAULT_MARGIN,
    base_width: int = 32,
) -> GeneratorOutput:
    """Approximate ``generator(image)``: :func:`fast_latent` and ``output = image + latent``.

    Returns:
        :class:`GeneratorOutput` at the input's size (``output`` not clipped).
    """
    latent = fast_latent(backend, image, config, tile=tile, margin=margin, base_width=base_width)
    return GeneratorOutput(image + latent, latent)
