"""Unpaired low-light / normal-light training data (Jiang et al., IEEE TIP 2021, Sec. IV-A).

Each item is a random square crop of one low-light image and of an independently drawn normal-light
image, each with its own random horizontal and vertical flips. With probability ``darken_prob`` the
generator's input is a darker copy of the low-light crop (its ``[0, 1]`` values divided by a factor
drawn uniformly from ``darken_range``, ``[2, 4]`` in the paper), and the attention map is computed from
that input. The self feature preserving loss compares the output with the crop before darkening.

Images are decoded lazily in ``__getitem__`` (DataLoader workers decode in parallel; no image is kept
in memory). All randomness of item ``i`` in epoch ``e`` comes from
``numpy.random.default_rng([seed, e, i])``, so an item is the same across runs, worker counts and
resumed runs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..image_io import SUPPORTED_MODES, read_image
from ..models.ops import attention_map
from .folders import DataError

__all__ = ["UnpairedImageDataset", "load_rgb", "scan_images"]

_GREY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def load_rgb(path: str | os.PathLike[str]) -> NDArray[Any]:
    """Decode an image fully and upright (EXIF orientation applied) as RGB.

    Any mode is converted to RGB: greyscale is repeated on three channels, palette and CMYK images are
    converted, alpha is dropped. 16-bit files keep their precision.

    Returns:
        ``H x W x 3`` array, ``uint8``, or ``uint16`` for 16-bit files (read by
        :func:`enlightengan.image_io.read_image`).

    Raises:
        enlightengan.image_io.ImageReadError: the file cannot be decoded (its reason says why).
    """
    loaded = read_image(path)
    if loaded.array16 is not None:
        return np.ascontiguousarray(loaded.array16[..., :3])
    image = loaded.image
    if image.mode in _GREY16_MODES:
        grey = np.clip(np.asarray(image).astype(np.int64), 0, 65535).astype(np.uint16)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def scan_images(files: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split ``files`` into usable images and ``(path, reason)`` for the others, without decoding them.

    A cheap check for the start of training: the file is not empty, Pillow recognises its header, the
    size is positive, the pixel mode is one :func:`load_rgb` handles, and Pillow's ``verify`` passes
    (for PNG this checks every chunk's CRC). Damage found only when decoding (a truncated JPEG) is
    handled by :class:`UnpairedImageDataset`, which replaces such files with a warning.

    Returns:
        ``(good, bad)``: the readable paths in the given order, and the others with a reason.
    """
    good: list[Path] = []
    bad: list[tuple[Path, str]] = []
    for name in files:
        path = Path(name)
        try:
            if path.stat().st_size == 0:
                raise ValueError("empty file (0 bytes)")
            with Image.open(path) as image:
                if image.width < 1 or image.height < 1:
                    raise ValueError(f"the image has no pixels ({image.width} x {image.height})")
                if image.mode not in SUPPORTED_MODES:
                    raise ValueError(f"unsupported pixel mode {image.mode!r}")
                image.verify()
        except Exception as exc:  # Pillow raises many exception types for damaged files
            bad.append((path, f"{type(exc).__name__}: {exc}"))
        else:
            good.append(path)
    return good, bad


def _unit(array: NDArray[Any]) -> NDArray[np.float32]:
    """uint8 / uint16 ``H x W x 3`` -> float32 in ``[0, 1]``."""
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return array.astype(np.float32) / np.float32(scale)


def _upscale(unit: NDArray[np.float32], crop: int) -> NDArray[np.float32]:
    """Bicubic upscaling so that the shorter side equals ``crop`` (aspect ratio kept, clipped to [0, 1])."""
    h, w = unit.shape[:2]
    scale = crop / min(h, w)
    size = (max(crop, round(h * scale)), max(crop, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    return y[0].permute(1, 2, 0).numpy()


def _shrink(array: NDArray[Any], factor: float, crop: int) -> NDArray[Any]:
    """``array`` shrunk by ``factor`` per side (antialiased), its shorter side kept at least ``crop``."""
    h, w = array.shape[:2]
    factor = min(factor, min(h, w) / crop)
    if factor <= 1.0:
        return array
    x = torch.from_numpy(np.ascontiguousarray(_unit(array))).permute(2, 0, 1)[None]
    size = (max(crop, round(h / factor)), max(crop, round(w / factor)))
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)
    return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())


def _random_crop(
    array: NDArray[Any],
    crop: int,
    flip: bool,
    rng: np.random.Generator,
    resize_range: tuple[float, float] = (1.0, 1.0),
) -> NDArray[np.float32]:
    """A random ``crop x crop x 3`` window of an RGB image, randomly flipped, as float32 in ``[0, 1]``.

    Draws from ``rng`` in a fixed order: the shrink factor (only when ``resize_range`` is not
    ``(1, 1)``), top, left, then (with ``flip``) horizontal, vertical.
    """
    if resize_range != (1.0, 1.0):
        array = _shrink(array, float(rng.uniform(*resize_range)), crop)
    if min(array.shape[:2]) < crop:
        array = _upscale(_unit(array), crop)
    h, w = array.shape[:2]
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    window = array[top : top + crop, left : left + crop]
    # crop before converting to float: a large photo is never held as float32
    out = window if window.dtype == np.float32 else _unit(window)
    if flip:
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.5:
            out = out[::-1, :]
    return np.ascontiguousarray(out, dtype=np.float32)


def _signed_tensor(unit: NDArray[np.float32]) -> Tensor:
    """``S x S x 3`` float32 ``[0, 1]`` -> ``3 x S x S`` in ``[-1, 1]``."""
    return torch.from_numpy(unit).permute(2, 0, 1).mul(2.0).sub(1.0).contiguous()


class UnpairedImageDataset(Dataset[dict[str, Tensor]]):
    """Random unpaired crops for EnlightenGAN training.

    Args:
        low_files: low-light images; one item per file and epoch.
        normal_files: normal-light images; each item draws one uniformly, independently of the low image.
        crop_size: side ``S`` of the square crops. Rule for small images: an image whose shorter side is
            below ``S`` is first upscaled (bicubic, aspect ratio kept) so that its shorter side equals
            ``S``; larger images are never resized.
        darken_prob: probability that the generator input is the darkened low crop.
        darken_range: the darkening divides the crop's ``[0, 1]`` values by a factor uniform in this
            range (``low <= high``, ``low > 0``).
        flip: random horizontal and vertical flips, each with probability 0.5, drawn separately for the
            low crop (applied to ``low``, ``input`` and ``gray`` alike) and the normal crop.
        seed: the base of all randomness.
        resize_range: each image is first shrunk by a factor drawn uniformly from this range
            (antialiased, never below the crop size); ``(1, 1)`` never resizes.

    Items (all float32):
        ``"low"``: ``3 x S x S`` RGB in ``[-1, 1]``, the low-light crop before darkening;
        ``"input"``: ``3 x S x S`` RGB in ``[-1, 1]``, the generator input (darkened or equal to ``low``);
        ``"gray"``: ``1 x S x S`` in ``[0, 1]``, :func:`~enlightengan.models.generator.attention_map` of
        ``input``;
        ``"normal"``: ``3 x S x S`` RGB in ``[-1, 1]``, a crop of an independently drawn normal-light image.

    Files that fail to decode (damage :func:`scan_images` cannot see) are replaced by the next file
    of the same list that decodes, with a warning, so the substitution is deterministic too.

    DataLoader workers copy the dataset when an iterator starts: call :meth:`set_epoch` before creating
    each epoch's iterator (with ``persistent_workers=True`` the new epoch would not reach the workers).
    """

    def __init__(
        self,
        low_files: Sequence[str | os.PathLike[str]],
        normal_files: Sequence[str | os.PathLike[str]],
        crop_size: int,
        *,
        darken_prob: float = 0.5,
        darken_range: tuple[float, float] = (2.0, 4.0),
        flip: bool = True,
        seed: int = 0,
        resize_range: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if not low_files:
            raise DataError("UnpairedImageDataset needs at least one low-light image")
        if not normal_files:
            raise DataError("UnpairedImageDataset needs at least one normal-light image")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if not 0.0 <= darken_prob <= 1.0:
            raise ValueError(f"darken_prob must be in [0, 1], got {darken_prob}")
        low, high = (float(v) for v in darken_range)
        if not 0.0 < low <= high:
            raise ValueError(
                f"darken_range must be (low, high) with 0 < low <= high, got {tuple(darken_range)}"
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy seeds), got {seed}")
        self.low_files = [Path(p) for p in low_files]
        self.normal_files = [Path(p) for p in normal_files]
        self.crop_size = crop_size
        self.darken_prob = darken_prob
        self.darken_range = (low, high)
        self.flip = flip
        self.resize_range = (float(resize_range[0]), float(resize_range[1]))
        if not 1.0 <= self.resize_range[0] <= self.resize_range[1]:
            raise ValueError(f"resize_range must be (low, high) with 1 <= low <= high, got {resize_range}")
        self.seed = seed
        self.epoch = 0
        self._undecodable: set[Path] = set()  # per process; only saves repeated attempts and warnings

    def __len__(self) -> int:
        return len(self.low_files)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops, flips, darkening and normal-light draws items come from."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def _decode(self, files: list[Path], index: int, kind: str) -> NDArray[Any]:
        """``files[index]`` decoded; if it fails, the next file (cyclically) that decodes, with a warning."""
        for offset in range(len(files)):
            path = files[(index + offset) % len(files)]
            if path in self._undecodable:
                continue
            try:
                return load_rgb(path)
            except Exception as exc:  # any decoding failure: the file is replaced, training goes on
                self._undecodable.add(path)
                warnings.warn(
                    f"skipping {kind} training image {path}, which cannot be decoded "
                    f"({type(exc).__name__}: {exc}); the next {kind} image is used instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
        raise DataError(f"none of the {len(files)} {kind} training images can be decoded")

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} low-light images")
        # one generator per item, seeded by (seed, epoch, index): independent of worker and order
        rng = np.random.default_rng([self.seed, self.epoch, index])
        normal_index = int(rng.integers(len(self.normal_files)))
        size, flip, resize = self.crop_size, self.flip, self.resize_range
        low = _random_crop(self._decode(self.low_files, index, "low-light"), size, flip, rng, resize)
        normal_image = self._decode(self.normal_files, normal_index, "normal-light")
        normal = _random_crop(normal_image, size, flip, rng, resize)
        darken = rng.random() < self.darken_prob
        factor = rng.uniform(*self.darken_range)  # always drawn: the stream does not depend on `darken`
        generator_input = low / np.float32(factor) if darken else low
        input_tensor = _signed_tensor(generator_input)
        return {
            "low": _signed_tensor(low),
            "input": input_tensor,
            "gray": attention_map(input_tensor[None])[0],
            "normal": _signed_tensor(normal),
        }
