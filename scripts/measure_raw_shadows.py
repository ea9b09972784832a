"""What a camera RAW file buys in the dark: distinct levels in the darkest tenth, before and after enhancing.

    python scripts/measure_raw_shadows.py                  # the bundled default model
    python scripts/measure_raw_shadows.py --clean          # a sensor with 100 times less noise variance
    python scripts/measure_raw_shadows.py --weights 200_net_G_A.pth

The scene is scikit-image's CC0 coffee photo made into a night shot, as ``scripts/make_example.py`` makes
``docs/examples/dark.jpg``: linearised, its exposure cut to 5 %, then sampled by a Bayer sensor (RGGB)
with shot and read noise (the variance of make_example.py, ``2e-4 x + 1e-6`` for a linear value ``x``;
with ``--clean`` a hundredth of it, as a long exposure on a tripod would give), and stored as an
uncompressed 14-bit DNG. Two files go through ``enlightengan enhance`` (the command, its defaults):

- ``dark.dng``: developed by rawpy to 16-bit sRGB and enhanced at 16 bits, written as a 16-bit TIFF;
- ``dark8.png``: the same developed picture quantised to 8 bits first (what an 8-bit camera JPEG holds of
  the scene, without JPEG's own losses), enhanced and written at 8 bits.

The darkest decile is the tenth of the pixels with the lowest luma in the developed picture. For each
file the number of distinct values of each channel there is counted in the input and in the result, at
the file's own precision, and for the results also on an 8-bit display (the 16-bit result rounded to 8
bits), with the mean distance between the two results there in 8-bit levels.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational, ImageFileDirectory_v2
from skimage import data

from enlightengan.cli import main as enlightengan
from enlightengan.image_io import read_image

#: XYZ (D65) -> linear sRGB: the colour matrix of a camera whose raw RGB is linear sRGB.
XYZ_TO_SRGB = (
    3.2404542,
    -1.5371385,
    -0.4985314,
    -0.969266,
    1.8760108,
    0.041556,
    0.0556434,
    -0.2040259,
    1.0572252,
)
WHITE = 16383  # 14 bits


def night_mosaic(noise: float, seed: int = 0) -> np.ndarray:
    """The coffee photo at 5 % exposure on an RGGB sensor with noise (``noise`` scales its variance):
    ``H x W`` uint16, 0..16383."""
    rgb = data.coffee().astype(np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4) * 0.05
    mosaic = np.empty(linear.shape[:2])
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    rng = np.random.default_rng(seed)
    noisy = mosaic + rng.normal(0, 1, mosaic.shape) * np.sqrt(noise * (mosaic * 2e-4 + 1e-6))  # shot + read
    return np.clip(np.round(noisy * WHITE), 0, WHITE).astype(np.uint16)


def write_dng(path: Path, mosaic: np.ndarray) -> None:
    """A minimal uncompressed DNG 1.4 of an RGGB mosaic, camera white balance neutral."""
    height, width = mosaic.shape
    pixels = np.ascontiguousarray(mosaic, dtype="<u2").tobytes()
    ifd = ImageFileDirectory_v2(prefix=b"II")
    tags = [
        (254, 4, 0), (256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 32803),
        (271, 2, "enlightengan"), (272, 2, "synthetic 14-bit sensor"), (273, 4, 0), (274, 3, 1),
        (277, 3, 1), (278, 4, height), (279, 4, len(pixels)), (284, 3, 1),
        (33421, 3, (2, 2)), (33422, 1, b"\x00\x01\x01\x02"), (50706, 1, b"\x01\x04\x00\x00"),
        (50707, 1, b"\x01\x01\x00\x00"), (50708, 2, "enlightengan synthetic camera"), (50714, 4, 0),
        (50717, 4, WHITE), (50721, 10, tuple(IFDRational(round(v * 10000), 10000) for v in XYZ_TO_SRGB)),
        (50728, 5, (IFDRational(1, 1),) * 3), (50778, 3, 21),
    ]  # fmt: skip
    for tag, kind, value in tags:
        ifd.tagtype[tag] = kind
        ifd[tag] = value
    path.write_bytes(b"II*\x00" + (8).to_bytes(4, "little") + ifd.tobytes(8) + pixels)


def levels(image: np.ndarray, mask: np.ndarray) -> list[int]:
    return [len(np.unique(image[..., c][mask])) for c in range(3)]


def to8(array16: np.ndarray) -> np.ndarray:
    return ((array16.astype(np.uint32) + 128) // 257).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", help="generator weights (default: the bundled model)")
    parser.add_argument("--clean", action="store_true", help="a hundredth of the sensor noise variance")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        write_dng(folder / "dark.dng", night_mosaic(0.01 if args.clean else 1.0))
        developed = read_image(folder / "dark.dng").array16
        assert developed is not None
        Image.fromarray(to8(developed)).save(folder / "dark8.png")
        argv = ["enhance", str(folder), "-o", str(out), "--quiet", "--device", "cpu"]
        if enlightengan(argv + (["--weights", args.weights] if args.weights else [])) != 0:
            raise SystemExit("enlightengan enhance failed")
        from_raw = cv2.cvtColor(cv2.imread(str(out / "dark.tif"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        from_8bit = np.asarray(Image.open(out / "dark8.png"))

    luma = developed.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    darkest = luma <= np.quantile(luma, 0.1)
    height, width = luma.shape
    print(f"scene: {width} x {height}, darkest decile: {darkest.sum():,} pixels, luma up to "
          f"{luma[darkest].max() / 65535 * 255:.1f}/255; distinct levels per channel (R, G, B)")  # fmt: skip
    print()
    print("| path | input | result (own precision) | result on an 8-bit display |")
    print("|---|---|---|---|")
    print(f"| 14-bit DNG, enhanced at 16 bits | {levels(developed, darkest)} (16-bit) "
          f"| {levels(from_raw, darkest)} (16-bit) | {levels(to8(from_raw), darkest)} |")  # fmt: skip
    print(f"| the same quantised to 8 bits first | {levels(to8(developed), darkest)} (8-bit) "
          f"| {levels(from_8bit, darkest)} (8-bit) | {levels(from_8bit, darkest)} |")  # fmt: skip
    gap = np.abs(from_raw.astype(np.float64) / 257 - from_8bit)[darkest]
    print()
    print(
        f"mean |8-bit path - RAW path| in the darkest decile: {gap.mean():.2f} of 255 (max {gap.max():.1f})"
    )


if __name__ == "__main__":
    main()
