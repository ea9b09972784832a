"""Reproduce the bundled default model: data preparation, the four training stages, the export.

    python scripts/train_default_model.py --out ../runs/default       # from the repository root

Runs, each stage in ``OUT/<stage>/`` and each from the one before (``--init-from``):

1. ``configs/recipe/default-1.yaml``: LOL + BSDS500, priors instead of VGG features (stops at 2,181 steps);
2. ``configs/recipe/default-2.yaml``: colour weight 100 (stops at 970 steps);
3. ``configs/recipe/default-3.yaml``: adversarial weights 0.1 (the 2026-11 default model);
4. ``configs/recipe/default-4.yaml``: SICE Part 1 added, fixed BatchNorm statistics, priors against
   invented colour, grain and harm to well-exposed photos;
5. ``configs/recipe/default-5.yaml``: stage 4 again from its last generator, fresh discriminators
   (the 2026-12 default model, bundled 2026-12-03);

then exports stage 5's last generator as float16 safetensors to
``OUT/enlightengan-default.safetensors`` (copy it over ``src/enlightengan/weights/`` to bundle it).

Interrupt it at any time: run the same command again and it resumes the unfinished stage
(``enlightengan train --resume``) and skips the finished ones. About 6 hours on a 2-core CPU.
The data is prepared first with ``scripts/prepare_default_data.py`` (symbolic links into
``../shared/datasets``) unless ``--data`` already holds it; the configs read it from
``../data/default``, relative to the repository root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "src" / "enlightengan" / "configs" / "recipe"
STAGES = ("default-1", "default-2", "default-3", "default-4", "default-5")


def _finished(run_dir: Path) -> bool:
    return (run_dir / "FINISHED").is_file()


def _train(stage: str, run_dir: Path, init_from: Path | None) -> None:
    command = [sys.executable, "-m", "enlightengan", "train", "--config", str(RECIPE / f"{stage}.yaml")]
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        command += ["--resume", str(run_dir)]
    else:
        command += ["--out", str(run_dir)]
        if init_from is not None:
            command += ["--init-from", str(init_from)]
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"stage {stage} stopped (exit status {result.returncode}); run the same command to resume"
        )
    (run_dir / "FINISHED").write_text("finished\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("../runs/default"), help="folder of the stage runs")
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("ENLIGHTENGAN_DATA") or REPO.parent / "shared"),
        help="the folder that holds datasets/ (default: $ENLIGHTENGAN_DATA, else ../shared)",
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "data" / "default")
    args = parser.parse_args()
    out = args.out.resolve()

    if not (args.data / "manifest.json").is_file():
        prepare = [sys.executable, str(REPO / "scripts" / "prepare_default_data.py")]
        subprocess.run([*prepare, "--shared", str(args.shared), "--out", str(args.data)], check=True)
    previous: Path | None = None
    for stage in STAGES:
        run_dir = out / stage
        if not _finished(run_dir):
            _train(stage, run_dir, previous)
        # stages 2 and 3 continue with the discriminators too (a run folder: its last checkpoint);
        # stages 4 and 5 take the generator only and train fresh discriminators
        previous = run_dir / "generator.safetensors" if stage in ("default-3", "default-4") else run_dir
    # the last stage's last generator (step 750), which the whole validation chose
    best = out / STAGES[-1] / "generator.safetensors"
    bundle = out / "enlightengan-default.safetensors"
    export = [sys.executable, "-m", "enlightengan", "export", "--weights", str(best), "--half"]
    subprocess.run([*export, "--batchnorm", "running", "--safetensors", str(bundle)], cwd=REPO, check=True)
    print(f"default model: {bundle}")


if __name__ == "__main__":
    main()
