"""Weights declared for download: fetched once into the torch hub cache and verified.

A :class:`~enlightengan.weights.spec.WeightsSpec` with a ``url`` names a published file (URL,
SHA-256, licence, the input it expects). :func:`cached_path` returns its local copy in
``<torch hub dir>/checkpoints/<filename>`` (the folder torchvision uses, so one download serves both;
``$TORCH_HOME/hub/checkpoints`` when ``TORCH_HOME`` is set), downloading it first if needed. A download
goes to a temporary file beside the target, its SHA-256 is checked, and only then is it renamed onto
the target: an interrupted or corrupted download never leaves a file that looks cached. Offline, the
error says which URL to fetch and where to put it.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

from .._atomic import atomic_path
from .spec import WeightsSpec, sha256_file

__all__ = ["VGG16_TORCHVISION", "WeightsUnavailableError", "cached_path", "hub_dir"]


class WeightsUnavailableError(RuntimeError):
    """Weights that are neither cached nor downloadable; the message says what to fetch and where."""


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
        ValueError: ``spec`` declares no URL or no SHA-256 (not a download).
        WeightsUnavailableError: not cached and ``download`` is False; the download failed (offline,
            refused, HTTP error, timeout); the downloaded or cached file's SHA-256 does not match. The
            message gives the URL and the exact path to put the file at.
    """
    if spec.url is None or spec.sha256 is None:
        raise ValueError(f"{spec.name} is not declared for download (it needs a url and a sha256)")
    target = hub_dir() / "checkpoints" / spec.filename
    if target.is_file():
        digest = sha256_file(target)
        if not spec.matches(digest):
            raise WeightsUnavailableError(
                f"{target} is not the expected {spec.name} file: its SHA-256 is {digest}, expected "
                f"{spec.expected}. Delete it, then " + _where(spec, target)
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
            if not spec.matches(digest):
                # raising inside atomic_path deletes the temporary file and leaves no target
                raise WeightsUnavailableError(
                    f"the file downloaded from {spec.url} has SHA-256 {digest}, expected {spec.expected}; "
                    "it was deleted. Try again later, or " + _where(spec, target)
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
