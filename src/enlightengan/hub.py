"""Pretrained weights declared as data, downloaded once into the torch hub cache and verified.

Files land in ``<torch hub dir>/checkpoints/<filename>`` (``$TORCH_HOME/hub/checkpoints`` when
``TORCH_HOME`` is set, as torchvision does), through a temporary file that is renamed only after its
SHA-256 matches.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_path

__all__ = ["VGG16_TORCHVISION", "WeightsSpec", "WeightsUnavailableError", "cached_path", "hub_dir", "sha256_file"]


class WeightsUnavailableError(RuntimeError):
    """Weights that are neither cached nor downloadable; the message says what to fetch and where."""


@dataclass(frozen=True)
class WeightsSpec:
    """A published weights file.

    Attributes:
        sha256: the full SHA-256, or a prefix of it (torchvision names files with the first 8 hex digits).
    """

    name: str
    url: str
    filename: str
    sha256: str
    licence: str
    input_format: str
    description: str


VGG16_TORCHVISION = WeightsSpec(
    name="vgg16-imagenet-torchvision",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    filename="vgg16-397923af.pth",
    sha256="397923af",
    licence="BSD-3-Clause (torchvision); ImageNet-trained",
    input_format="RGB [0, 1], ImageNet mean/std normalisation",
    description="VGG-16 trained on ImageNet, as torchvision publishes it",
)


def hub_dir() -> Path:
    """torch's hub folder (``$TORCH_HOME/hub``, else ``~/.cache/torch/hub``)."""
    import torch.hub

    return Path(torch.hub.get_dir())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _matches(digest: str, expected: str) -> bool:
    return digest.startswith(expected.lower())


def _help(spec: WeightsSpec, target: Path) -> str:
    return f"download {spec.url} and put it at {target} (or pass its path explicitly)"


def cached_path(spec: WeightsSpec, *, download: bool = True, progress: bool = True, timeout: float = 60.0) -> Path:
    """The local path of ``spec``'s file, downloading and verifying it if needed.

    Raises:
        WeightsUnavailableError: not cached and ``download`` is False, the download failed (offline,
            HTTP error) or the file's SHA-256 does not match.
    """
    target = hub_dir() / "checkpoints" / spec.filename
    if target.is_file():
        if not _matches(sha256_file(target), spec.sha256):
            raise WeightsUnavailableError(
                f"{target} exists but its SHA-256 does not start with {spec.sha256}: delete it, then "
                + _help(spec, target)
            )
        return target
    if not download:
        raise WeightsUnavailableError(f"{spec.name} is not cached: " + _help(spec, target))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as tmp:
            _download(spec.url, tmp, progress, timeout)
            digest = sha256_file(tmp)
            if not _matches(digest, spec.sha256):
                raise WeightsUnavailableError(
                    f"the download of {spec.url} has SHA-256 {digest}, expected {spec.sha256}...: "
                    "it was discarded; try again later or " + _help(spec, target)
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise WeightsUnavailableError(f"could not download {spec.name} ({exc}); " + _help(spec, target)) from exc
    return target


def _download(url: str, destination: Path, progress: bool, timeout: float) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "enlightengan"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https/http URLs from specs
        total = int(response.headers.get("Content-Length") or 0) or None
        with destination.open("wb") as handle, tqdm(
            total=total, unit="B", unit_scale=True, desc=destination.name.split(".part")[0], disable=not progress
        ) as bar:
            while block := response.read(1 << 16):
                handle.write(block)
                bar.update(len(block))
