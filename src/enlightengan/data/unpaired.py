"""Unpaired low-light / normal-light training data (Jiang et al., IEEE TIP 2021, Sec. IV-A).

Each item is a random crop of one low-light image and of an independently drawn normal-light image,
with random horizontal and vertical flips; with probability ``darken_prob`` the generator's input is a
darker copy of the low crop (its ``[0, 1]`` values divided by a factor drawn from ``darken_range``), and
the attention map is computed from that input.

Images are decoded lazily in ``__getitem__`` (DataLoader workers decode in parallel; nothing is held in
memory). All randomness of item ``i`` in epoch ``e`` comes from ``numpy.random.default_rng([seed, e, i])``,
so items are identical across runs, worker counts and resumed runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from ..models.generator import attention_map

__all__ = ["UnpairedImageDataset", "load_rgb", "scan_images"]


def load_rgb(path: Path) -> NDArray[np.uint8]:
    """Decode ``path`` fully as an upright (EXIF orientation applied) RGB uint8 array ``H x W x 3``."""
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return np.asarray(upright.convert("RGB"), dtype=np.uint8)


def scan_images(files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split ``files`` into readable images and ``(path, reason)`` for the others.

    Checks what is cheap to check before training: the file opens as an image with a non-empty size and
    passes Pillow's ``verify`` (PNG checksums, structure). Decoding errors found later are handled in
    :class:`UnpairedImageDataset`.
    """
    good: list[Path] = []
    bad: list[tuple[Path, str]] = []
    for path in files:
        try:
            if path.stat().st_size == 0:
                raise ValueError("empty file (0 bytes)")
            with Image.open(path) as image:
                if image.width < 1 or image.height < 1:
                    raise ValueError("image has no pixels")
                image.verify()
        except Exception as exc:  # Pillow raises many exception types for bad files
            bad.append((path, f"{type(exc).__name__}: {exc}"))
        else:
            good.append(path)
    return good, bad


def _fit_crop(rgb: NDArray[np.uint8], crop: int) -> NDArray[np.uint8]:
    """Images smaller than the crop are upscaled (bicubic) so that their shorter side equals ``crop``."""
    h, w = rgb.shape[:2]
    if min(h, w) >= crop:
        return rgb
    scale = crop / min(h, w)
    size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def _random_crop_flip(rgb: NDArray[np.uint8], crop: int, flip: bool, rng: np.random.Generator) -> NDArray[np.float32]:
    rgb = _fit_crop(rgb, crop)
    h, w = rgb.shape[:2]
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    out = rgb[top : top + crop, left : left + crop].astype(np.float32) / 255.0
    if flip:
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.5:
            out = out[::-1, :]
    return np.ascontiguousarray(out)


def _to_signed_tensor(unit: NDArray[np.float32]) -> Tensor:
    return torch.from_numpy(unit).permute(2, 0, 1).mul(2.0).sub(1.0).contiguous()


class UnpairedImageDataset(Dataset[dict[str, Tensor]]):
    """Random unpaired crops for EnlightenGAN training.

    Args:
        low_files: low-light images (one item per file and epoch).
        normal_files: normal-light images, drawn independently and uniformly for each item.
        crop_size: side of the square crops (images smaller than that are upscaled first, bicubic, so
            their shorter side equals the crop).
        darken_prob: probability that the generator input is the darkened low crop.
        darken_range: the darkening divides ``[0, 1]`` values by a factor uniform in this range.
        flip: random horizontal and vertical flips (each with probability 0.5).
        seed: base of all randomness.

    Items: ``{"low", "input", "normal"}``: ``3 x S x S`` in ``[-1, 1]`` (``low`` is the crop before
    darkening, ``input`` the generator input); ``"gray"``: ``1 x S x S`` attention map of ``input``.
    """

    def __init__(
        self,
        low_files: Sequence[Path],
        normal_files: Sequence[Path],
        crop_size: int,
        *,
        darken_prob: float = 0.5,
        darken_range: tuple[float, float] = (2.0, 4.0),
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if not low_files or not normal_files:
            raise ValueError("UnpairedImageDataset needs at least one low-light and one normal-light image")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if not 0.0 <= darken_prob <= 1.0 or not 0 < darken_range[0] <= darken_range[1]:
            raise ValueError(f"invalid darkening: prob {darken_prob}, range {darken_range}")
        self.low_files = list(low_files)
        self.normal_files = list(normal_files)
        self.crop_size = crop_size
        self.darken_prob = darken_prob
        self.darken_range = darken_range
        self.flip = flip
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.low_files)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops, flips and pairings ``__getitem__`` returns."""
        self.epoch = epoch

    def _load(self, files: list[Path], index: int) -> NDArray[np.uint8]:
        """Decode ``files[index]``; an undecodable file is replaced by the next readable one, with a warning."""
        for offset in range(len(files)):
            path = files[(index + offset) % len(files)]
            try:
                return load_rgb(path)
            except Exception as exc:  # decoding errors of any kind
                warnings.warn(f"skipping unreadable training image {path}: {exc}", stacklevel=2)
        raise RuntimeError("no training image could be decoded")

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        normal_index = int(rng.integers(len(self.normal_files)))
        low = _random_crop_flip(self._load(self.low_files, index), self.crop_size, self.flip, rng)
        normal = _random_crop_flip(self._load(self.normal_files, normal_index), self.crop_size, self.flip, rng)
        generator_input = low
        if rng.random() < self.darken_prob:
            generator_input = low / np.float32(rng.uniform(*self.darken_range))
        input_tensor = _to_signed_tensor(generator_input)
        return {
            "low": _to_signed_tensor(low),
            "input": input_tensor,
            "gray": attention_map(input_tensor[None])[0],
            "normal": _to_signed_tensor(normal),
        }
