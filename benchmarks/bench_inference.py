"""Inference speed and memory of EnlightenGAN: the eager reference, the optimised paths, fast mode.

    python benchmarks/bench_inference.py                  # full run (about 15 minutes on 2 cores)
    python benchmarks/bench_inference.py --quick          # 0.25 and 1 MP, a PSNR subset, no levers
    python benchmarks/bench_inference.py --json out.json --no-write

Sections (each written to benchmarks/RESULTS.md between its markers unless --no-write):

* speed: seconds per megapixel and peak resident memory at 0.25, 1, 4 and 12 MP for
  (a) ``eager``: the faithful module, ``model(x)`` under ``torch.no_grad()``, nothing else;
  (b) ``torch``: ``Enhancer(backend="torch")`` on the CPU (TorchBackend, automatic tiles);
  (c) ``onnxruntime``: ``Enhancer(backend="onnxruntime")``;
  (d) ``openvino``: ``Enhancer(backend="openvino")`` (fixed-statistics generators only);
  (e) ``default``: ``Enhancer()``, whose ``backend="auto"`` picks (b), (c) or (d) for the model;
  (f) ``fast``: ``Enhancer(fast=True)`` (network at 1/2.25 of the size per side, guided upsampling);
  with ratios to (a). Every measurement runs in a fresh subprocess, so ``ru_maxrss`` is that
  configuration's peak alone (it includes the interpreter, torch and the model: see "baseline").
* levers: each optimisation of the exact path switched on one at a time, at 1 MP.
* fast-mode quality: PSNR of fast mode against the exact output, per image, on ../shared/datasets
  dicm and lime (8-bit outputs).
* tiling: how far a tile border's zero padding reaches (max change against untiled inference per
  margin), on a real photo.

Weights: the published architecture with ../shared/fixtures/official_generator_fixture.pt (random but
released-layout weights), or any generator with ``--speed-weights`` (speed) and ``--psnr-weights``
(fast-mode quality), e.g. the bundled default model. Timings: the minimum over repeats after a
warm-up on a small image; a first call at a new size costs more (oneDNN primitive creation).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
SHARED = Path(os.environ.get("ENLIGHTENGAN_DATA") or ROOT.parents[0].parent / "shared")
FIXTURE = SHARED / "fixtures" / "official_generator_fixture.pt"

#: (height, width) of each size, 4:3 like most photos.
SIZES = {"0.25": (432, 576), "1": (864, 1152), "4": (1728, 2304), "12": (3000, 4000)}
CONFIGS = ("eager", "torch", "onnxruntime", "openvino", "default", "fast")
REPEATS = {"0.25": 7, "1": 3, "4": 2, "12": 1}
#: Levers of the exact path, measured at 1 MP (name -> worker config).
LEVERS = (
    "eager",
    "eager+inference_mode",
    "eager+channels_last",
    "torch:plain",
    "torch:channels_last",
    "torch:channels_last+fuse",
    "torch:channels_last+fuse+fold",
    "torch:1-thread",
    "compile",
    "jit-freeze",
    "bf16-autocast",
    "onnxruntime:basic",
    "onnxruntime",
    "openvino",
)


# ---------------------------------------------------------------------------------------------------
# worker side (one configuration, one size, in a fresh process)
# ---------------------------------------------------------------------------------------------------


#: The speed section's generator file (``--speed-weights``; passed to the workers), or None: the fixture.
SPEED_WEIGHTS_ENV = "ENLIGHTENGAN_BENCH_WEIGHTS"


def _model() -> Any:
    import torch

    from enlightengan.models.checkpoint import load_generator
    from enlightengan.models.generator import EnlightenGenerator

    if os.environ.get(SPEED_WEIGHTS_ENV):
        return load_generator(os.environ[SPEED_WEIGHTS_ENV])
    if FIXTURE.is_file():
        return load_generator(FIXTURE)
    torch.manual_seed(0)
    return EnlightenGenerator().eval()


def _photo(height: int, width: int) -> Any:
    """A real low-light photo resized to ``height x width`` (synthetic if ../shared is absent), [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    source = SHARED / "datasets" / "dicm" / "01.jpg"
    if source.is_file():
        with Image.open(source) as image:
            rgb = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    else:
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)


def _runner(config: str, model: Any) -> tuple[Any, dict[str, float]]:
    """A function ``x -> enhanced x`` for ``config`` and setup facts (e.g. compile time)."""
    import torch

    from enlightengan.inference import Enhancer
    from enlightengan.inference.tiling import tiled_output
    from enlightengan.inference.torch_backend import TorchBackend

    facts: dict[str, float] = {}
    if config == "eager":
        # The plain module computing what a per-image BatchNorm generator computes: training-mode
        # BatchNorm (each image normalised with its own statistics) in one forward.
        reference = model.train() if model.config.per_image else model

        def eager(x: Any) -> Any:
            with torch.no_grad():
                return reference(x).output.clamp(-1, 1)

        return eager, facts
    if config == "eager+inference_mode":

        def eager_im(x: Any) -> Any:
            with torch.inference_mode():
                return model(x).output.clamp(-1, 1)

        return eager_im, facts
    if config == "eager+channels_last":
        cl_model = model.to(memory_format=torch.channels_last)

        def eager_cl(x: Any) -> Any:
            with torch.inference_mode():
                return cl_model(x.contiguous(memory_format=torch.channels_last)).output.clamp(-1, 1)

        return eager_cl, facts
    if config.startswith("torch:"):
        variant = config.split(":", 1)[1]
        if variant == "1-thread":
            torch.set_num_threads(1)
            backend = TorchBackend(model)
        else:
            parts = set(variant.split("+"))
            backend = TorchBackend(
                model,
                channels_last="channels_last" in parts,
                fold_batchnorm="fold" in parts,
                fuse_activation="fuse" in parts,
            )

        def run_backend(x: Any) -> Any:
            with torch.inference_mode():
                return tiled_output(backend, x, budget=1 << 34).clamp_(-1, 1)

        return run_backend, facts
    if config == "compile":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        cl_model = model.to(memory_format=torch.channels_last)
        compiled: Any = torch.compile(cl_model)

        def run_compiled(x: Any) -> Any:
            with torch.inference_mode():
                return compiled(x.contiguous(memory_format=torch.channels_last)).output.clamp(-1, 1)

        return run_compiled, facts
    if config == "jit-freeze":
        # TorchScript: traced at the benchmark's size, frozen and converted by optimize_for_inference
        # (oneDNN blocked layouts and fusions); a trace holds one size, so this is a probe, not a path.
        traced: dict[tuple[int, ...], Any] = {}

        class OutputOnly(torch.nn.Module):
            def __init__(self, generator: Any) -> None:
                super().__init__()
                self.generator = generator

            def forward(self, x: Any) -> Any:
                return self.generator(x).output

        def run_frozen(x: Any) -> Any:
            with torch.no_grad():
                if x.shape not in traced:
                    core = OutputOnly(model).eval()
                    frozen = torch.jit.freeze(torch.jit.trace(core, (x,), check_trace=False))
                    traced[x.shape] = torch.jit.optimize_for_inference(frozen)
                return traced[x.shape](x).clamp(-1, 1)

        return run_frozen, facts
    if config == "bf16-autocast":
        # bfloat16 convolutions (oneDNN, avx512_bf16 where the CPU has it): not exact (see max levels)
        cl_model = model.to(memory_format=torch.channels_last)

        def run_bf16(x: Any) -> Any:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                out = cl_model(x.contiguous(memory_format=torch.channels_last)).output
            return out.float().clamp(-1, 1)

        return run_bf16, facts
    if config == "onnxruntime:basic":
        from enlightengan.inference.onnxruntime_backend import OnnxRuntimeBackend

        ort_backend = OnnxRuntimeBackend(model, graph_optimization="basic")

        def run_ort(x: Any) -> Any:
            with torch.inference_mode():
                return tiled_output(ort_backend, x, budget=1 << 34).clamp_(-1, 1)

        return run_ort, facts
    choices: dict[str, dict[str, Any]] = {
        "default": {},
        "torch": {"backend": "torch"},
        "onnxruntime": {"backend": "onnxruntime"},
        "openvino": {"backend": "openvino"},
        "fast": {"fast": True},
    }
    options = choices[config]
    start = time.perf_counter()
    enhancer = Enhancer(model=model, device="cpu", **options)
    facts["setup_s"] = time.perf_counter() - start
    return enhancer.enhance_tensor, facts


def worker(config: str, size: str, repeat: int, check: bool = False) -> dict[str, Any]:
    """Time ``config`` at ``size``: warm-up on 64 x 64, then ``repeat`` calls at full size.

    ``check`` also reports ``max_levels``: the largest difference, in 8-bit grey levels, between the
    last output and the eager module's (run once afterwards, not timed).
    """
    import torch

    model = _model()
    height, width = SIZES[size]
    x = _photo(height, width)
    run, facts = _runner(config, model)
    start = time.perf_counter()
    run(x[..., :64, :64])
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = run(x)
        times.append(time.perf_counter() - start)
    facts_out = dict(facts)
    if check:
        reference, _ = _runner("eager", _model())
        facts_out["max_levels"] = float((_quantise(out) - _quantise(reference(x))).abs().max())
    del out
    megapixels = height * width / 1e6
    return {
        "config": config,
        "size_mp": megapixels,
        "height": height,
        "width": width,
        "seconds": min(times),
        "seconds_first": times[0],
        "s_per_mp": min(times) / megapixels,
        "warmup_s": warmup,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        **facts_out,
    }


def baseline() -> dict[str, Any]:
    """Peak RSS of a process that imports torch and loads the model, and does nothing else."""
    import enlightengan.inference  # noqa: F401  (the modules a real run imports)

    _model()
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------------------------------------
# driver side
# ---------------------------------------------------------------------------------------------------


def _idle_share(seconds: float = 2.0) -> float:
    """Share of CPU time idle over ``seconds`` (from /proc/stat; 1.0 where it cannot be read)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(total1 - total0, 1)


#: Measurements start once the machine has been this idle (other engineers share it), or after
#: --wait seconds of waiting (then the idle share recorded with the result says so).
IDLE_THRESHOLD = 0.85
WAIT = {"limit": 120.0}


def _wait_for_quiet() -> float:
    share = _idle_share()
    waited = 0.0
    while share < IDLE_THRESHOLD and waited < WAIT["limit"]:
        time.sleep(10)
        waited += 10 + 2
        share = _idle_share()
    return share


def _spawn(*args: str, timeout: float = 1800) -> dict[str, Any]:
    idle = _wait_for_quiet()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1])) | {"idle_before": idle}


def _machine() -> dict[str, Any]:
    import onnxruntime
    import openvino
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__.split("-")[0],
        "load_average": os.getloadavg(),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def speed_section(sizes: list[str], configs: list[str], eager_max_mp: float) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for size in sizes:
        for config in configs:
            if config == "eager" and float(size) > eager_max_mp:
                results[f"{config}@{size}"] = {
                    "skipped": f"eager above {eager_max_mp} MP (memory: see notes)"
                }
                continue
            result = _spawn(config, size, str(REPEATS[size]))
            results[f"{config}@{size}"] = result
            print(f"  {config:>12} @ {size:>4} MP: {_describe(result)}", flush=True)
    return results


def _describe(result: dict[str, Any]) -> str:
    if "error" in result or "skipped" in result:
        return str(result.get("error") or result.get("skipped"))
    return (
        f"{result['s_per_mp']:.2f} s/MP ({result['seconds']:.1f} s), "
        f"peak RSS {result['peak_rss_mb']:.0f} MB, CPU idle before {result['idle_before']:.0%}"
    )


def speed_table(results: dict[str, Any], sizes: list[str], configs: list[str], generator: str = "") -> str:
    labels = {
        "eager": "(a) eager",
        "torch": "(b) torch",
        "onnxruntime": "(c) onnxruntime",
        "openvino": "(d) openvino",
        "default": "(e) default (auto)",
        "fast": "(f) fast",
    }
    lines = [
        "| configuration | " + " | ".join(f"{s} MP: s/MP | x (a) | peak RSS MB" for s in sizes) + " |",
        "|---|" + "---|---|---|" * len(sizes),
    ]
    for config in configs:
        cells = []
        for size in sizes:
            r = results.get(f"{config}@{size}", {})
            ref = results.get(f"eager@{size}", {})
            ref_note = ""
            if "s_per_mp" not in ref:  # (a) not run at this size: compare with its largest measured size
                measured = [
                    results[f"eager@{s}"] for s in sizes if "s_per_mp" in results.get(f"eager@{s}", {})
                ]
                ref = measured[-1] if measured else {}
                ref_note = "*"
            if "s_per_mp" not in r:
                cells.append("- | - | -")
                continue
            ratio = ref["s_per_mp"] / r["s_per_mp"] if "s_per_mp" in ref else None
            ratio_text = _fmt(ratio, ".2f") + (ref_note if ratio else "")
            cells.append(f"{r['s_per_mp']:.2f} | {ratio_text} | {r['peak_rss_mb']:.0f}")
        name = f"{generator}: {labels[config]}" if generator else labels[config]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _busy_note(results: dict[str, Any]) -> str:
    """Which measurements started on a busy machine (their timings include the contention)."""
    busy = [
        f"{name} ({r['idle_before']:.0%} idle)"
        for name, r in results.items()
        if isinstance(r, dict) and r.get("idle_before", 1.0) < IDLE_THRESHOLD
    ]
    if not busy:
        return "Every measurement started on an idle machine."
    return "Started while other work was running (CPU idle share just before): " + ", ".join(busy) + "."


def lever_section(size: str) -> tuple[dict[str, Any], str]:
    results = {}
    for lever in LEVERS:
        result = _spawn(lever, size, "2", "check")
        results[lever] = result
        print(f"  {lever:>30}: {_describe(result)}", flush=True)
    base = results["eager"].get("s_per_mp")
    lines = [
        "| lever (1 MP) | s/MP | x eager | max grey levels from eager | first call s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for lever, r in results.items():
        if "s_per_mp" not in r:
            lines.append(f"| {lever} | {r.get('error', '-')} | | | | |")
            continue
        ratio = base / r["s_per_mp"] if base else None
        lines.append(
            f"| {lever} | {r['s_per_mp']:.2f} | {_fmt(ratio, '.2f')} | {_fmt(r.get('max_levels'), '.0f')} | "
            f"{r['seconds_first']:.1f} (warm-up {r['warmup_s']:.1f}) | {r['peak_rss_mb']:.0f} |"
        )
    return results, "\n".join(lines)


def _quantise(y: Any) -> Any:
    import torch

    return torch.round((y.clamp(-1, 1) + 1) * 127.5)


def psnr_section(
    limit: int | None, scales: tuple[float, ...], weights: Path | None = None
) -> tuple[dict[str, Any], str]:
    import numpy as np
    import torch
    from PIL import Image

    from enlightengan.inference import Enhancer
    from enlightengan.inference.fast import FastConfig
    from enlightengan.models.checkpoint import load_generator

    model = load_generator(weights) if weights is not None else _model()
    exact = Enhancer(model=model, device="cpu")
    fast = {scale: Enhancer(model=model, device="cpu", fast=FastConfig(scale=scale)) for scale in scales}
    rows: dict[str, Any] = {}
    for folder in ("dicm", "lime"):
        files = sorted((SHARED / "datasets" / folder).glob("*"))
        files = [f for f in files if f.suffix.lower() in (".jpg", ".bmp", ".png")][:limit]
        for path in files:
            with Image.open(path) as image:
                rgb = np.array(image.convert("RGB"))
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)
            reference = _quantise(exact.enhance_tensor(x))
            row: dict[str, Any] = {"size": f"{rgb.shape[1]}x{rgb.shape[0]}"}
            for scale, enhancer in fast.items():
                mse = float((reference - _quantise(enhancer.enhance_tensor(x))).square().mean())
                row[f"psnr_db@{scale:g}"] = 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")
            rows[f"{folder}/{path.name}"] = row
            print(f"  {folder}/{path.name}: {row}", flush=True)
    source = f"`{weights}`" if weights is not None else "the fixture's random released-layout weights"
    lines = [f"Generator: {source}.", ""]
    for scale in scales:
        values = np.array([r[f"psnr_db@{scale:g}"] for r in rows.values()])
        lines.append(
            f"- scale {scale:g} (network on 1/{scale * scale:.2g} of the pixels), {len(values)} images: mean "
            f"{values.mean():.2f} dB, median {np.median(values):.2f}, min {values.min():.2f}, max "
            f"{values.max():.2f}; {int((values >= 33).sum())} of {len(values)} at or above 33 dB"
        )
    lines += ["", "| image | size | " + " | ".join(f"PSNR dB, scale {s:g}" for s in scales) + " |"]
    lines.append("|---|---|" + "---|" * len(scales))
    lines += [
        f"| {name} | {r['size']} | " + " | ".join(f"{r[f'psnr_db@{s:g}']:.2f}" for s in scales) + " |"
        for name, r in rows.items()
    ]
    return rows, "\n".join(lines)


def tiling_section() -> tuple[dict[str, Any], str]:
    import numpy as np
    import torch
    from PIL import Image

    from enlightengan.inference.tiling import tiled_output
    from enlightengan.inference.torch_backend import TorchBackend

    model = _model()
    path = SHARED / "datasets" / "lime" / "10.bmp"
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)
    with torch.inference_mode():
        reference = model(x).output
    backend = TorchBackend(model)

    class Naive:
        """Tiles run as if each were a whole image (no placement): the align_corners drift shows."""

        name = "naive"

        def run(self, image: Any, gray: Any, placement: Any = None) -> Any:
            return backend.run(image, gray, None)

    rows: dict[str, Any] = {}
    cases: list[tuple[str, Any, int]] = [(f"margin {m}", backend, m) for m in (0, 16, 32, 48, 64)]
    cases.append(("margin 48, tiles placed naively", Naive(), 48))
    for label, runner, margin in cases:
        out = tiled_output(runner, x, tile=2 * margin + 160, margin=margin)
        err = (out - reference).abs() * 127.5  # grey levels
        levels = (_quantise(out) - _quantise(reference)).abs()
        rows[label] = {
            "max_grey_levels": float(err.max()),
            "p99_99_grey_levels": float(err.flatten().kthvalue(int(err.numel() * 0.9999)).values),
            "share_within_1_level": float((levels <= 1).float().mean()),
        }
        print(f"  {label}: {rows[label]}", flush=True)
    lines = [
        f"lime/10.bmp ({rgb.shape[1]}x{rgb.shape[0]}), tiles of 2 x margin + 160 px, "
        "against untiled `model(x)`:",
        "",
        "| tiles | max abs change (grey levels) | 99.99th percentile | pixels within 1 level |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {r['max_grey_levels']:.4f} | {r['p99_99_grey_levels']:.4f} | "
        f"{100 * r['share_within_1_level']:.4f}% |"
        for k, r in rows.items()
    ]
    return rows, "\n".join(lines)


def write_section(name: str, title: str, body: str) -> None:
    start, end = f"<!-- inference-{name}-start -->", f"<!-- inference-{name}-end -->"
    block = f"{start}\n## {title}\n\n{body}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="0.25 and 1 MP, 8 PSNR images per set, no levers"
    )
    parser.add_argument("--sizes", default=None, help="comma-separated sizes in MP (default: all, or 0.25,1)")
    parser.add_argument("--sections", default="speed,levers,psnr,tiling", help="which sections to run")
    parser.add_argument(
        "--eager-max-mp", type=float, default=4.0, help="largest size for (a) (12 MP eager needs ~13 GB)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=WAIT["limit"],
        help="seconds to wait for an idle machine before each measurement (default: 120)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers to this file")
    parser.add_argument(
        "--psnr-weights",
        type=Path,
        default=None,
        help="generator for the fast-mode PSNR section (default: the fixture's random weights)",
    )
    parser.add_argument(
        "--speed-weights",
        type=Path,
        default=None,
        help="a generator measured in the speed section beside the published network (fixture weights), "
        "e.g. the bundled default model; also the generator of the levers section",
    )
    parser.add_argument(
        "--speed-weights-label",
        default="bundled",
        help="the --speed-weights generator's name in the speed table (default: bundled)",
    )
    parser.add_argument(
        "--no-published",
        action="store_true",
        help="with --speed-weights: leave the published network out of the speed section",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker[0] == "baseline":
            print(json.dumps(baseline()))
        else:
            config, size, repeat, *check = args.worker
            print(json.dumps(worker(config, size, int(repeat), check=bool(check))))
        return

    WAIT["limit"] = args.wait
    sizes = args.sizes.split(",") if args.sizes else (["0.25", "1"] if args.quick else list(SIZES))
    sections = set(args.sections.split(","))
    if args.quick:
        sections.discard("levers")
    command = "python benchmarks/bench_inference.py " + " ".join(sys.argv[1:])
    machine = _machine()
    print(f"machine: {machine}", flush=True)
    report: dict[str, Any] = {"command": command.strip(), "machine": machine}
    written: list[tuple[str, str, str]] = []
    header = (
        f"`{command.strip()}` on {machine['date']}: {machine['cpu']}, {machine['cores']} cores, "
        f"torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, openvino {machine['openvino']}, "
        "1-minute load average at start "
        f"{machine['load_average'][0]:.2f}. The machine is shared with other engineers: each measurement "
        f"waited for the CPUs to be at least {IDLE_THRESHOLD:.0%} idle (up to {WAIT['limit']:.0f} s); "
        "the JSON records the idle share before and the load after each one."
    )

    if "speed" in sections:
        print("speed:", flush=True)
        # (label, weights): the published network (fixture weights) and, with --speed-weights, that
        # generator too, measured in the same run so that the two are comparable
        generators: list[tuple[str, Path | None]] = []
        if args.speed_weights is None or not args.no_published:
            generators.append(("published", None))
        if args.speed_weights is not None:
            generators.append((args.speed_weights_label, args.speed_weights.resolve()))
        tables, report["speed"], report["baseline"] = [], {}, {}
        for label, weights in generators:
            if weights is None:
                os.environ.pop(SPEED_WEIGHTS_ENV, None)
            else:
                os.environ[SPEED_WEIGHTS_ENV] = str(weights)
            print(f" {label}:", flush=True)
            report["baseline"][label] = _spawn("baseline")
            report["speed"][label] = speed_section(sizes, list(CONFIGS), args.eager_max_mp)
            tables.append(speed_table(report["speed"][label], sizes, list(CONFIGS), label))
        table = "\n".join(tables[:1] + [t.split("\n", 2)[2] for t in tables[1:]])
        print(table)
        described = {
            "published": "the published width-32 network with the fixture's released-layout weights",
            args.speed_weights_label: f"`{args.speed_weights}`",
        }
        rss = ", ".join(
            f"{label} {report['baseline'][label].get('peak_rss_mb', 0):.0f} MB" for label, _ in generators
        )
        notes = (
            "Generators: "
            + "; ".join(f"{label}: {described[label]}" for label, _ in generators)
            + ". For a per-image BatchNorm generator (a) is the module in training-mode BatchNorm "
            "(each image normalised with its own statistics); for fixed statistics, the module in eval "
            "mode. Seconds per megapixel (min over repeats after a warm-up) and peak RSS of a fresh "
            f"process (interpreter + torch + model alone: {rss}). * = (a) was not run at this size (the "
            "faithful module needs about 1 GB per megapixel at width 32); the ratio uses (a)'s s/MP at "
            "its largest measured size."
        )
        busy = {f"{label} {k}": v for label, _ in generators for k, v in report["speed"][label].items()}
        body = f"{header}\n\n{notes}\n\n{table}\n\n{_busy_note(busy)}"
        written.append(("speed", "Inference speed and memory (CPU)", body))
    if "levers" in sections:
        print("levers:", flush=True)
        if args.speed_weights is not None:
            os.environ[SPEED_WEIGHTS_ENV] = str(args.speed_weights.resolve())
        levers, table = lever_section("1")
        print(table)
        report["levers"] = levers
        generator = (
            f"`{args.speed_weights}`"
            if args.speed_weights is not None
            else "the published width-32 network with the fixture's weights"
        )
        body = (
            f"{header}\n\nGenerator: {generator}. Max grey levels: the largest difference of the 8-bit "
            f"output from the eager module's on the benchmark photo.\n\n{table}\n\n{_busy_note(levers)}"
        )
        written.append(("levers", "Levers of the exact path (1 MP)", body))
    if "psnr" in sections and SHARED.is_dir():
        print("fast-mode PSNR:", flush=True)
        rows, table = psnr_section(8 if args.quick else None, (2.0, 2.25, 2.5), args.psnr_weights)
        report["psnr"] = rows
        written.append(("psnr", "Fast mode against the exact output (PSNR, 8-bit)", f"{header}\n\n{table}"))
    if "tiling" in sections and SHARED.is_dir():
        print("tiling:", flush=True)
        rows, table = tiling_section()
        report["tiling"] = rows
        written.append(("tiling", "Tiling: reach of a tile border", f"{header}\n\n{table}"))

    report["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if not args.no_write:
        for name, title, body in written:
            write_section(name, title, body)


if __name__ == "__main__":
    main()
