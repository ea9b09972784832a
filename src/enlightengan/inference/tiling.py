"""Exact inference of the generator on images of any size, in bounded memory, by overlapping tiles.

The released code halves every image wider than 2200 px to fit in memory; this module
never rescales. It computes what :class:`~enlightengan.models.generator.EnlightenGenerator` computes
on the whole image, tile by tile:

1. the image is (virtually) reflection-padded to the 16-pixel grid exactly as ``forward`` pads it
   (:func:`~enlightengan.models.generator.pad_to_multiple`), and the attention map is the whole
   image's (it is per pixel, so each tile's share is computed with the tile);
2. the padded image is cut into 16-aligned tiles that overlap by ``margin`` pixels on every inner
   side; grid alignment makes every max-pool and attention-map pyramid of a tile equal to the whole
   image's, and the backends sample the ``align_corners=True`` upsampling at the whole image's
   positions (:class:`~enlightengan.inference.placement.Placement`);
3. each tile's centre (its core) is kept. What differs from untiled inference is only the effect of
   the zero padding that the convolutions see at the tile borders, which fades with the distance from
   the border.

How far that effect reaches was measured (``benchmarks/RESULTS.md``, "Tiling"): with the fixture
weights of the published architecture on two real photos, the largest change of any output value
(in 8-bit grey levels) is about 1.3 with 16 px of overlap, 0.2 with 32 px, 0.04 with 48 px and 0.017
with 64 px; it shrinks about fivefold per 16 px. A trained generator reaches further: the bundled
default model, tiled with 512-pixel tiles on a real photo enlarged to 1 and 4 MP, was off by up to 16
and 108 grey levels with 48 px of overlap, by up to 4 with 64 px, and within one level with 80 and
96 px; but with 320-pixel tiles (more borders) 96 px left pixels 2 levels off at 4 MP and 6 levels off
at 12 MP (99.9937% within one level with the automatic tiles under a 256 MB budget), where 128 px
left no pixel changed at 4 MP (320- and 384-pixel tiles) and at 12 MP (384) (``benchmarks/bench_tiling.py``).
:data:`DEFAULT_MARGIN` is therefore 128 px. (Tiles run as whole images, without the whole image's
upsampling positions, stay about 0.2 grey levels off at any overlap.)

The tile size is chosen from the memory available (:func:`auto_tile_area`) unless given.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..models.generator import GeneratorOutput
from ..models.ops import MULTIPLE, attention_map, crop_padding, pad_to_multiple
from .backend import Backend
from .placement import Placement

__all__ = [
    "BYTES_PER_PIXEL_PER_WIDTH",
    "DEFAULT_MARGIN",
    "DEFAULT_MEMORY_CAP",
    "MIN_TILE",
    "TRIM_MIN_PIXELS",
    "TilePlan",
    "auto_tile_area",
    "available_memory",
    "default_budget",
    "plan_tiles",
    "release_memory",
    "runs_whole",
    "tiled_forward",
    "tiled_output",
]

#: Overlap (pixels, a multiple of 16) kept on each inner side of a tile; see the module doc.
DEFAULT_MARGIN = 128

#: Working memory of the torch backend per pixel of a tile and per unit of base width, from the
#: peak resident memory measured at the published width 32: 550 bytes per pixel for a whole image,
#: 560-730 for a placed tile, more across a sequence of tiles of different shapes (the C allocator's
#: fragmentation); 24 x 32 = 768 keeps a 12 MP image under 1.5 GB (benchmarks/RESULTS.md).
BYTES_PER_PIXEL_PER_WIDTH = 24

#: The automatic tile size never plans for more than this many bytes (1 GiB): it keeps a 12 MP
#: image under 1.5 GB peak resident memory while a 1 MP image still runs in one piece.
DEFAULT_MEMORY_CAP = 1 << 30

#: The smallest tile side the planner uses, whatever the budget: two margins and a 128-pixel core (384
#: px). With the earlier 96-pixel margin, smaller tiles drifted from the whole image's result at a few
#: pixels (up to 3 grey levels with 256- and 288-pixel tiles at 1 MP, up to 6 with 320-pixel tiles at
#: 12 MP; benchmarks/RESULTS.md, "Tiling: the bundled model"). An explicit ``tile`` may go down to
#: ``2 * DEFAULT_MARGIN + 16``.
MIN_TILE = 2 * DEFAULT_MARGIN + 128

#: Images computed in one piece are followed by :func:`release_memory` from this many pixels (batch
#: included) on: below it the trim costs more than it returns (10 ms of a 0.25 MP image's 250 ms,
#: measured on a 2-core Xeon, for a working set under 100 MB that the next image reuses).
TRIM_MIN_PIXELS = 1 << 20


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` on other C libraries."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_memory() -> None:
    """Give the C allocator's free memory back to the system (glibc; a no-op elsewhere).

    Tensors freed by a tile mostly return to glibc's heap rather than to the system, and tiles of
    several shapes then fragment it: in a measured sequence of ten tile shapes the resident memory
    grew by 70 MB per shape. Trimming after each tile keeps it at one tile's working set, for about
    1% of the time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _cgroup_limit() -> int | None:
    """Memory left under a cgroup v2 limit (containers), if one is set."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((root / "memory.current").read_text()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes of memory this process can still use: ``MemAvailable`` (Linux), else ``sysconf``.

    Returns 4 GiB when neither source exists (non-Linux systems without ``sysconf`` pages).
    """
    found: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            found = 4 << 30
    limit = _cgroup_limit()
    return min(found, limit) if limit is not None else found


def default_budget() -> int:
    """Bytes the automatic tile size plans for: ``min(available_memory() / 2, DEFAULT_MEMORY_CAP)``."""
    return min(available_memory() // 2, DEFAULT_MEMORY_CAP)


def auto_tile_area(
    base_width: int,
    *,
    batch: int = 1,
    reserved: int = 0,
    budget: int | None = None,
    per_width: int = BYTES_PER_PIXEL_PER_WIDTH,
) -> int:
    """The largest tile (in pixels) whose working memory fits the budget.

    Args:
        base_width: the generator's base width (32 for the published model); memory scales with it.
        batch: images processed together.
        reserved: bytes already committed to the whole-image buffers (kept out of the budget).
        budget: bytes to plan for; default :func:`default_budget`.
        per_width: working bytes per tile pixel and unit of base width of the backend used.

    Returns:
        A pixel count, at least ``MIN_TILE ** 2``.
    """
    if budget is None:
        budget = default_budget()
    per_pixel = per_width * base_width * max(batch, 1)
    return max((budget - reserved) // per_pixel, MIN_TILE * MIN_TILE)


@dataclass(frozen=True)
class TilePlan:
    """How a padded ``height x width`` image is cut.

    ``rows`` and ``cols`` list ``(start, stop, core_start, core_stop)`` per tile along each axis, in
    padded-image pixels (all multiples of 16): the tile is ``[start, stop)``, and ``[core_start,
    core_stop)`` is the part of it kept. Cores partition the axis.
    """

    height: int
    width: int
    margin: int
    rows: tuple[tuple[int, int, int, int], ...]
    cols: tuple[tuple[int, int, int, int], ...]

    @property
    def tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def computed_pixels(self) -> int:
        """Pixels the network runs on, overlaps counted (compare with ``height * width``)."""
        return sum(r[1] - r[0] for r in self.rows) * sum(c[1] - c[0] for c in self.cols)

    @property
    def overhead(self) -> float:
        """Computed pixels over image pixels: 1.0 for one tile, more with overlaps."""
        return self.computed_pixels / (self.height * self.width)


def _axis(length: int, pieces: int, margin: int) -> tuple[tuple[int, int, int, int], ...]:
    """Split ``length`` (a multiple of 16) into ``pieces`` grid-aligned cores with their tiles."""
    blocks = length // MULTIPLE
    base, extra = divmod(blocks, pieces)
    spans = []
    start = 0
    for i in range(pieces):
        stop = start + (base + (1 if i < extra else 0)) * MULTIPLE
        spans.append((max(start - margin, 0), min(stop + margin, length), start, stop))
        start = stop
    return tuple(spans)


def _extent(spans: tuple[tuple[int, int, int, int], ...]) -> tuple[int, int]:
    sizes = [s[1] - s[0] for s in spans]
    return max(sizes), sum(sizes)


def plan_tiles(
    height: int, width: int, *, max_area: int, max_side: int | None = None, margin: int = DEFAULT_MARGIN
) -> TilePlan:
    """Cut a padded image into the fewest computed pixels with tiles of at most ``max_area`` pixels.

    Args:
        height, width: the padded image size (multiples of 16).
        max_area: the largest tile, in pixels.
        max_side: the largest tile side, if any (``--tile``).
        margin: overlap on each inner tile side, a multiple of 16.

    Raises:
        ValueError: sizes not on the 16 grid, or limits too small to hold a tile with its margins.
    """
    if height % MULTIPLE or width % MULTIPLE or height <= 0 or width <= 0:
        raise ValueError(f"plan_tiles needs a padded size (multiples of {MULTIPLE}), got {height}x{width}")
    if margin < 0 or margin % MULTIPLE:
        raise ValueError(f"the tile margin must be a non-negative multiple of {MULTIPLE}, got {margin}")
    side = max_side if max_side is not None else max(height, width)
    whole = ((0, height, 0, height),), ((0, width, 0, width),)
    if height * width <= max_area and max(height, width) <= side:
        return TilePlan(height, width, margin, *whole)
    smallest = 2 * margin + MULTIPLE
    if side < smallest or max_area < smallest * smallest:
        raise ValueError(
            f"tiles of at most {side} px and {max_area} pixels cannot hold a margin of {margin} px on "
            f"both sides: use tiles of at least {smallest} px (a multiple of {MULTIPLE}) or a smaller margin"
        )

    def options(length: int) -> list[tuple[int, int, tuple[tuple[int, int, int, int], ...]]]:
        found = []
        for pieces in range(1, length // MULTIPLE + 1):
            spans = _axis(length, pieces, margin)
            biggest, total = _extent(spans)
            if biggest <= side:
                found.append((biggest, total, spans))
            if biggest <= smallest:
                break
        return found

    best: tuple[int, tuple[tuple[int, int, int, int], ...], tuple[tuple[int, int, int, int], ...]] | None = (
        None
    )
    row_options, col_options = options(height), options(width)
    for row_big, row_total, rows in row_options:
        for col_big, col_total, cols in col_options:
            if row_big * col_big > max_area:
                continue
            cost = row_total * col_total
            if best is None or cost < best[0]:
                best = (cost, rows, cols)
            break  # more column pieces only add overlap for this row split
    if best is None:
        raise ValueError(
            f"no tiling of {height}x{width} fits tiles of {max_area} pixels with {margin} px margins: "
            "allow larger tiles or a smaller margin"
        )
    return TilePlan(height, width, margin, best[1], best[2])


def _reflect_index(start: int, stop: int, offset: int, size: int, device: torch.device) -> Tensor:
    """Source indices of padded positions ``[start, stop)`` (``offset`` px padded before; one reflection)."""
    idx = torch.arange(start - offset, stop - offset, device=device)
    idx = torch.where(idx < 0, -idx, idx)
    return torch.where(idx >= size, 2 * (size - 1) - idx, idx)


def _pads(height: int, width: int) -> tuple[int, int]:
    """Top and left padding of :func:`~enlightengan.models.generator.pad_to_multiple`."""
    return ((-height) % MULTIPLE) // 2, ((-width) % MULTIPLE) // 2


def _plan(
    backend: Backend, image: Tensor, *, tile: int | None, margin: int, budget: int | None, base_width: int
) -> TilePlan:
    """The tiles :func:`tiled_output` cuts ``image`` (``N x 3 x H x W``) into."""
    n, _, height, width = image.shape
    padded_h, padded_w = height + (-height) % MULTIPLE, width + (-width) % MULTIPLE
    if tile is not None:
        side: int | None = tile - tile % MULTIPLE
        if side is None or side < MULTIPLE:
            raise ValueError(f"tile must be at least {MULTIPLE} pixels, got {tile}")
        max_area = side * side
    else:
        side = None
        # The input, the output and about one more copy held by the caller (decoded pixels and
        # their conversions), as measured through `enlightengan enhance` on a 12 MP JPEG.
        reserved = 3 * image.numel() * image.element_size()
        per_width = getattr(backend, "bytes_per_pixel_per_width", BYTES_PER_PIXEL_PER_WIDTH)
        max_area = auto_tile_area(base_width, batch=n, reserved=reserved, budget=budget, per_width=per_width)
    return plan_tiles(padded_h, padded_w, max_area=max_area, max_side=side, margin=margin)


def runs_whole(
    backend: Backend,
    image: Tensor,
    *,
    tile: int | None = None,
    margin: int = DEFAULT_MARGIN,
    budget: int | None = None,
    base_width: int = 32,
) -> bool:
    """Whether :func:`tiled_output` with these arguments runs ``image`` in one piece (no tiles).

    Args:
        backend, image, tile, margin, budget, base_width: as for :func:`tiled_output`.
    """
    plan = _plan(backend, image, tile=tile, margin=margin, budget=budget, base_width=base_width)
    return _one_piece(plan, image)


def _one_piece(plan: TilePlan, image: Tensor) -> bool:
    """One piece: a single tile, or an image too small for a single reflection (forward()'s padding)."""
    return plan.tiles == 1 or min(image.shape[-2:]) < MULTIPLE


def tiled_output(
    backend: Backend,
    image: Tensor,
    gray: Tensor | None = None,
    *,
    tile: int | None = None,
    margin: int = DEFAULT_MARGIN,
    budget: int | None = None,
    base_width: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """The generator's ``forward(image, gray).output`` computed tile by tile in bounded memory.

    Args:
        backend: what runs the network on each tile (:mod:`enlightengan.inference.backend`).
        image: ``N x 3 x H x W`` RGB in ``[-1, 1]``, any ``H, W >= 1``.
        gray: ``N x 1 x H x W`` attention map in ``[0, 1]``; default :func:`attention_map` of ``image``.
        tile: the largest tile side in pixels (rounded down to a multiple of 16); ``None`` chooses the
            tile area from the memory available (:func:`auto_tile_area`); an image that fits runs
            in one piece, exactly as untiled inference.
        margin: overlap on each inner tile side (multiple of 16); see :data:`DEFAULT_MARGIN`.
        budget: bytes for the automatic tile size (default: see :func:`auto_tile_area`).
        base_width: the generator's base width, for the automatic tile size.
        progress: called with ``(tiles done, tiles in all)`` after each tile.

    Returns:
        ``N x 3 x H x W``, the enhanced image on the ``[-1, 1]`` scale (not clipped); nothing is
        rescaled.

    Raises:
        ValueError: bad shapes, or a ``tile`` too small for the margin.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
    n, _, height, width = image.shape
    if gray is not None and gray.shape != (n, 1, height, width):
        raise ValueError(f"gray must be N x 1 x H x W matching the image, got {tuple(gray.shape)}")

    padded_h, padded_w = height + (-height) % MULTIPLE, width + (-width) % MULTIPLE
    plan = _plan(backend, image, tile=tile, margin=margin, budget=budget, base_width=base_width)

    if _one_piece(plan, image):
        output = _whole(backend, image, gray)
        if n * height * width >= TRIM_MIN_PIXELS:
            release_memory()
        if progress is not None:
            progress(1, 1)
        return output

    output = torch.empty_like(image)
    top, left = _pads(height, width)
    done = 0
    for r0, r1, cr0, cr1 in plan.rows:
        rows = _reflect_index(r0, r1, top, height, image.device)
        for c0, c1, cc0, cc1 in plan.cols:
            cols = _reflect_index(c0, c1, left, width, image.device)
            piece = image.index_select(2, rows).index_select(3, cols)
            # The attention map is per pixel: the tile's share of the whole image's map.
            piece_gray = (
                attention_map(piece) if gray is None else gray.index_select(2, rows).index_select(3, cols)
            )
            out, _ = backend.run(piece, piece_gray, Placement(r0, c0, padded_h, padded_w))
            # Keep the core, clipped to the unpadded image.
            y0, y1 = max(cr0 - top, 0), min(cr1 - top, height)
            x0, x1 = max(cc0 - left, 0), min(cc1 - left, width)
            if y1 > y0 and x1 > x0:
                output[:, :, y0:y1, x0:x1] = out[
                    :, :, y0 + top - r0 : y1 + top - r0, x0 + left - c0 : x1 + left - c0
                ]
            del out, piece, piece_gray
            release_memory()
            done += 1
            if progress is not None:
                progress(done, plan.tiles)
    return output


def tiled_forward(
    backend: Backend,
    image: Tensor,
    gray: Tensor | None = None,
    *,
    tile: int | None = None,
    margin: int = DEFAULT_MARGIN,
    budget: int | None = None,
    base_width: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> GeneratorOutput:
    """:func:`tiled_output` with the residual: ``GeneratorOutput(output, output - image)``.

    ``latent`` equals the network's own latent up to float rounding (about 1e-7).
    """
    output = tiled_output(
        backend,
        image,
        gray,
        tile=tile,
        margin=margin,
        budget=budget,
        base_width=base_width,
        progress=progress,
    )
    return GeneratorOutput(output, output - image)


def _whole(backend: Backend, image: Tensor, gray: Tensor | None) -> Tensor:
    if gray is None:
        gray = attention_map(image)
    padded, pads = pad_to_multiple(image)
    gray_padded, _ = pad_to_multiple(gray)
    output, _ = backend.run(padded, gray_padded)
    return crop_padding(output, pads)
