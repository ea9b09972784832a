"""Peak resident memory of ``enhance`` on one large photo with each backend, the automatic tile size.

    python benchmarks/bench_backend_memory.py                   # 8 MP, the bundled model, both backends
    python benchmarks/bench_backend_memory.py --megapixels 12 --backends onnxruntime

Each backend runs in a fresh process (so ``ru_maxrss`` is its own) on a synthetic dark photo made in
bands (the photo is the only large array made before the enhancer runs), with the bundled default model
on the CPU and the automatic tile plan. It prints the peak resident memory, the memory after loading,
the number of tiles and the seconds; nothing is written to RESULTS.md. The two backends plan their tiles
against the same budget (``enlightengan.inference.tiling``), each with its own bytes per pixel.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from enlightengan.inference import Enhancer

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

backend, megapixels = sys.argv[1], float(sys.argv[2])
width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
height = int(round(megapixels * 1e6 / width))
rgb = np.empty((height, width, 3), np.uint8)
rng = np.random.default_rng(0)
xx = np.arange(width, dtype=np.float32)
for y0 in range(0, height, 256):
    yy = np.arange(y0, min(y0 + 256, height), dtype=np.float32)[:, None]
    base = 25 + 18 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 20 * ((xx > width / 3) & (yy > height / 2))
    band = np.stack([base, base * 0.8 + 5, base * 0.6 + 10], axis=-1) + rng.normal(0, 3, (*base.shape, 3))
    rgb[y0 : y0 + len(yy)] = np.clip(band, 0, 255)
enhancer = Enhancer(device="cpu", backend=backend)
loaded = peak_mb()
tiles = []
start = time.perf_counter()
enhancer.enhance(rgb, progress=lambda done, total: tiles.append(total))
print(json.dumps({"backend": backend, "size": f"{width}x{height}", "peak_mb": peak_mb(),
                  "loaded_mb": loaded, "tiles": tiles[-1], "seconds": time.perf_counter() - start}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megapixels", type=float, default=8.0)
    parser.add_argument("--backends", default="torch,onnxruntime")
    args = parser.parse_args()
    print("| backend | photo | peak resident | after loading | tiles | seconds |")
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, backend, str(args.megapixels)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {row['backend']} | {row['size']} | {row['peak_mb']:.0f} MB | {row['loaded_mb']:.0f} MB | "
            f"{row['tiles']} | {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
