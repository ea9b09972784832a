"""Whole-image validation while training, in eval mode, as users run the generator.

Crops in train mode can look fine while eval-mode outputs on whole images drift, and a single score
hides what people see (blobs, casts, harm to good photos). The validator scores up to three held-out
sets, each optional:

* ``data.val_low`` (+ ``data.val_ref``): low-light photos, with paired references when given:
  PSNR, SSIM, mean CIEDE2000 to the reference (``de_ref``), NIQE, brightness; the references are
  also enhanced as inputs: low-key but well-exposed photos (LOL references average a mean brightness
  of about 0.45, many below it), whose change, mean CIEDE2000 to themselves, is ``de_lowkey``
  (reported, not part of the score);
* ``data.val_dim``: dim photos without references, of the kind users bring: NIQE (``niqe_dim``),
  invented colour in their dark regions (``false_color_dim``, :func:`enlightengan.metrics.false_color`),
  brightness;
* ``data.val_normal``: well-exposed photos, which should come out nearly unchanged: mean CIEDE2000
  between output and input (``de_normal``, the do-no-harm measure).

The criterion for "best": with ``val_dim`` or ``val_normal``, the lower ``score``, a sum in which one
unit is about one visible step of each measure::

    score = niqe_dim + false_color_dim / 5 + de_normal / 5 - psnr / 2

(each term present only when its set is); otherwise PSNR when references are given (higher is better),
else NIQE (lower is better). Every measure is logged on its own, with a montage of the first images
of each set (input above output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from ..config import DataConfig
from ..data.folders import list_images
from ..image_io import from_tensor, to_tensor
from ..models.generator import exposure_fade_factor

__all__ = ["ValidationResult", "Validator", "composite_score"]

#: images of each set shown in the validation montage, and the height of each panel
MONTAGE_IMAGES = 3
MONTAGE_HEIGHT = 128


def _load_rgb(path: Path) -> NDArray[np.uint8]:
    """8-bit RGB, as the metrics (NIQE on the 8-bit luminance) expect."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def composite_score(metrics: dict[str, float]) -> float:
    """The validation score (lower is better) from whichever of its measures ``metrics`` holds."""
    score = 0.0
    if "niqe_dim" in metrics:
        score += metrics["niqe_dim"] + metrics["false_color_dim"] / 5
    if "de_normal" in metrics:
        score += metrics["de_normal"] / 5
    if "psnr" in metrics:
        score -= metrics["psnr"] / 2
    return score


@dataclass
class ValidationResult:
    metrics: dict[str, float]
    #: "score" (lower is better), "psnr" (higher is better) or "niqe" (lower is better)
    criterion: str
    #: ``H x W x 3`` uint8: input above output for the first images of each set (None without images)
    montage: NDArray[np.uint8] | None = None

    def better_than(self, best: dict[str, Any]) -> bool:
        value, previous = self.metrics[self.criterion], best[self.criterion]
        return value > previous if self.criterion == "psnr" else value < previous


def _images(folder: str | None, limit: int) -> list[Path]:
    """Up to ``limit`` images of ``folder``, evenly spaced in name order (a held-out set of scenes shot
    at several exposures lists each scene's frames together: the first few would be one scene)."""
    if folder is None:
        return []
    files = list_images(Path(folder))
    step = max(1, len(files) // max(1, limit))
    return files[::step][:limit]


class Validator:
    """Scores a generator on up to ``data.val_max_images`` whole images of each validation set."""

    def __init__(self, data: DataConfig, device: torch.device) -> None:
        self.device = device
        self.low = _images(data.val_low, data.val_max_images)
        self.dim = _images(data.val_dim, data.val_max_images)
        self.normal = _images(data.val_normal, data.val_max_images)
        if not (self.low or self.dim or self.normal):
            raise ValueError("validation needs data.val_low, data.val_dim or data.val_normal")
        self.refs: list[Path] | None = None
        if data.val_ref is not None:
            by_stem = {p.stem: p for p in list_images(Path(data.val_ref))}
            missing = [p.name for p in self.low if p.stem not in by_stem]
            if missing:
                raise ValueError(f"validation references missing in {data.val_ref} for {missing}")
            self.refs = [by_stem[p.stem] for p in self.low]
        if self.dim or self.normal:
            self.criterion = "score"
        else:
            self.criterion = "psnr" if self.refs is not None else "niqe"

    @torch.no_grad()
    def evaluate(self, generator: nn.Module) -> ValidationResult:
        from ..metrics import brightness, color_difference, false_color, niqe, psnr, ssim

        was_training = generator.training
        generator.eval()
        scores: dict[str, list[float]] = {}
        panels: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]] = []

        def add(key: str, value: float) -> None:
            scores.setdefault(key, []).append(value)

        def enhance(rgb: NDArray[np.uint8], show: bool) -> NDArray[np.uint8]:
            """The generator's 8-bit output for ``rgb``, added to the montage when ``show``."""
            x = to_tensor(rgb).to(self.device)
            result = generator(x)
            fade = getattr(getattr(generator, "config", None), "exposure_fade", None)
            if fade is None:
                enhanced = result.output
            else:  # as the Enhancer runs a generator with an exposure fade
                enhanced = x + exposure_fade_factor(x, fade) * result.latent
            out = np.asarray(from_tensor(enhanced))
            if show:
                panels.append((rgb, out))
            return out

        try:
            for i, path in enumerate(self.low):
                out = enhance(_load_rgb(path), i < MONTAGE_IMAGES)
                add("niqe", niqe(out))
                add("brightness", brightness(out))
                if self.refs is not None:
                    ref = _load_rgb(self.refs[i])
                    add("psnr", psnr(out, ref))
                    add("ssim", ssim(out, ref))
                    add("de_ref", color_difference(out, ref))
                    add("de_lowkey", color_difference(enhance(ref, show=False), ref))
            for i, path in enumerate(self.dim):
                rgb = _load_rgb(path)
                out = enhance(rgb, i < MONTAGE_IMAGES)
                add("niqe_dim", niqe(out))
                add("false_color_dim", false_color(out, rgb))
                add("brightness_dim", brightness(out))
            for i, path in enumerate(self.normal):
                rgb = _load_rgb(path)
                out = enhance(rgb, i < MONTAGE_IMAGES)
                add("de_normal", color_difference(out, rgb))
        finally:
            generator.train(was_training)
        metrics = {k: float(np.mean(v)) for k, v in scores.items()}
        if self.criterion == "score":
            metrics["score"] = composite_score(metrics)
        return ValidationResult(metrics, self.criterion, _montage(panels))


def _montage(panels: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]]) -> NDArray[np.uint8] | None:
    """Columns of input above output, each panel ``MONTAGE_HEIGHT`` px high."""
    if not panels:
        return None
    columns = []
    for rgb, out in panels:
        width = max(1, round(rgb.shape[1] * MONTAGE_HEIGHT / rgb.shape[0]))
        size = (width, MONTAGE_HEIGHT)
        pair = [np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR)) for a in (rgb, out)]
        columns.append(np.concatenate(pair, axis=0))
    gap = np.zeros((2 * MONTAGE_HEIGHT, 4, 3), np.uint8)
    pieces: list[NDArray[np.uint8]] = []
    for column in columns:
        pieces.extend((column, gap))
    return np.concatenate(pieces[:-1], axis=1)
