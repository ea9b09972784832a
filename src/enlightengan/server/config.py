"""Limits and settings of the web app and HTTP service (``enlightengan serve``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MEBIBYTE", "ServerConfig"]

#: One "MB" of ``--max-upload-mb``: 2**20 bytes.
MEBIBYTE = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    """What the server accepts and how much work it takes on at once.

    Attributes:
        max_upload_bytes: largest image file accepted (raw body, or the ``file`` field of a multipart
            form); larger uploads are answered with 413 before they are read to the end.
        max_pixels: largest ``width * height`` accepted, checked from the file header before the
            image is decoded (decompression bombs); larger images are answered with 413.
        workers: threads that decode, enhance and encode uploads. Decoding and encoding run in
            parallel; the generator itself runs one image at a time (one model, one lock).
        queue: uploads that may wait for a worker. With ``workers`` running, ``workers + queue``
            requests are admitted at once; the next one is answered with 503 and ``Retry-After``.
            This bounds the memory and temporary disk space in use: a waiting request holds only
            its upload, on disk; only the ``workers`` hold decoded images.
        temp_root: folder in which the server makes its one temporary folder (default: the
            system's); every upload and result lives there only while its request runs, and the
            folder is removed when the server stops.
    """

    max_upload_bytes: int = 50 * MEBIBYTE
    max_pixels: int = 50_000_000
    workers: int = 2
    queue: int = 8
    temp_root: Path | None = None

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.queue, bool) or not isinstance(self.queue, int) or self.queue < 0:
            raise ValueError(f"ServerConfig.queue must be an integer >= 0, got {self.queue!r}")
        if self.temp_root is not None and not Path(self.temp_root).is_dir():
            raise ValueError(f"ServerConfig.temp_root {self.temp_root} is not an existing folder")

    @property
    def capacity(self) -> int:
        """Requests admitted at once: running plus waiting."""
        return self.workers + self.queue

    @staticmethod
    def upload_bytes(megabytes: float) -> int:
        """``--max-upload-mb`` in bytes (1 MB = 2**20 bytes), rejecting values that are not positive."""
        if not math.isfinite(megabytes) or megabytes <= 0:
            raise ValueError(f"the upload limit must be a positive number of MB, got {megabytes!r}")
        return max(1, int(megabytes * MEBIBYTE))
