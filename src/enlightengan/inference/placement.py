"""Tile geometry: where a tile sits in its image, and where the decoder's upsampling must sample it.

The generator's bilinear upsampling uses ``align_corners=True``, whose sampling positions depend on
the size of the *whole* feature map (output pixel ``i`` reads input position ``i (n - 1) / (2 n - 1)``).
A tile run as if it were a whole image would therefore sample up to half a pixel off at every decoder
level (8 full-resolution pixels at the coarsest one). Given the tile's :class:`Placement`, the backends
sample at the positions the whole image uses, so a tile differs from the untiled result only near its
own borders, where convolutions see zero padding instead of the neighbouring pixels
(docs/ARCHITECTURE.md, "Tiles").

The same positions in three forms: :func:`upsample_at` computes the upsampling of a tile in PyTorch
(the torch backend), :func:`tile_roi` gives the regions of interest with which ONNX's ``Resize`` in
``tf_crop_and_resize`` mode samples them (the ONNX graphs, which take it as an input), and
:func:`tile_taps` the indices and weights of every output row and column (the OpenVINO backend).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.ops import MULTIPLE

__all__ = ["LERP_MIN_PIXELS", "Placement", "tile_roi", "tile_taps", "upsample_at"]

#: Whole channels-last maps upsampled to at least this many pixels are interpolated in runs of
#: ``torch.lerp`` (rows, then columns) rather than by ``F.interpolate`` (see :func:`upsample_at`).
LERP_MIN_PIXELS = 1 << 17


@dataclass(frozen=True)
class Placement:
    """Where a 16-aligned tile sits inside a 16-aligned image (full-resolution pixels).

    Attributes:
        top, left: the tile's first row and column in the image; multiples of 16.
        height, width: the whole image's size; multiples of 16.
    """

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("top", "left", "height", "width"):
            value = getattr(self, name)
            if value < 0 or value % MULTIPLE:
                raise ValueError(
                    f"Placement.{name} must be a non-negative multiple of {MULTIPLE}, got {value}"
                )

    def check(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless a ``height x width`` tile fits at this placement."""
        if self.top + height > self.height or self.left + width > self.width:
            raise ValueError(
                f"a {height}x{width} tile at ({self.top}, {self.left}) does not fit in the "
                f"{self.height}x{self.width} image of its placement"
            )

    def is_whole(self, height: int, width: int) -> bool:
        return (self.top, self.left, self.height, self.width) == (0, 0, height, width)


def _axis_taps(
    out_start: int, out_len: int, in_start: int, in_len: int, n_out: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Indices and weights of a x2 ``align_corners=True`` upsampling along one axis of a tile.

    The whole axis goes from ``n_out / 2`` to ``n_out`` samples; the tile holds output samples
    ``[out_start, out_start + out_len)`` and input samples ``[in_start, in_start + in_len)``.
    Positions are computed in float32 exactly as PyTorch's CPU kernel does (scale
    ``(n_in - 1) / (n_out - 1)``, source ``scale * i``). Samples that need input outside the tile
    (only at the tile's border) are clamped to its edge.

    Returns:
        ``(i0, i1, weight)``: local input indices (int64) and the weight of ``i1``, each ``out_len``.
    """
    n_in = n_out // 2
    if n_out > 1:
        scale = torch.tensor(n_in - 1, dtype=torch.float32) / torch.tensor(n_out - 1, dtype=torch.float32)
    else:
        scale = torch.tensor(0.0)
    src = torch.arange(out_start, out_start + out_len, dtype=torch.float32) * scale
    i0 = src.floor().clamp(max=n_in - 1)
    weight = (src - i0).clamp(0.0, 1.0)
    g0 = i0.long()
    g1 = torch.where(g0 < n_in - 1, g0 + 1, g0)
    local0 = (g0 - in_start).clamp(0, in_len - 1)
    local1 = (g1 - in_start).clamp(0, in_len - 1)
    return local0, local1, weight


def _runs(i0: Tensor, i1: Tensor) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Split an axis's output samples into runs that read consecutive input pairs.

    A run ``(start, pairs, first)`` covers outputs ``start .. start + 2 pairs - 1``; output
    ``start + 2 k + r`` (``r`` = 0 or 1) interpolates inputs ``first + k`` and ``first + k + 1``. With
    a step just under 1/2, outputs pair up except at one or two places per tile (and at clamped
    borders); those come back as single outputs.
    """
    first_index, second_index = i0.tolist(), i1.tolist()
    runs: list[tuple[int, int, int]] = []
    singles: list[int] = []
    j, n = 0, len(first_index)
    while j < n:
        base = first_index[j]
        k = j
        while k < n and first_index[k] == base + (k - j) // 2 and second_index[k] == first_index[k] + 1:
            k += 1
        pairs = (k - j) // 2
        if pairs:
            runs.append((j, pairs, base))
            singles.extend(range(j + 2 * pairs, k))
            j = k
        else:
            singles.append(j)
            j += 1
    return runs, singles


def _lerp_axis(x: Tensor, dim: int, taps: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """``out[j] = lerp(x[i0[j]], x[i1[j]], w[j])`` along ``dim``, without gathering whole tensors.

    Each run of paired outputs is one ``torch.lerp`` of two shifted views of ``x`` written straight
    into a ``(pairs, 2)`` view of the output: a single pass over the result, as a native kernel would.
    """
    i0, i1, weight = taps
    weight = weight.to(x.device, x.dtype)
    shape = list(x.shape)
    shape[dim] = len(i0)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    runs, singles = _runs(i0, i1)
    for start, pairs, first in runs:
        view_shape = [1] * (x.ndim + 1)
        view_shape[dim], view_shape[dim + 1] = pairs, 2
        torch.lerp(
            x.narrow(dim, first, pairs).unsqueeze(dim + 1),
            x.narrow(dim, first + 1, pairs).unsqueeze(dim + 1),
            weight[start : start + 2 * pairs].view(view_shape),
            out=out.narrow(dim, start, 2 * pairs).unflatten(dim, (pairs, 2)),
        )
    if singles:
        index = torch.tensor(singles, device=x.device)
        view_shape = [1] * x.ndim
        view_shape[dim] = len(singles)
        values = torch.lerp(
            x.index_select(dim, i0[index.cpu()].to(x.device)),
            x.index_select(dim, i1[index.cpu()].to(x.device)),
            weight[index].view(view_shape),
        )
        out.index_copy_(dim, index, values)
    return out


def upsample_at(
    x: Tensor, scale_level: int, placement: Placement | None, rows: tuple[int, int] | None = None
) -> Tensor:
    """Bilinear x2 upsampling with ``align_corners=True``, sampled where the whole image samples.

    Args:
        x: ``N x C x h x w`` features of a tile at the level whose pixels are ``2 * scale_level``
            full-resolution pixels wide.
        scale_level: full-resolution pixels per output pixel (8, 4, 2 or 1 in the generator).
        placement: where the tile sits; ``None`` (or a whole-image placement) means ``x`` is the
            whole feature map.
        rows: only output rows ``[start, stop)`` of the ``2h`` (a band; default all).

    Returns:
        ``N x C x (stop - start) x 2w``; channels-last when ``x`` is. For the whole map and all rows
        this is ``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)`` (computed so
        for contiguous tensors; channels-last ones are interpolated row and column runs at a time,
        from :data:`LERP_MIN_PIXELS` output pixels on, where that beats PyTorch's channels-last kernel).

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> whole = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        >>> torch.equal(upsample_at(x, 1, None), whole)
        True
    """
    h, w = x.shape[-2:]
    whole = placement is None or placement.is_whole(2 * h * scale_level, 2 * w * scale_level)
    start, stop = rows if rows is not None else (0, 2 * h)
    # PyTorch's channels-last bilinear kernel slows down on large maps (a 32-channel map to 432 x 576:
    # 27-105 ms against 19-24 ms in runs of lerps, 2-core Xeon); smaller ones it does faster
    lerp_whole = (
        x.ndim == 4
        and x.shape[1] > 1
        and x.is_contiguous(memory_format=torch.channels_last)
        and 4 * h * w >= LERP_MIN_PIXELS
    )
    if whole and (start, stop) == (0, 2 * h) and not lerp_whole:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
    top, left = (0, 0) if whole or placement is None else (placement.top, placement.left)
    height, width = (
        (2 * h * scale_level, 2 * w * scale_level)
        if whole or placement is None
        else (
            placement.height,
            placement.width,
        )
    )
    row_taps = _axis_taps(
        top // scale_level + start, stop - start, top // (2 * scale_level), h, height // scale_level
    )
    # Work on the N x H x W x C view: for channels_last tensors it is contiguous, so the runs are
    # slices of whole pixels and the result keeps the layout.
    band = _lerp_axis(x.permute(0, 2, 3, 1), 1, row_taps).permute(0, 3, 1, 2)
    if whole and not lerp_whole:
        # Columns span the whole map: align_corners=True on the band's own rows is the identity
        # along rows and the whole image's positions along columns.
        return F.interpolate(band, size=(stop - start, 2 * w), mode="bilinear", align_corners=True)
    col_taps = _axis_taps(left // scale_level, 2 * w, left // (2 * scale_level), w, width // scale_level)
    return _lerp_axis(band.permute(0, 2, 3, 1), 2, col_taps).permute(0, 3, 1, 2)


#: Full-resolution pixels per output pixel of the decoder's four upsamplings, coarsest first.
DECODER_SCALES = (8, 4, 2, 1)

#: ``(first index, second index, weight of the second)`` of each output sample along one axis.
Taps = tuple[Tensor, Tensor, Tensor]


def tile_taps(height: int, width: int, placement: Placement | None) -> list[tuple[Taps, Taps]]:
    """The ``(rows, columns)`` taps of each decoder upsampling of a ``height x width`` tile.

    Entry ``k`` serves the ``k``-th upsampling (to 1/8, 1/4, 1/2 and full resolution): output row
    ``j`` of that level is ``lerp(x[first[j]], x[second[j]], weight[j])`` of the tile's input rows, at
    the positions the whole image's ``align_corners=True`` upsampling samples (as
    :func:`upsample_at` samples them), and likewise for columns. Indices are int64, weights float32.
    """
    full_h, full_w = (height, width) if placement is None else (placement.height, placement.width)
    top, left = (0, 0) if placement is None else (placement.top, placement.left)
    taps = []
    for scale_level in DECODER_SCALES:
        rows, cols = (
            _axis_taps(
                offset // scale_level,
                size // scale_level,
                offset // (2 * scale_level),
                size // (2 * scale_level),
                full // scale_level,
            )
            for offset, size, full in ((top, height, full_h), (left, width, full_w))
        )
        taps.append((rows, cols))
    return taps


def tile_roi(height: int, width: int, placement: Placement | None) -> np.ndarray:
    """The ``4 x 8`` ``roi`` input of the ``"tiles"`` graph for a ``height x width`` tile.

    Row ``k`` serves the ``k``-th decoder upsampling (to 1/8, 1/4, 1/2 and full resolution). The
    graph pads the ``L`` input samples of an axis with one replicated sample on each side, and
    ``tf_crop_and_resize`` makes output sample ``j`` (of ``2 L``) read padded position
    ``start (L + 1) + j (end - start) (L + 1) / (2 L - 1)``. The whole image's ``align_corners=True``
    upsampling reads tile position ``j s + o s - o / 2``, with ``o`` the tile's first output sample
    and ``s = (n - 1) / (2 n - 1)`` for an axis of ``n`` output samples; so
    ``start = (o s - o / 2 + 1) / (L + 1)`` and ``end = start + s (2 L - 1) / (L + 1)``.
    """
    full_h, full_w = (height, width) if placement is None else (placement.height, placement.width)
    top, left = (0, 0) if placement is None else (placement.top, placement.left)
    roi = np.zeros((4, 8), dtype=np.float64)
    roi[:, 4:6] = 1.0  # batch and channel axes: the identity
    for k, scale_level in enumerate(DECODER_SCALES):
        for axis, (offset, size, full) in enumerate(((top, height, full_h), (left, width, full_w))):
            o = offset // scale_level
            length = size // (2 * scale_level)  # input samples of this axis in the tile
            n_out = full // scale_level
            step = (n_out // 2 - 1) / (n_out - 1)
            start = (o * step - o / 2 + 1) / (length + 1)
            end = start + step * (2 * length - 1) / (length + 1)
            roi[k, 2 + axis] = start
            roi[k, 6 + axis] = end
    return roi.astype(np.float32)
