"""Make the README's pictures with the bundled default model (or --weights).

    python scripts/make_readme_figures.py                 # docs/before-after.jpg, docs/results-montage.jpg

* ``docs/before-after.jpg``: docs/examples/dark.jpg beside ``enlightengan enhance``'s result.
* ``docs/results-montage.jpg``: twelve photos the model never saw, of the kinds people bring (dim outdoor,
  night street and monument, dark indoor, near-black, well-exposed daylight: DICM, LIME and LOL eval15
  from ../shared/datasets, and a near-black frame of a held-out SICE scene), one row each: input |
  the previous default model (``--previous``, when given) | the default model | with ``--denoise`` | a
  gamma curve | the LOL reference where there is one.

JPEG at quality 90 keeps the repository small; the full-size outputs come from ``enlightengan evaluate
--save`` (see the README's results section).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from enlightengan import Enhancer
from enlightengan.metrics.baselines import gamma_baseline

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("ENLIGHTENGAN_DATA") or REPO.parent / "shared") / "datasets"
#: (folder, file, reference folder or None): chosen to cover indoor, outdoor, night, backlit scenes.
PICKS = (
    ("dicm", "02.jpg", None),  # dim outdoor, deep shadows
    ("dicm", "25.jpg", None),  # night park, people
    ("dicm", "26.jpg", None),  # floodlit monument at night
    ("lime", "1.bmp", None),  # night waterfront, lamps
    ("lime", "4.bmp", None),  # night street
    ("lime", "8.bmp", None),  # dim indoor, colours
    ("dicm", "22.jpg", None),  # dim interior
    ("lol_eval15/low", "1.png", "lol_eval15/high"),  # dark indoor
    ("lol_eval15/low", "55.png", "lol_eval15/high"),  # dark indoor
    ("sice_part1_512", "9.jpg", None),  # near black (a held-out SICE scene, 8.6/255)
    ("dicm", "57.jpg", None),  # well-exposed daylight
    ("dicm", "36.jpg", None),  # well-exposed sky and building
)
HEIGHT = 200


def _fit(image: Image.Image, height: int = HEIGHT) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _grid(
    rows: list[list[Image.Image | None]], titles: list[str], gap: int = 4, band: int = 18
) -> Image.Image:
    widths = [max((r[i].width for r in rows if r[i] is not None), default=0) for i in range(len(titles))]
    canvas = Image.new(
        "RGB", (sum(widths) + gap * (len(widths) + 1), band + len(rows) * (HEIGHT + gap)), (28, 28, 28)
    )
    draw = ImageDraw.Draw(canvas)
    x = gap
    for title, width in zip(titles, widths, strict=True):
        draw.text((x, 3), title, fill=(255, 255, 255))
        x += width + gap
    for j, row in enumerate(rows):
        x = gap
        for panel, width in zip(row, widths, strict=True):
            if panel is not None:
                canvas.paste(panel, (x, band + j * (HEIGHT + gap)))
            x += width + gap
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default=None, help="generator file (default: the bundled model)")
    parser.add_argument("--previous", default=None, help="the previous default model, for comparison")
    args = parser.parse_args()
    enhancer = Enhancer(args.weights, device="cpu")
    denoiser = Enhancer(args.weights, device="cpu", denoise=True)
    previous = Enhancer(args.previous, device="cpu") if args.previous else None

    dark = Image.open(REPO / "docs" / "examples" / "dark.jpg")
    pair = _grid([[_fit(dark, 300), _fit(enhancer.enhance(dark), 300)]], ["input", "enlightengan enhance"])
    pair.save(REPO / "docs" / "before-after.jpg", quality=90)

    rows: list[list[Image.Image | None]] = []
    for folder, name, ref_folder in PICKS:
        path = DATASETS / folder / name
        if not path.is_file():
            print(f"skipped {path}: not found")
            continue
        low = Image.open(path).convert("RGB")
        gamma = Image.fromarray(gamma_baseline(np.asarray(low)))
        ref = Image.open(DATASETS / ref_folder / name) if ref_folder else None
        outputs = [low, enhancer.enhance(low), denoiser.enhance(low), gamma, ref]
        if previous is not None:
            outputs.insert(1, previous.enhance(low))
        rows.append([None if image is None else _fit(image) for image in outputs])
        print(f"{folder}/{name}")
    titles = ["input", "default model", "--denoise", "gamma curve (baseline)", "reference (LOL)"]
    if previous is not None:
        titles.insert(1, "previous model (2026-11)")
    _grid(rows, titles).save(REPO / "docs" / "results-montage.jpg", quality=90)
    print("wrote docs/before-after.jpg and docs/results-montage.jpg")


if __name__ == "__main__":
    main()
