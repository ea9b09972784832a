"""Measure the bundled model's stored scores: the regression floors of tests/test_default_model.py.

    python scripts/measure_bundled_scores.py --shared ../shared       # rewrites the scores file

Run after bundling a new default model. It enhances the repository's example photo and two LOL eval15
photos with ``Enhancer(device="cpu")`` and writes, next to the weights, the file the regression tests
compare against (``enlightengan-default.scores.json``):

* ``sha256`` of the weights file (the tests check that the scores belong to the bundled weights);
* ``example``: mean brightness (0-255) and channel balance (each channel's mean over the mean of all)
  of the enhanced ``docs/examples/dark.jpg``;
* ``lol_eval15``: PSNR (dB) and SSIM of ``1.png`` and ``22.png`` against their references.

Two LOL photos are a regression check, not an evaluation: the model is never selected by them (the
evaluation sets are used for reporting only; see the model card).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
from PIL import Image

from enlightengan import Enhancer
from enlightengan.metrics import brightness, psnr, ssim
from enlightengan.weights.bundled import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "enlightengan" / "weights" / DEFAULT_MODEL.filename
SCORES = WEIGHTS.with_name(DEFAULT_MODEL.filename.replace(".safetensors", ".scores.json"))
EXAMPLE = ROOT / "docs" / "examples" / "dark.jpg"
LOL_PHOTOS = ("1.png", "22.png")


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def measure(shared: Path) -> dict[str, object]:
    """The scores document of the weights file in the package (see the module doc)."""
    enhancer = Enhancer(WEIGHTS, device="cpu")
    out = enhancer.enhance(_rgb(EXAMPLE))
    balance = out.reshape(-1, 3).mean(axis=0) / out.mean()
    lol = shared / "datasets" / "lol_eval15"
    photos = {}
    for name in LOL_PHOTOS:
        enhanced = enhancer.enhance(_rgb(lol / "low" / name))
        reference = _rgb(lol / "high" / name)
        photos[name] = {
            "psnr": round(float(psnr(enhanced, reference)), 2),
            "ssim": round(float(ssim(enhanced, reference)), 3),
        }
    return {
        "model": WEIGHTS.name,
        "sha256": hashlib.sha256(WEIGHTS.read_bytes()).hexdigest(),
        "measured": f"{dt.date.today().isoformat()}, enlightengan.metrics, Enhancer(device='cpu'), "
        f"{platform.machine()} CPU (scripts/measure_bundled_scores.py)",
        "example": {
            "file": EXAMPLE.relative_to(ROOT).as_posix(),
            "brightness": round(float(brightness(out)), 2),
            "channel_balance": [round(float(b), 3) for b in balance],
        },
        "lol_eval15": photos,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("ENLIGHTENGAN_DATA") or ROOT.parent / "shared"),
        help="the folder that holds datasets/lol_eval15 (default: $ENLIGHTENGAN_DATA, else ../shared)",
    )
    parser.add_argument("--print-only", action="store_true", help="print the scores, do not write the file")
    args = parser.parse_args()
    if not (args.shared / "datasets" / "lol_eval15" / "low").is_dir():
        raise SystemExit(f"no datasets/lol_eval15 under {args.shared}; pass --shared")
    text = json.dumps(measure(args.shared), indent=2) + "\n"
    if not args.print_only:
        tmp = SCORES.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(SCORES)  # never a half-written scores file
    print(text, end="")


if __name__ == "__main__":
    main()
