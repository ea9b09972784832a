"""Bulk throughput of ``enlightengan enhance``: a folder of photos of 1 to 12 MP, images per minute.

    python benchmarks/bench_bulk.py                       # 50 photos, sequential against overlapped
    python benchmarks/bench_bulk.py --count 12 --workers 0 1 2

Makes ``--count`` JPEG photos (sizes cycling through 1, 2, 4, 8 and 12 MP, made from the repository's
example photo) in a temporary folder, then runs the whole command once per ``--workers`` value in a
fresh process, each writing PNG outputs to its own folder:

* ``--workers 0``: the sequential loop (read, enhance, write one photo after the other);
* ``--workers N``: decoding ahead and encoding behind in their own threads, the network in N threads.

Reports wall time, images per minute and the peak resident memory of each run (``ru_maxrss`` of the
child). Run it on an idle machine; its table goes into benchmarks/RESULTS.md by hand with the command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "dark.jpg"
MEGAPIXELS = (1, 2, 4, 8, 12)


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` dark JPEG photos of 1 to 12 MP (4:3), the example photo resized, each slightly different."""
    base = Image.open(EXAMPLE).convert("RGB")
    files = []
    for i in range(count):
        mp = MEGAPIXELS[i % len(MEGAPIXELS)]
        width = round((mp * 1e6 * 4 / 3) ** 0.5)
        height = round(width * 3 / 4)
        photo = np.asarray(base.resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
        photo = np.clip(photo + (i % 7) - 3, 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}_{mp}mp.jpg"
        Image.fromarray(photo).save(path, quality=92)
        files.append(path)
    return files


#: runs the command in the child and reports the child's own peak memory on its last stderr line
CHILD = (
    "import resource, sys\n"
    "from enlightengan.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def run(inputs: Path, out: Path, workers: int) -> dict[str, float]:
    command = [sys.executable, "-c", CHILD, "enhance", str(inputs), "-o", str(out)]
    command += ["--format", "png", "--quiet", "--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.strip().splitlines()[-1].split()[1])
    count = len(list(out.iterdir()))
    return {
        "workers": workers,
        "images": count,
        "seconds": seconds,
        "per_minute": 60 * count / seconds,
        "peak_mb": peak_kb / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        files = make_photos(inputs, args.count)
        total_mp = sum(Image.open(f).width * Image.open(f).height for f in files) / 1e6
        print(f"{len(files)} photos, {total_mp:.0f} MP in all")
        print("| --workers | images | seconds | images/min | peak RSS MB |")
        print("|---|---|---|---|---|")
        for workers in args.workers:
            result = run(inputs, Path(tmp) / f"out{workers}", workers)
            print(
                f"| {workers} | {result['images']:.0f} | {result['seconds']:.1f} | "
                f"{result['per_minute']:.2f} | {result['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
