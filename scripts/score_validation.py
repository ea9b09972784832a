"""Score candidate generators on the whole held-out validation sets: how a default model is chosen.

    python scripts/score_validation.py A.safetensors B.safetensors --data ../data/default

Training validates on ``data.val_max_images`` photos of each held-out set (13 in the recipe) to stay cheap;
candidates from different runs whose in-training scores are close are compared here on every photo of
``val_low``/``val_ref`` (LOL validation pairs), ``val_sice_low`` (dim SICE frames) and
``val_sice_normal`` (well-exposed SICE frames) laid out by ``scripts/prepare_default_data.py``, with the
same measures and the same composite score as in training
(:func:`enlightengan.training.validation.composite_score`, lower is better).
The evaluation sets (LOL eval15, DICM, LIME) take no part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from enlightengan.config import DataConfig
from enlightengan.models.checkpoint import load_generator
from enlightengan.training.validation import Validator

MEASURES = (
    "score",
    "psnr",
    "ssim",
    "de_ref",
    "niqe_dim",
    "false_color_dim",
    "brightness_dim",
    "de_normal",
    "de_lowkey",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", type=Path, nargs="+", help="generator files (.safetensors or .pth)")
    parser.add_argument("--data", type=Path, default=Path("../data/default"), help="prepared data folder")
    args = parser.parse_args()
    data = DataConfig(
        low=str(args.data / "low"),
        normal=str(args.data / "normal"),
        val_low=str(args.data / "val_low"),
        val_ref=str(args.data / "val_ref"),
        val_dim=str(args.data / "val_sice_low"),
        val_normal=str(args.data / "val_sice_normal"),
        val_max_images=100_000,
    )
    validator = Validator(data, torch.device("cpu"))
    counts = f"{len(validator.low)} LOL pairs, {len(validator.dim)} dim, {len(validator.normal)} well-exposed"
    print(f"whole validation sets: {counts}")
    print("| generator | " + " | ".join(MEASURES) + " |\n|---|" + "---|" * len(MEASURES))
    for path in args.weights:
        metrics = validator.evaluate(load_generator(path)).metrics
        print(f"| {path} | " + " | ".join(f"{metrics[m]:.3f}" for m in MEASURES) + " |", flush=True)


if __name__ == "__main__":
    main()
