"""Training previews: one row per image of input | attention | latent | output | normal, as an 8-bit PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enlightengan.training.preview import PreviewWriter, make_grid

S = 6


def _tiles(row: int) -> dict[str, torch.Tensor]:
    """Constant tiles whose 8-bit values are known by hand (``[-1, 1]`` -> ``(x + 1) / 2 * 255``, rounded)."""
    values = {  # row 0, row 1
        "input": (-1.0, 1.5),  # 0; 1.5 is clipped to 1 -> 255
        "gray": (0.5, 0.0),  # [0, 1] scale: 128 (127.5 rounds half up), 0
        "latent": (0.0, -0.2),  # 128, 102
        "output": (1.0, 0.2),  # 255, 153
        "normal": (-0.5, -3.0),  # 64, 0 (clipped)
    }
    return {name: torch.full((1 if name == "gray" else 3, S, S), pair[row]) for name, pair in values.items()}


def _batch() -> dict[str, torch.Tensor]:
    rows = [_tiles(0), _tiles(1)]
    return {name: torch.stack([rows[0][name], rows[1][name]]) for name in rows[0]}


#: The 8-bit value of each tile of each row, by hand.
EXPECTED = [[0, 128, 128, 255, 64], [255, 0, 102, 153, 0]]


def test_grid_layout_and_values_by_hand() -> None:
    b = _batch()
    grid = make_grid(b["input"], b["gray"], b["latent"], b["output"], b["normal"])
    assert grid.shape == (2 * S, 5 * S, 3) and grid.dtype == np.uint8
    for row, values in enumerate(EXPECTED):
        for column, value in enumerate(values):
            tile = grid[row * S : (row + 1) * S, column * S : (column + 1) * S]
            assert (tile == value).all(), (row, column, np.unique(tile))


def test_grey_attention_becomes_three_equal_channels() -> None:
    b = _batch()
    b["gray"][0, 0, 2, 3] = 1.0  # one white attention pixel in the first row
    grid = make_grid(b["input"], b["gray"], b["latent"], b["output"], b["normal"])
    assert grid[2, S + 3].tolist() == [255, 255, 255]


def test_writer_saves_the_grid_as_png_per_epoch_and_step(tmp_path: Path) -> None:
    b = _batch()
    writer = PreviewWriter(tmp_path)
    grid = writer.write(3, 42, b["input"], b["gray"], b["latent"], b["output"], b["normal"])
    path = tmp_path / "previews" / "epoch_0003_step_0000042.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (5 * S, 2 * S)
        assert np.array_equal(np.asarray(image), grid)
    assert [p.name for p in (tmp_path / "previews").iterdir()] == [path.name]  # no temporary file left


def test_a_disabled_writer_returns_the_grid_and_writes_nothing(tmp_path: Path) -> None:
    b = _batch()
    grid = PreviewWriter(tmp_path, enabled=False).write(
        1, 1, b["input"], b["gray"], b["latent"], b["output"], b["normal"]
    )
    assert grid.shape == (2 * S, 5 * S, 3)
    assert not (tmp_path / "previews").exists()  # other ranks of a distributed run write nothing
