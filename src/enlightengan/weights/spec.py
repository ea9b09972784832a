"""A weights file declared as data (:class:`WeightsSpec`), and the one SHA-256 helper that checks it."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

__all__ = ["WeightsSpec", "sha256_file"]

_HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file: bundled with the package (``url`` None) or published for download.

    Attributes:
        name: a short identifier for messages.
        filename: the file's name, in the package's weights folder or in the download cache.
        sha256: the file's full SHA-256 (64 hex digits) or a prefix of at least 8 (torchvision puts the
            first 8 hex digits of the SHA-256 into its file names and checks only those); ``None``
            while a bundled file has not been released (it is then refused).
        licence: the licence of the weights (and of the data they were trained on).
        input_format: what the network expects as input (channel order, range, normalisation).
        description: how the weights were made, in one line.
        url: where the file is downloaded from; ``None`` for a file shipped inside the package.
    """

    name: str
    filename: str
    sha256: str | None
    licence: str
    input_format: str
    description: str
    url: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _HEX.fullmatch(self.sha256):
            raise ValueError(
                f"WeightsSpec {self.name!r}: sha256 must be 8 to 64 lower-case hex digits, "
                f"got {self.sha256!r}"
            )
        if not self.filename or "/" in self.filename or "\\" in self.filename:
            raise ValueError(
                f"WeightsSpec {self.name!r}: filename must be a plain file name, got {self.filename!r}"
            )

    @property
    def expected(self) -> str:
        """The declared SHA-256 as messages show it (``...`` after a prefix)."""
        return f"{self.sha256}{'...' if self.sha256 is not None and len(self.sha256) < 64 else ''}"

    def matches(self, digest: str) -> bool:
        """Whether a file with SHA-256 ``digest`` (64 hex digits) is this one (never, without a sha256)."""
        return self.sha256 is not None and digest.startswith(self.sha256)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_size``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
