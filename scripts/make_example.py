"""Make docs/examples/dark.jpg: a synthetic low-light version of scikit-image's CC0 coffee photo.

    python scripts/make_example.py

The photo (courtesy of Pikolo Espresso Bar, CC0 by Rachel Michetti) is linearised, its exposure cut to
5%, sensor-like noise added (shot noise grows with the signal, plus read noise), and it is re-encoded
as sRGB JPEG: mean brightness about 15/255, like the LOL low-light images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def main() -> None:
    rgb = data.coffee().astype(np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    rng = np.random.default_rng(0)
    dark = linear * 0.05
    dark = dark + rng.normal(0, 1, dark.shape) * np.sqrt(dark * 2e-4 + 1e-6)
    dark = np.clip(dark, 0, 1)
    srgb = np.where(dark <= 0.0031308, dark * 12.92, 1.055 * dark ** (1 / 2.4) - 0.055)
    out = Path(__file__).resolve().parents[1] / "docs" / "examples" / "dark.jpg"
    Image.fromarray((srgb * 255 + 0.5).astype(np.uint8)).save(out, quality=92)
    print(out, f"mean {np.asarray(Image.open(out)).mean():.1f}/255")


if __name__ == "__main__":
    main()
