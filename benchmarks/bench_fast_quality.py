"""Fast mode's ways of carrying a shrunk result to full size, scored against the exact path.

    python benchmarks/bench_fast_quality.py --folder ../data/default/val_sice_low \
        --folder ../data/default/val_low

Held-out *training-side* photos only (validation folders of scripts/prepare_default_data.py): the
evaluation sets (LOL eval15, DICM, LIME) must not choose the fast mode's settings. For every photo the
exact output is computed once, then each variant below from the same shrunk network output, and each
is scored by NIQE (its difference to the exact output's NIQE: the issue asks for at most 0.10) and by
PSNR against the exact output (8-bit):

* ``gray rR eE`` (the shipped method, ``FastConfig``): the latent fitted per window as an affine
  function of the attention map (guided filter, radius R, eps E), coefficients upsampled;
* ``rgb``: each channel's latent fitted against that channel of the input (a detail-preserving
  guide: the output's fine detail is the input's, scaled);
* ``gain cC``: the shrunk output divided by the shrunk input (offset C on [0, 1]) applied as a smooth
  per-pixel gain to the full-size input;
* ``+ smoothing`` / ``+ unsharp`` / ``+ gain detail``: the shipped method, then the full-size input's
  fine detail (the input minus its box blur of radius R) smoothed away in dark areas (a self-guided
  filter weighted by the attention map), or added again k times, or added k times the local gain
  (output over input brightness, minus 1): probes of whether the exact path's NIQE advantage is
  denoising or sharpening;
* ``oracle gray``: the shipped method fed the exact output shrunk, not the network's shrunk output:
  what is lost by the upsampling alone (the rest is the network's response to resolution).

Prints a table (means over all photos); nothing is written to RESULTS.md (paste it with the command).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from enlightengan import Enhancer
from enlightengan.inference.fast import box_filter, guided_coefficients
from enlightengan.inference.tiling import tiled_output
from enlightengan.metrics.niqe import niqe
from enlightengan.models.generator import exposure_fade_factor
from enlightengan.models.ops import attention_map, shrink

ROOT = Path(__file__).resolve().parents[1]


def _up(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _to8(x: Tensor) -> np.ndarray:
    return x.clamp(-1, 1).add(1).mul(127.5).round().squeeze(0).permute(1, 2, 0).byte().numpy()


def _gray_variant(radius: int, eps: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def carry(image: Tensor, small: Tensor, small_output: Tensor) -> Tensor:
        a, b = guided_coefficients(attention_map(small), small_output - small, radius, eps)
        size = (image.shape[-2], image.shape[-1])
        return _up(a, size) * attention_map(image) + _up(b, size)

    return carry


def _rgb_variant(image: Tensor, small: Tensor, small_output: Tensor) -> Tensor:
    guide = ((small + 1) / 2).reshape(-1, 1, *small.shape[-2:])
    target = (small_output - small).reshape(-1, 1, *small.shape[-2:])
    a, b = guided_coefficients(guide, target, 1, 1e-4)
    size = (image.shape[-2], image.shape[-1])
    a, b = _up(a.reshape(small.shape), size), _up(b.reshape(small.shape), size)
    return a * (image + 1) / 2 + b


def _gain_variant(offset: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def carry(image: Tensor, small: Tensor, small_output: Tensor) -> Tensor:
        gain = ((small_output + 1) / 2).clamp(min=0).add(offset) / ((small + 1) / 2 + offset)
        gain = _up(box_filter(gain, 1), (image.shape[-2], image.shape[-1]))
        return ((image + 1) / 2 + offset) * gain * 2 - 2 * offset - 1 - image

    return carry


def _self_guided(image: Tensor, radius: int, eps: float) -> Tensor:
    """Each channel smoothed by a guided filter guided by itself (edge-preserving), ``[-1, 1]``."""
    x = ((image + 1) / 2).reshape(-1, 1, *image.shape[-2:])
    a, b = guided_coefficients(x, x, radius, eps)
    a, b = box_filter(a, radius), box_filter(b, radius)
    return ((a * x + b) * 2 - 1).reshape(image.shape)


def _smoothing_probe(radius: int, eps: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    shipped = _gray_variant(1, 1e-4)

    def carry(image: Tensor, small: Tensor, small_output: Tensor) -> Tensor:
        dark = attention_map(image)
        return shipped(image, small, small_output) + dark * (_self_guided(image, radius, eps) - image)

    return carry


def _detail_probe(k: float, radius: int, gain_weighted: bool) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    shipped = _gray_variant(1, 1e-4)

    def carry(image: Tensor, small: Tensor, small_output: Tensor) -> Tensor:
        latent = shipped(image, small, small_output)
        detail = image - box_filter(image, radius)
        if not gain_weighted:
            return latent + k * detail
        before = box_filter((image + 1) / 2, 2).mean(1, keepdim=True) + 0.02
        after = box_filter((image + latent + 1) / 2, 2).mean(1, keepdim=True).clamp(min=0) + 0.02
        return latent + k * (after / before - 1).clamp(0, 8) * detail

    return carry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, action="append", required=True, help="photos (repeatable)")
    parser.add_argument("--weights", type=Path, default=None, help="generator (default: the bundled model)")
    parser.add_argument("--scale", type=float, default=2.25, help="shrink factor per side (FastConfig.scale)")
    parser.add_argument("--limit", type=int, default=30, help="photos per folder (sorted by name)")
    args = parser.parse_args()

    enhancer = Enhancer(args.weights, device="cpu")
    if enhancer.per_image_batchnorm:
        raise SystemExit("this benchmark runs fixed-statistics generators (the bundled model)")
    backend, width = enhancer._backend, enhancer.model.config.base_width
    fade_range = enhancer.model.config.exposure_fade
    variants: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
        "gray r1 e1e-4 (shipped)": _gray_variant(1, 1e-4),
        "gray r1 e1e-5": _gray_variant(1, 1e-5),
        "gray r2 e1e-4": _gray_variant(2, 1e-4),
        "rgb": _rgb_variant,
        "gain c0.02": _gain_variant(0.02),
        "gain c0.05": _gain_variant(0.05),
        "+ smoothing r1 e1e-4": _smoothing_probe(1, 1e-4),
        "+ smoothing r1 e1e-3": _smoothing_probe(1, 1e-3),
        "+ unsharp k0.5 r2": _detail_probe(0.5, 2, False),
        "+ unsharp k0.5 r1": _detail_probe(0.5, 1, False),
        "+ gain detail k0.25 r2": _detail_probe(0.25, 2, True),
    }
    files = [
        f for folder in args.folder for f in sorted(p for p in folder.iterdir() if p.is_file())[: args.limit]
    ]
    scores: dict[str, list[tuple[float, float]]] = {}
    start = time.perf_counter()
    for path in files:
        with Image.open(path) as photo:
            rgb = np.asarray(photo.convert("RGB"))
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        fade = exposure_fade_factor(image, fade_range) if fade_range is not None else 1.0
        with torch.inference_mode():
            exact_latent = tiled_output(backend, image, base_width=width) - image
            small = shrink(image, args.scale)
            small_output = tiled_output(backend, small, attention_map(small), base_width=width)
            latents = {name: carry(image, small, small_output) for name, carry in variants.items()}
            latents["oracle gray"] = _gray_variant(1, 1e-4)(
                image, small, shrink(image + exact_latent, args.scale)
            )
        exact = _to8(image + exact_latent * fade)
        exact_niqe = niqe(exact)
        for name, latent in latents.items():
            out = _to8(image + latent * fade)
            mse = float(((out.astype(np.float64) - exact) ** 2).mean())
            psnr = 10 * np.log10(255**2 / max(mse, 1e-12))
            scores.setdefault(name, []).append((niqe(out) - exact_niqe, psnr))
    print(
        f"{len(files)} photos ({', '.join(str(f) for f in args.folder)}), scale {args.scale}, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("| carried by | NIQE - exact NIQE | PSNR vs exact dB |\n|---|---|---|")
    for name, rows in scores.items():
        values = np.array(rows)
        print(f"| {name} | {values[:, 0].mean():+.3f} | {values[:, 1].mean():.2f} |")


if __name__ == "__main__":
    main()
