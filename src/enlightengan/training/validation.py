"""Whole-image validation while training, in eval mode (BatchNorm running statistics), as users run it.

Crops in train mode can look fine while eval-mode outputs on whole images drift (running statistics
of small batches): validating whole images in eval mode catches that. The criterion for "best" is
PSNR against references when ``data.val_ref`` is given (higher is better), else NIQE (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..config import DataConfig
from ..data.folders import list_images
from ..image_io import from_tensor, to_tensor

__all__ = ["ValidationResult", "Validator"]


def _load_rgb(path: Path) -> np.ndarray:
    """8-bit RGB, as the metrics (NIQE on the 8-bit luminance) expect."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@dataclass
class ValidationResult:
    metrics: dict[str, float]
    criterion: str  # "psnr" (higher is better) or "niqe" (lower is better)

    def better_than(self, best: dict[str, Any]) -> bool:
        value, previous = self.metrics[self.criterion], best[self.criterion]
        return value > previous if self.criterion == "psnr" else value < previous


class Validator:
    """Scores a generator on up to ``data.val_max_images`` whole validation images."""

    def __init__(self, data: DataConfig, device: torch.device) -> None:
        assert data.val_low is not None
        self.device = device
        self.low = list_images(Path(data.val_low))[: data.val_max_images]
        self.refs: list[Path] | None = None
        if data.val_ref is not None:
            by_stem = {p.stem: p for p in list_images(Path(data.val_ref))}
            missing = [p.name for p in self.low if p.stem not in by_stem]
            if missing:
                raise ValueError(f"validation references missing in {data.val_ref} for {missing}")
            self.refs = [by_stem[p.stem] for p in self.low]
        self.criterion = "psnr" if self.refs is not None else "niqe"

    @torch.no_grad()
    def evaluate(self, generator: nn.Module) -> ValidationResult:
        from ..metrics import brightness, niqe, psnr, ssim

        was_training = generator.training
        generator.eval()
        scores: dict[str, list[float]] = {"niqe": [], "brightness": [], "psnr": [], "ssim": []}
        try:
            for i, path in enumerate(self.low):
                rgb = _load_rgb(path)
                out = from_tensor(generator(to_tensor(rgb).to(self.device)).output)
                scores["niqe"].append(niqe(out))
                scores["brightness"].append(brightness(out))
                if self.refs is not None:
                    ref = _load_rgb(self.refs[i])
                    scores["psnr"].append(psnr(out, ref))
                    scores["ssim"].append(ssim(out, ref))
        finally:
            generator.train(was_training)
        metrics = {k: float(np.mean(v)) for k, v in scores.items() if v}
        return ValidationResult(metrics, self.criterion)
