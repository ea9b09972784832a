"""Lay out the training and validation data of the default model as folders of symbolic links.

    python scripts/prepare_default_data.py --shared DATA --out ../data/default   # DATA: $ENLIGHTENGAN_DATA

Nothing is copied. From ``../shared/datasets`` (see ``../shared/README.md``) it creates:

* ``low/``: low-light training images: LOL-v1 training low images (``lol_train_subset/low``) minus the
  validation pairs, and the SICE Part 1 frames whose mean brightness (Pillow's 8-bit luminance of the
  4x-reduced frame) is in ``[--low-min, --low-max)``;
* ``normal/``: normal-light training images: BSDS500 (train, val, test: 500 photos), the LOL-v1 training
  high images minus the validation pairs, and the SICE frames with brightness in
  ``[--normal-min, 175]`` (brighter frames are not in the shared copy);
* ``lol_low/`` and ``lol_normal/``: the same without SICE (the data of stages 1 to 3 of the recipe,
  ``configs/default-cpu.yaml``);
* ``val_low/`` and ``val_ref/``: every 8th LOL-v1 training pair (by sorted name), the in-training
  PSNR criterion;
* ``val_sice_low/``, ``val_sice_dark/``, ``val_sice_normal/``: SICE frames of the held-out scenes
  (frame numbers up to ``--val-sice-last``), split into dim (brightness ``[--low-min, --low-max)``),
  near-black (below ``--low-min``) and well-exposed (``>= --normal-min``) photos, for the validation
  scores that predict what people see (no reference: NIQE, false colour, do-no-harm).

SICE frames are numbered so that the exposures of one scene are consecutive: holding out a range of
numbers holds out whole scenes, and a gap of ``--val-sice-gap`` numbers after it (dropped from both
sides) keeps a scene that straddles the cut out of training. Frames below ``--low-min`` (near black:
too few grey levels to learn from) are never trained on.

The evaluation sets (``lol_eval15``, ``dicm``, ``lime``) are never used for training, selection or
validation. The split is deterministic: the same shared data gives the same folders (a manifest with
every file's brightness is written to ``manifest.json``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image


def _link(files: list[Path], folder: Path, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / f"{prefix}{path.name}"
        if not target.exists():
            target.symlink_to(path.resolve())


def brightness(path: Path) -> float:
    """Mean 8-bit luminance of the image reduced 4x (cheap, and what the split is defined by)."""
    with Image.open(path) as image:
        return float(np.asarray(image.convert("L").reduce(4), dtype=np.float32).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("ENLIGHTENGAN_DATA") or "../shared"),
        help="the folder that holds datasets/ (default: $ENLIGHTENGAN_DATA, else ../shared; see the README)",
    )
    parser.add_argument("--out", type=Path, default=Path("../data/default"))
    parser.add_argument("--val-every", type=int, default=8, help="every Nth LOL training pair is held out")
    parser.add_argument("--no-sice", action="store_true", help="LOL and BSDS500 only (the 2026-11 recipe)")
    parser.add_argument("--low-min", type=float, default=8.0)
    parser.add_argument("--low-max", type=float, default=90.0)
    parser.add_argument("--normal-min", type=float, default=100.0)
    parser.add_argument("--val-sice-last", type=int, default=140)
    parser.add_argument("--val-sice-gap", type=int, default=20)
    args = parser.parse_args()

    datasets = args.shared / "datasets"
    lol_low = sorted((datasets / "lol_train_subset" / "low").glob("*.png"))
    if not lol_low:
        raise SystemExit(f"no LOL training images under {datasets}; pass --shared")
    val = {p.name for p in lol_low[:: args.val_every]}
    lol_high = datasets / "lol_train_subset" / "high"
    train_low = [p for p in lol_low if p.name not in val]
    for low, normal in (("low", "normal"), ("lol_low", "lol_normal")):
        _link(train_low, args.out / low, prefix="lol_")
        for split in ("train", "val", "test"):
            bsds = sorted((datasets / "bsds500" / split).glob("*.jpg"))
            _link(bsds, args.out / normal, prefix=f"bsds_{split}_")
        _link([lol_high / p.name for p in train_low], args.out / normal, prefix="lol_")
    _link([p for p in lol_low if p.name in val], args.out / "val_low")
    _link([lol_high / name for name in sorted(val)], args.out / "val_ref")

    manifest: dict[str, dict[str, float | str]] = {}
    sice = sorted((datasets / "sice_part1_512").glob("*.jpg"), key=lambda p: int(p.stem))
    if sice and not args.no_sice:
        for path in sice:
            number, level = int(path.stem), brightness(path)
            held_out = number <= args.val_sice_last
            if args.val_sice_last < number <= args.val_sice_last + args.val_sice_gap:
                side = "gap"
            elif level < args.low_min:
                side = "val_sice_dark" if held_out else "too-dark"
            elif level < args.low_max:
                side = "val_sice_low" if held_out else "low"
            elif level >= args.normal_min:
                side = "val_sice_normal" if held_out else "normal"
            else:
                side = "between"
            manifest[path.name] = {"brightness": round(level, 2), "side": side}
            if side not in ("gap", "too-dark", "between"):
                _link([path], args.out / side, prefix="sice_")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    names = (
        "low",
        "normal",
        "lol_low",
        "lol_normal",
        "val_low",
        "val_ref",
        "val_sice_low",
        "val_sice_dark",
        "val_sice_normal",
    )
    counts = {name: len(list((args.out / name).iterdir())) for name in names if (args.out / name).is_dir()}
    print(f"{args.out}: {counts}")


if __name__ == "__main__":
    main()
