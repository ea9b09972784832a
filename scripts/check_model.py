"""Quick look at a generator during model work: fast-mode PSNR and NIQE on a subset of DICM and LIME.

    python scripts/check_model.py WEIGHTS [--dicm 10] [--lime 3] [--shared DATA]  # $ENLIGHTENGAN_DATA

For every 64/N-th DICM photo and the first LIME photos: PSNR (8-bit) of fast mode (scale 2.25) against
the exact output, with the shrunk image normalised by the BatchNorm statistics of the full image
("stats-full") or of the shrunk image itself ("stats-small", what ``enhance --fast`` does), and the
NIQE of the exact output. The generator is treated as per-image BatchNorm (as the default model).
A few minutes on 2 cores; ``enlightengan evaluate`` and ``benchmarks/bench_inference.py`` give the
full numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enlightengan.inference.fast import FastConfig, fast_latent
from enlightengan.inference.tiling import tiled_output
from enlightengan.inference.torch_backend import TorchBackend
from enlightengan.metrics.niqe import niqe
from enlightengan.models.batchnorm import per_image_model
from enlightengan.models.checkpoint import load_generator
from enlightengan.models.ops import shrink


def _u8(t: torch.Tensor) -> np.ndarray:
    return ((t.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", type=Path)
    parser.add_argument("--dicm", type=int, default=10, help="DICM photos (every 64/N-th)")
    parser.add_argument("--lime", type=int, default=3, help="first LIME photos")
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("ENLIGHTENGAN_DATA") or "../shared"),
        help="the folder that holds datasets/ (default: $ENLIGHTENGAN_DATA, else ../shared; see the README)",
    )
    args = parser.parse_args()

    model = load_generator(args.weights)
    model.config = dataclasses.replace(model.config, batchnorm="per-image")
    datasets = args.shared / "datasets"
    dicm = sorted((datasets / "dicm").glob("*.jpg"))
    files = dicm[:: max(1, len(dicm) // max(args.dicm, 1))][: args.dicm]
    files += sorted((datasets / "lime").glob("*.bmp"))[: args.lime]
    config = FastConfig()
    rows = []
    for path in files:
        rgb = np.array(Image.open(path).convert("RGB"))
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.inference_mode():
            full = TorchBackend(per_image_model(model, x))
            exact = _u8(tiled_output(full, x))
            from_full = _u8(x + fast_latent(full, x, config))
            small = TorchBackend(per_image_model(model, shrink(x, config.scale)))
            from_small = _u8(x + fast_latent(small, x, config))
        rows.append((_psnr(from_full, exact), _psnr(from_small, exact), niqe(exact)))
        print(f"{path.parent.name}/{path.name}: fast PSNR stats-full {rows[-1][0]:.2f} dB, "
              f"stats-small {rows[-1][1]:.2f} dB; NIQE {rows[-1][2]:.3f}", flush=True)  # fmt: skip
    mean = np.mean(rows, axis=0)
    print(f"mean of {len(rows)}: fast PSNR stats-full {mean[0]:.2f} dB, stats-small {mean[1]:.2f} dB; "
          f"NIQE of the exact output {mean[2]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
