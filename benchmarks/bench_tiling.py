"""Tiled against whole-image results of the bundled default model on a real photo at 1, 4 and 12 MP.

    python benchmarks/bench_tiling.py                     # writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_tiling.py --sizes 1 --no-write

The photo is LIME 10 (a real night scene, ../shared/datasets or $ENLIGHTENGAN_DATA) enlarged to each size
with bicubic resampling. For each size the whole photo is enhanced in one piece (``Enhancer(tile=...)``
larger than the photo), then with tiles of 384 and 512 pixels (``--tiles`` for others) and with the
automatic choice under a 256 MB budget (so that it cuts even on a large machine); the 8-bit results
are compared pixel by pixel.
The SHA-256 of each whole-image result is printed and recorded, so a later run can be checked against it
without the whole-image pass.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_inference import RESULTS, write_section  # noqa: E402

SHARED = Path(os.environ.get("ENLIGHTENGAN_DATA") or ROOT.parent / "shared")
SIZES = {"1": (866, 1155), "4": (1732, 2309), "12": (3000, 4000)}
AUTO_BUDGET = 256 << 20


def photo(height: int, width: int) -> np.ndarray:
    from PIL import Image

    with Image.open(SHARED / "datasets" / "lime" / "10.bmp") as source:
        return np.asarray(source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))


def compare(size: str, tiles: list[str]) -> list[dict[str, object]]:
    from enlightengan import Enhancer
    from enlightengan.inference import tiling

    height, width = SIZES[size]
    image = photo(height, width)
    start = time.perf_counter()
    whole = Enhancer(device="cpu", tile=max(height, width) + 16).enhance(image)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(whole.tobytes()).hexdigest()
    rows: list[dict[str, object]] = []
    real_budget = tiling.default_budget
    for label in tiles:
        tile = None if label == "auto" else int(label)
        counts: list[int] = []

        def seen(done: int, total: int, counts: list[int] = counts) -> None:
            counts.append(total)

        if tile is None:
            tiling.default_budget = lambda: AUTO_BUDGET  # type: ignore[assignment]
        try:
            out = Enhancer(device="cpu", tile=tile).enhance(image, progress=seen)
        finally:
            tiling.default_budget = real_budget  # type: ignore[assignment]
        diff = np.abs(out.astype(int) - whole.astype(int))
        rows.append(
            {
                "size": f"{width}x{height}",
                "tiles": label,
                "count": counts[-1],
                "within_1": float((diff <= 1).mean()),
                "max": int(diff.max()),
                "whole_sha256": digest,
                "whole_s": seconds,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,4,12", help="comma-separated sizes in MP (1, 4, 12)")
    parser.add_argument(
        "--tiles",
        default="384,512,auto",
        help="tile sides in px or auto, comma-separated (default: 384,512,auto)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if not (SHARED / "datasets" / "lime" / "10.bmp").is_file():
        sys.exit(f"LIME 10 not found under {SHARED / 'datasets'} (set ENLIGHTENGAN_DATA)")
    rows = [row for size in args.sizes.split(",") for row in compare(size, args.tiles.split(","))]
    import torch

    from enlightengan.weights import DEFAULT_MODEL

    lines = [
        f"`python benchmarks/bench_tiling.py --sizes {args.sizes}` on {time.strftime('%Y-%m-%d')}: "
        "the bundled "
        f"model ({DEFAULT_MODEL.filename}, sha256 {DEFAULT_MODEL.sha256[:12]}), torch {torch.__version__}. "
        "LIME 10 enlarged (bicubic); each tiled 8-bit result against the same photo enhanced in one piece.",
        "",
        "| photo | tiles | tiles used | pixels within 1 level | max difference | whole-image result sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['size']} | {row['tiles']} | {row['count']} | {100 * float(row['within_1']):.4f}% "  # type: ignore[arg-type]
            f"| {row['max']} | `{str(row['whole_sha256'])[:16]}` |"
        )
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section("tiling-exact", "Tiling: the bundled model, tiled against whole", body)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
