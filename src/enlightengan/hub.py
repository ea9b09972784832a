"""Pretrained weights declared as data, downloaded once into the torch hub cache and verified.

A :class:`WeightsSpec` names a published file (URL, SHA-256, licence, the input it expects).
:func:`cached_path` returns its local copy in ``<torch hub dir>/checkpoints/<filename>`` (the folder
torchvision uses, so one download serves both; ``$TORCH_HOME/hub/checkpoints`` when ``TORCH_HOME`` is
set), downloading it first if needed. A download goes to a temporary file beside the target, its
SHA-256 is checked, and only then is it renamed onto the target: an interrupted or corrupted download
never leaves a file that looks cached. Offline, the error says which URL to fetch and where to put it.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_path

__all__ = [
    "VGG16_TORCHVISION",
    "WeightsSpec",
    "WeightsUnavailableError",
    "cached_path",
    "hub_dir",
    "sha256_file",
]

_HEX = re.compile(r"[0-9a-f]{8,64}")


class WeightsUnavailableError(RuntimeError):
    """Weights that are neither cached nor downloadable; the message says what to fetch and where."""


@dataclass(frozen=True)
class WeightsSpec:
    """A published weights file.

    Attributes:
        name: a short identifier for messages.
        url: where the file is downloaded from.
        filename: its name in the cache folder.
        sha256: the file's full SHA-256 (64 hex digits) or a prefix of at least 8 (torchvision puts the
            first 8 hex digits of the SHA-256 into its file names and checks only those).
        licence: the licence of the weights.
        input_format: what the network expects as input (channel order, range, normalisation).
        description: one line for humans.
    """

    name: str
    url: str
    filename: str
    sha256: str
    licence: str
    input_format: str
    description: str

    def __post_init__(self) -> None:
        if not _HEX.fullmatch(self.sha256):
            raise ValueError(
                f"WeightsSpec {self.name!r}: sha256 must be 8 to 64 lower-case hex digits, "
                f"got {self.sha256!r}"
            )
        if not self.filename or "/" in self.filename or "\\" in self.filename:
            raise ValueError(
                f"WeightsSpec {self.name!r}: filename must be a plain file name, got {self.filename!r}"
            )


#: torchvision's ImageNet VGG-16 (``torchvision.models.vgg16(weights="IMAGENET1K_V1")``).
VGG16_TORCHVISION = WeightsSpec(
    name="vgg16-imagenet-torchvision",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    filename="vgg16-397923af.pth",
    sha256="397923af",
    licence="BSD-3-Clause (torchvision); trained on ImageNet, whose terms of use apply to the data",
    input_format="RGB [0, 1], minus ImageNet mean (0.485, 0.456, 0.406), over std (0.229, 0.224, 0.225)",
    description="VGG-16 trained for ImageNet classification (Simonyan & Zisserman 2015), torchvision's file",
)


def hub_dir() -> Path:
    """torch's hub folder: ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``, else ``~/.cache/torch/hub``)."""
    import torch.hub

    return Path(torch.hub.get_dir())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _where(spec: WeightsSpec, target: Path) -> str:
    return f"download {spec.url} and save it as {target} (or pass the path of a copy you already have)"


def cached_path(
    spec: WeightsSpec, *, download: bool = True, progress: bool = True, timeout: float = 60.0
) -> Path:
    """The local path of ``spec``'s file, downloading and verifying it first if it is not cached.

    Args:
        spec: the file.
        download: allow the download; False makes a missing file an error at once.
        progress: show a tqdm progress bar while downloading.
        timeout: seconds without an answer from the server before giving up.

    Returns:
        ``hub_dir() / "checkpoints" / spec.filename``, whose SHA-256 matches ``spec.sha256``.

    Raises:
        WeightsUnavailableError: not cached and ``download`` is False; the download failed (offline,
            refused, HTTP error, timeout); the downloaded or cached file's SHA-256 does not match. The
            message gives the URL and the exact path to put the file at.
    """
    target = hub_dir() / "checkpoints" / spec.filename
    if target.is_file():
        digest = sha256_file(target)
        if not digest.startswith(spec.sha256):
            raise WeightsUnavailableError(
                f"{target} is not the expected {spec.name} file: its SHA-256 is {digest}, expected "
                f"{spec.sha256}{'...' if len(spec.sha256) < 64 else ''}. Delete it, then "
                + _where(spec, target)
            )
        return target
    if not download:
        raise WeightsUnavailableError(
            f"{spec.name} is not cached and downloading is off: {_where(spec, target)}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            _download(spec.url, tmp, progress=progress, timeout=timeout)
            digest = sha256_file(tmp)
            if not digest.startswith(spec.sha256):
                # raising inside atomic_path deletes the temporary file and leaves no target
                raise WeightsUnavailableError(
                    f"the file downloaded from {spec.url} has SHA-256 {digest}, expected {spec.sha256}"
                    f"{'...' if len(spec.sha256) < 64 else ''}; it was deleted. Try again later, or "
                    + _where(spec, target)
                )
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        # URLError covers HTTP errors and refused connections; OSError covers timeouts, resets and
        # an unwritable cache folder
        raise WeightsUnavailableError(
            f"could not download {spec.name} ({type(exc).__name__}: {exc}). Without network access, "
            + _where(spec, target)
        ) from exc
    return target


def _download(url: str, destination: Path, *, progress: bool, timeout: float) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "enlightengan"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # URLs come from WeightsSpecs
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with (
            destination.open("wb") as handle,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(url).name,
                disable=not progress,
            ) as bar,
        ):
            while block := response.read(1 << 16):
                handle.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
