"""Side-by-side montage of several generators on the same photos, for looking at outputs while choosing.

    python scripts/compare_models.py OUT.jpg --model bundled= --model new=runs/x/generator.safetensors \
        --images ../data/default/val_sice_low --count 12

One row per photo: the input, then each model's output (``Enhancer`` with that weights file, so a
per-image BatchNorm model runs as users run it), optionally a gamma curve. Photos are taken evenly
spaced from each ``--images`` folder (or given as files). Pick validation photos for choices between
models; the evaluation sets (LOL eval15, DICM, LIME) are for reporting only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from enlightengan import Enhancer
from enlightengan.metrics.baselines import gamma_baseline

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _fit(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _pick(sources: list[Path], count: int) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES)
            step = max(1, len(found) // max(1, count))
            files.extend(found[::step][:count])
        else:
            files.append(source)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=WEIGHTS", required=True)
    parser.add_argument("--images", action="append", type=Path, required=True)
    parser.add_argument("--count", type=int, default=8, help="photos per --images folder")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--gamma", action="store_true", help="add a gamma-curve column")
    args = parser.parse_args()

    models = []
    for spec in args.model:
        label, _, weights = spec.partition("=")
        models.append((label, Enhancer(weights or None)))
    titles = ["input"] + [label for label, _ in models] + (["gamma"] if args.gamma else [])
    rows: list[list[Image.Image]] = []
    names: list[str] = []
    for path in _pick(args.images, args.count):
        image = Image.open(path).convert("RGB")
        row = [image] + [enhancer.enhance(image) for _, enhancer in models]
        if args.gamma:
            row.append(Image.fromarray(gamma_baseline(np.asarray(image))))
        rows.append([_fit(p, args.height) for p in row])
        names.append(path.name)
    gap, band = 4, 16
    widths = [max(r[i].width for r in rows) for i in range(len(titles))]
    canvas = Image.new(
        "RGB",
        (sum(widths) + gap * (len(widths) + 1), band + len(rows) * (args.height + gap + band)),
        (28, 28, 28),
    )
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, row in zip(names, rows, strict=True):
        x = gap
        for title, panel, width in zip(titles, row, widths, strict=True):
            draw.text((x, y + 2), f"{title}: {name}" if title == "input" else title, fill=(255, 255, 255))
            canvas.paste(panel, (x, y + band))
            x += width + gap
        y += band + args.height + gap
    canvas.save(args.out, quality=90)
    print(f"{args.out}: {len(rows)} photos x {len(titles)} columns")


if __name__ == "__main__":
    main()
