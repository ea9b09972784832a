"""Progress on stderr for the commands that go through images: per image, and per tile of a large one.

On a terminal it is tqdm bars: one over the images and, while a photo that needs several tiles is
enhanced, a second one over its tiles. Elsewhere (a log file, a pipe, a CI job) bars would be carriage
returns and escape codes, so it is plain lines instead: ``[3/13] name.png`` as each image starts, and
``[3/13] name.png: tile 4/12`` after each tile of a large photo. stdout is never written to.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["ImageProgress", "TileBar"]


class TileBar:
    """A tqdm bar over the tiles of one photo, shown below the main bar only once a photo turns out
    to need more than one tile. Call it as the Enhancer's ``progress(done, total)``; :meth:`close`
    after the photo."""

    def __init__(self, *, disable: bool = False, stream: TextIO | None = None) -> None:
        self.disable = disable
        self.stream = stream
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.disable or total <= 1:
            return
        if self._bar is None:
            from tqdm import tqdm

            stream = self.stream or sys.stderr
            self._bar = tqdm(total=total, unit="tile", desc="tiles", leave=False, position=1, file=stream)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ImageProgress:
    """Progress of a run over ``total`` images on ``stream`` (default stderr); see the module doc.

    Args:
        total: images in the run.
        desc: the bar's label on a terminal.
        stream: where to write (default ``sys.stderr``).
        terminal: bars (``True``) or lines (``False``); default: whether ``stream`` is a terminal.
    """

    def __init__(
        self, total: int, *, desc: str, stream: TextIO | None = None, terminal: bool | None = None
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.index = 0
        self.name = ""
        self._bar: Any = None
        self._tiles = TileBar(stream=self.stream)
        if self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="image", file=self.stream, dynamic_ncols=True)

    def start(self, name: str) -> None:
        """Image number ``index + 1``, called ``name``, begins."""
        self.index += 1
        self.name = name
        if self._bar is not None:
            self._bar.set_postfix_str(name, refresh=True)
        else:
            self._line(f"[{self.index}/{self.total}] {name}")

    def tiles(self, done: int, total: int) -> None:
        """The Enhancer's ``progress`` callback: ``done`` of ``total`` tiles of the current image."""
        if total <= 1:
            return
        if self._bar is not None:
            self._tiles(done, total)
        else:
            self._line(f"[{self.index}/{self.total}] {self.name}: tile {done}/{total}")

    def finish(self) -> None:
        """The current image is done (scored, or failed)."""
        self._tiles.close()
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        self._tiles.close()
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ImageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
