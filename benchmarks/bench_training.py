"""Training step time of EnlightenGAN, with the breakdown G / D / feature network, plain vs optimised.

    python benchmarks/bench_training.py                 # paper architecture, 128 px crops, batch 2, CPU
    python benchmarks/bench_training.py --crop 96 --batch 4 --steps 5 --json out.json

Each configuration runs in this process on synthetic batches (no data loading: that overlaps with
compute in the trainer's DataLoader workers). "plain" is the straightforward step; the optimised
variants toggle one lever each so their effect is visible. Results go to benchmarks/RESULTS.md
(section "Training step") unless --no-write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from enlightengan.config import LossConfig
from enlightengan.data.patches import random_patch_boxes
from enlightengan.losses.feature import SelfFeaturePreservingLoss
from enlightengan.models.discriminator import global_discriminator, local_discriminator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.models.ops import attention_map
from enlightengan.models.vgg import random_vgg16_features
from enlightengan.training.objective import Batch, EnlightenGANObjective

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Variant:
    name: str
    channels_last: bool = False
    compile: bool = False
    foreach: bool | None = None


def _batch(n: int, crop: int, fmt: torch.memory_format) -> Batch:
    low = torch.rand(n, 3, crop, crop) * 0.3 * 2 - 1
    normal = torch.rand(n, 3, crop, crop) * 2 - 1
    batch = Batch(low=low, input=low.clone(), gray=attention_map(low), normal=normal)
    return Batch(
        **{k: getattr(batch, k).contiguous(memory_format=fmt) for k in ("low", "input", "gray", "normal")}
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_variant(
    variant: Variant, width: int, crop: int, batch_size: int, steps: int, warmup: int
) -> dict[str, float]:
    torch.manual_seed(0)
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    g = EnlightenGenerator(GeneratorConfig(base_width=width)).to(memory_format=fmt)
    dg, dl = global_discriminator().to(memory_format=fmt), local_discriminator().to(memory_format=fmt)
    feature = SelfFeaturePreservingLoss(random_vgg16_features(0)).to(memory_format=fmt)
    gm, dgm, dlm = (torch.compile(m) if variant.compile else m for m in (g, dg, dl))
    objective = EnlightenGANObjective(gm, dgm, dlm, feature, LossConfig(feature_net="random"))
    kwargs = {} if variant.foreach is None else {"foreach": variant.foreach}
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.999), **kwargs)
    opt_d = torch.optim.Adam([*dg.parameters(), *dl.parameters()], lr=1e-4, betas=(0.5, 0.999), **kwargs)
    rng = torch.Generator().manual_seed(0)
    batch = _batch(batch_size, crop, fmt)
    parts = {"g_forward_loss": 0.0, "g_backward_step": 0.0, "d_step": 0.0, "feature_only": 0.0}
    for i in range(warmup + steps):
        boxes = random_patch_boxes(6, 32, crop, crop, rng)
        for d in (dg, dl):
            d.requires_grad_(False)
        t0 = time.perf_counter()
        g_step = objective.generator_step(batch, boxes)
        t1 = time.perf_counter()
        opt_g.zero_grad(set_to_none=True)
        g_step.loss.backward()
        opt_g.step()
        t2 = time.perf_counter()
        for d in (dg, dl):
            d.requires_grad_(True)
        d_global, d_local, _ = objective.discriminator_losses(batch, g_step.output, boxes)
        opt_d.zero_grad(set_to_none=True)
        (d_global + (d_local if d_local is not None else 0)).backward()
        opt_d.step()
        t3 = time.perf_counter()
        fake = g_step.output.detach()
        with torch.no_grad():
            feat = _timed(lambda fake=fake: feature(fake, batch.low))
        if i >= warmup:
            parts["g_forward_loss"] += t1 - t0
            parts["g_backward_step"] += t2 - t1
            parts["d_step"] += t3 - t2
            parts["feature_only"] += feat
    out = {k: v / steps for k, v in parts.items()}
    out["step"] = out["g_forward_loss"] + out["g_backward_step"] + out["d_step"]
    out["images_per_s"] = batch_size / out["step"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=32, help="generator base width (32 = paper)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="plain,channels_last,foreach_off,compile")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    catalogue = {
        "plain": Variant("plain"),
        "channels_last": Variant("channels_last", channels_last=True),
        "foreach_off": Variant("foreach_off", foreach=False),
        "compile": Variant("compile", compile=True),
    }
    results = {}
    for name in args.variants.split(","):
        results[name] = run_variant(
            catalogue[name], args.width, args.crop, args.batch, args.steps, args.warmup
        )
        r = results[name]
        print(f"{name:>14}: {r['step']:.2f} s/step, {r['images_per_s']:.2f} img/s", flush=True)

    base = results[next(iter(results))]["step"]
    header = (
        f"width {args.width}, crop {args.crop}, batch {args.batch}, 6 local patches, random VGG-16, "
        f"{args.steps} timed steps after {args.warmup} warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, {dt.date.today()}"
    )
    lines = [
        "| variant | s/step | images/s | G fwd+loss | G bwd+step | D fwd+bwd+step "
        "| feature net fwd (in G loss) | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['step']:.2f} | {r['images_per_s']:.2f} | {r['g_forward_loss']:.2f} | "
            f"{r['g_backward_step']:.2f} | {r['d_step']:.2f} | {r['feature_only']:.2f} | "
            f"{base / r['step']:.2f}x |"
        )
    table = "\n".join(lines)
    print(header)
    print(table)
    if args.json:
        args.json.write_text(
            json.dumps({"config": vars(args) | {"json": str(args.json)}, "results": results}, indent=2)
        )
    if not args.no_write:
        _write_section(header, table)


def _write_section(header: str, table: str) -> None:
    start, end = "<!-- training-start -->", "<!-- training-end -->"
    command = "python benchmarks/bench_training.py " + " ".join(__import__("sys").argv[1:])
    body = f"{start}\n## Training step (CPU)\n\n`{command.strip()}`\n\n{header}\n\n{table}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
