"""Lay out the training data of the default model as folders of symbolic links (nothing is copied).

    python scripts/prepare_default_data.py --shared ../shared --out ../data/default

Creates, from ../shared/datasets (see ../shared/README.md):

* ``low/``: LOL-v1 training low-light images (lol_train_subset/low) minus the validation pairs;
* ``normal/``: BSDS500 (train, val, test: 500 photos) plus the LOL-v1 training high images minus the
  validation pairs;
* ``val_low/`` and ``val_ref/``: every 8th LOL-v1 training pair (by sorted name), held out to choose the
  best checkpoint by PSNR on whole images.

The evaluation sets (lol_eval15, DICM, LIME) are never used for training or validation.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _link(files: list[Path], folder: Path, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / f"{prefix}{path.name}"
        if not target.exists():
            target.symlink_to(path.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("../data/default"))
    parser.add_argument("--val-every", type=int, default=8)
    args = parser.parse_args()

    datasets = args.shared / "datasets"
    lol_low = sorted((datasets / "lol_train_subset" / "low").glob("*.png"))
    if not lol_low:
        raise SystemExit(f"no LOL training images under {datasets}; pass --shared")
    val = {p.name for p in lol_low[:: args.val_every]}
    lol_high = datasets / "lol_train_subset" / "high"
    train_low = [p for p in lol_low if p.name not in val]
    _link(train_low, args.out / "low")
    for split in ("train", "val", "test"):
        _link(
            sorted((datasets / "bsds500" / split).glob("*.jpg")), args.out / "normal", prefix=f"bsds_{split}_"
        )
    _link([lol_high / p.name for p in train_low], args.out / "normal", prefix="lol_")
    _link([p for p in lol_low if p.name in val], args.out / "val_low")
    _link([lol_high / name for name in sorted(val)], args.out / "val_ref")
    counts = {
        name: len(list((args.out / name).iterdir())) for name in ("low", "normal", "val_low", "val_ref")
    }
    print(f"{args.out}: {counts}")


if __name__ == "__main__":
    main()
