"""``enlightengan evaluate``: score enhanced images the way the papers do (NIQE, PSNR, SSIM, brightness)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..formats import IMAGE_SUFFIXES, list_files
from ._args import add_denoise_argument, add_exposure_fade_argument, fade_choice, natural_key
from ._progress import ImageProgress

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

__all__ = ["SCORED_SUFFIXES", "register", "run"]

#: File suffixes (lower case) read from the folders; other files are ignored. GIF is left out: its
#: 256-colour palette would be scored, not the method's output.
SCORED_SUFFIXES = tuple(suffix for suffix in IMAGE_SUFFIXES if suffix != ".gif")

#: Height in pixels of each image in the --montage strips.
MONTAGE_HEIGHT = 192

EPILOG = """\
examples:
  # score the inputs themselves (DICM: mean NIQE 4.254; the paper's Table 1 input row: 4.255):
  enlightengan evaluate --pred data/dicm

  # enhance with the default model, then score; paired references give PSNR/SSIM too:
  enlightengan evaluate --low lol_eval15/low --ref lol_eval15/high --json lol.json --montage lol.png

  # your own weights, or a classical baseline for context:
  enlightengan evaluate --weights run/generator.safetensors --low data/dicm
  enlightengan evaluate --baseline clahe --low lol_eval15/low --ref lol_eval15/high

  # images already enhanced by any method (matched to --ref and --low by file name, without suffix):
  enlightengan evaluate --pred results/ --ref lol_eval15/high --low lol_eval15/low --montage look.png

metrics: NIQE (lower is better) is the MATLAB release of Mittal et al. 2013 with the LIVE pristine
parameters, on the MATLAB rgb2gray luminance, 96x96 blocks; images must be at least 96 px in both
directions. PSNR (dB) and SSIM (Gaussian 11x11, sigma 1.5, mean over RGB channels) compare with the
reference of the same name, at data range 255. dE-ref is the mean CIEDE2000 colour difference to the
reference (colour fidelity); with the low-light inputs known (--low): false is the colour the output
invents where the input was dark (CIELAB chroma; blobs and casts), dE-in the mean CIEDE2000 between
output and input (on well-exposed photos: how much harm is done). brightness is the mean 8-bit
luminance (0-255). Lower is better for NIQE, dE-ref, false and dE-in.
Files that cannot be scored are reported one by one; the rest are scored and the exit status is 1.

progress goes to stderr: a bar on a terminal, else a line per image ([3/13] name.png) and per tile of a
photo large enough to be enhanced in tiles; stdout holds only the table.
"""


class _FileError(Exception):
    """A problem with one file: reported, the file is skipped, the run goes on."""


class _UsageError(Exception):
    """A problem with the command line or the folders: nothing can be scored."""


@dataclass
class _Item:
    name: str
    source: Path
    low: Path | None = None
    ref: Path | None = None


@dataclass
class _Result:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score enhanced images: NIQE, PSNR/SSIM against references, brightness",
        description="Score enhanced images the way the low-light papers do: NIQE (MATLAB-exact, LIVE "
        "parameters), PSNR and SSIM against paired references, mean brightness. The images come "
        "from a folder (--pred), or are enhanced first from --low with a model or a baseline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("what to score (one of)")
    src.add_argument("--pred", metavar="DIR", type=Path, help="folder of already enhanced images")
    src.add_argument(
        "--weights",
        metavar="W",
        help="generator weights to enhance --low with (default when neither --pred nor --baseline "
        "is given: the packaged model)",
    )
    src.add_argument(
        "--baseline", choices=("gamma", "clahe"), help="enhance --low with a classical baseline instead"
    )
    p.add_argument(
        "--low",
        metavar="DIR",
        type=Path,
        help="low-light inputs: enhanced before scoring; with --pred only shown in the montage",
    )
    p.add_argument("--ref", metavar="DIR", type=Path, help="paired references (same file names): PSNR/SSIM")
    p.add_argument("--json", metavar="FILE", type=Path, help="write per-image scores and means as JSON")
    p.add_argument("--montage", metavar="FILE.png", type=Path, help="save input | output | reference strips")
    p.add_argument("--save", metavar="DIR", type=Path, help="also save the enhanced images (PNG) here")
    add_denoise_argument(
        p,
        "with --weights or the default model: attention-guided denoising (colour from the input, luma "
        "NL-means of strength H, default 10)",
    )
    add_exposure_fade_argument(p)
    p.add_argument("--device", help="device for --weights, e.g. cpu, cuda, cuda:1 (default: automatic)")


def _list_images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise _UsageError(f"{what} folder {folder} does not exist (or is not a folder)")
    files = list_files(folder, SCORED_SUFFIXES)
    if not files:
        raise _UsageError(f"{what} folder {folder} holds no images ({', '.join(SCORED_SUFFIXES)})")
    return sorted(files, key=lambda p: natural_key(p.name))


def _by_stem(files: Sequence[Path]) -> dict[str, list[Path]]:
    table: dict[str, list[Path]] = {}
    for path in files:
        table.setdefault(path.stem, []).append(path)
    return table


def _partner(table: dict[str, list[Path]] | None, stem: str, what: str, folder: Path | None) -> Path | None:
    if table is None:
        return None
    found = table.get(stem, [])
    if not found:
        raise _FileError(f"no {what} named {stem}.* in {folder}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise _FileError(f"several {what}s named {stem}.* in {folder} ({names}); keep one")
    return found[0]


def _load(path: Path) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise _FileError(
                    f"{path}: {image.mode} images (16-bit or float) are not supported; the metrics are "
                    "defined on 8-bit images, convert it to 8-bit RGB first"
                )
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _FileError(f"{path}: cannot read the image ({exc})") from exc


def _scorers(
    with_ref: bool,
) -> Callable[[NDArray[np.uint8], NDArray[np.uint8] | None, NDArray[np.uint8] | None], dict[str, float]]:
    from ..metrics import brightness, color_difference, false_color, niqe, psnr, ssim

    def score(
        output: NDArray[np.uint8], ref: NDArray[np.uint8] | None, low: NDArray[np.uint8] | None
    ) -> dict[str, float]:
        try:
            metrics = {"niqe": niqe(output)}
            if with_ref and ref is not None:
                metrics["psnr"] = psnr(output, ref)
                metrics["ssim"] = ssim(output, ref)
                metrics["de_ref"] = color_difference(output, ref)
            if low is not None:
                metrics["false_color"] = false_color(output, low)
                metrics["de_input"] = color_difference(output, low)
            metrics["brightness"] = brightness(output)
        except ValueError as exc:
            raise _FileError(str(exc)) from exc
        return metrics

    return score


#: Enhances one image; the second argument is told of the tiles of a large photo (see _progress).
_Enhance = Callable[["Image.Image", Callable[[int, int], None] | None], "Image.Image"]


def _enhancer(args: argparse.Namespace) -> tuple[_Enhance, str]:
    """The enhancement function for --weights / --baseline / the default model, and a description."""
    import numpy as np
    from PIL import Image

    if args.baseline is not None:
        from ..metrics import baselines

        method = baselines.gamma_baseline if args.baseline == "gamma" else baselines.clahe_baseline

        def run_baseline(image: Image.Image, progress: Callable[[int, int], None] | None) -> Image.Image:
            return Image.fromarray(method(np.asarray(image)))

        return run_baseline, f"baseline {args.baseline}"

    from ..inference import Enhancer

    # weights None: Enhancer resolves $ENLIGHTENGAN_WEIGHTS, then the packaged default model.
    enhancer = Enhancer(
        args.weights,
        device=args.device or "auto",
        denoise=args.denoise,
        exposure_fade=fade_choice(args.exposure_fade),
    )
    extra = f", denoise {args.denoise:g}" if args.denoise else ""

    def run_model(image: Image.Image, progress: Callable[[int, int], None] | None) -> Image.Image:
        return enhancer.enhance(image, progress=progress)

    return run_model, f"weights {enhancer.weights}{extra}"


def _enhance_one(
    enhance: _Enhance, image: Image.Image, path: Path, progress: Callable[[int, int], None]
) -> Image.Image:
    try:
        return enhance(image, progress).convert("RGB")
    except (ValueError, RuntimeError) as exc:
        raise _FileError(f"{path}: enhancement failed ({exc})") from exc


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


_COLUMNS = (
    ("niqe", "NIQE", 3),
    ("psnr", "PSNR", 2),
    ("ssim", "SSIM", 3),
    ("de_ref", "dE-ref", 2),
    ("false_color", "false", 2),
    ("de_input", "dE-in", 2),
    ("brightness", "bright", 1),
)


def _table(results: Sequence[_Result], means: dict[str, float], keys: Sequence[str]) -> str:
    columns = [c for c in _COLUMNS if c[0] in keys]
    width = max([len(r.name) for r in results] + [len("mean")])
    header = f"{'image':<{width}}  " + "  ".join(f"{label:>7}" for _, label, _ in columns)
    lines = [header, "-" * len(header)]
    for result in results:
        if result.error is not None:
            lines.append(f"{result.name:<{width}}  skipped: {result.error}")
            continue
        cells = "  ".join(f"{_fmt(result.metrics.get(k), d):>7}" for k, _, d in columns)
        lines.append(f"{result.name:<{width}}  {cells}")
    lines.append("-" * len(header))
    cells = "  ".join(f"{_fmt(means.get(k), d):>7}" for k, _, d in columns)
    lines.append(f"{'mean':<{width}}  {cells}")
    return "\n".join(lines)


def _thumbnail(image: Image.Image) -> Image.Image:
    from PIL import Image

    width = max(1, round(image.width * MONTAGE_HEIGHT / image.height))
    return image.resize((width, MONTAGE_HEIGHT), Image.Resampling.LANCZOS)


def _save_montage(
    path: Path, titles: Sequence[str], rows: Sequence[tuple[str, list[Image.Image | None]]]
) -> None:
    """One labelled strip per image (input | output | reference), stacked; written atomically."""
    from PIL import Image, ImageDraw

    from .._atomic import atomic_path

    gap, band = 4, 20
    widths = [
        max((p.width for _, panels in rows if (p := panels[i]) is not None), default=0)
        for i in range(len(titles))
    ]
    canvas_w = sum(widths) + gap * (len(widths) + 1)
    canvas_h = band + len(rows) * (band + MONTAGE_HEIGHT + gap)
    canvas = Image.new("RGB", (canvas_w, canvas_h), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for title, w in zip(titles, widths, strict=True):
        draw.text((x, 4), title, fill=(255, 255, 255))
        x += w + gap
    y = band
    for label, panels in rows:
        draw.text((gap, y + 4), label, fill=(230, 230, 160))
        x = gap
        for panel, w in zip(panels, widths, strict=True):
            if panel is not None:
                canvas.paste(panel, (x, y + band))
            x += w + gap
        y += band + MONTAGE_HEIGHT + gap
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def _plan(args: argparse.Namespace) -> list[_Item | _Result]:
    """Pair every image to score with its low-light input and reference; unmatched ones become errors."""
    enhancing = args.pred is None
    sources = _list_images(args.pred if not enhancing else args.low, "--pred" if not enhancing else "--low")
    lows = None if enhancing or args.low is None else _by_stem(_list_images(args.low, "--low"))
    refs = None if args.ref is None else _by_stem(_list_images(args.ref, "--ref"))
    plan: list[_Item | _Result] = []
    for stem, paths in _by_stem(sources).items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            plan.append(_Result(paths[0].name, error=f"several images named {stem}.* ({names}); keep one"))
            continue
        item = _Item(paths[0].name, paths[0], low=paths[0] if enhancing else None)
        try:
            if lows is not None:
                item.low = _partner(lows, stem, "low-light input", args.low)
            item.ref = _partner(refs, stem, "reference", args.ref)
        except _FileError as exc:
            plan.append(_Result(item.name, error=str(exc)))
            continue
        plan.append(item)
    return plan


def _evaluate_one(
    entry: _Item,
    enhance: _Enhance | None,
    score: Callable[[Any, Any, Any], dict[str, float]],
    args: argparse.Namespace,
    tiles: Callable[[int, int], None],
) -> tuple[_Result, tuple[str, list[Image.Image | None]] | None]:
    """Score one image (enhancing it first when asked): its result, and its montage row if one is made."""
    import numpy as np

    try:
        low = _load(entry.low) if entry.low is not None else None
        if enhance is not None and low is not None:
            output = _enhance_one(enhance, low, entry.source, tiles)
        else:
            output = _load(entry.source)
        ref = _load(entry.ref) if entry.ref is not None else None
        metrics = score(
            np.asarray(output),
            None if ref is None else np.asarray(ref),
            None if low is None else np.asarray(low),
        )
    except _FileError as exc:
        return _Result(entry.name, error=str(exc)), None
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)  # made with the first image it holds
        output.save(args.save / f"{Path(entry.name).stem}.png")
    if args.montage is None:
        return _Result(entry.name, metrics), None
    label = entry.name + "".join(
        f"  {name} {_fmt(metrics.get(key), digits)}" for key, name, digits in _COLUMNS if key in metrics
    )
    panels = [None if img is None else _thumbnail(img) for img in (low, output, ref)]
    return _Result(entry.name, metrics), (label, panels)


def _check_args(args: argparse.Namespace) -> str | None:
    chosen = [
        flag
        for flag, value in (("--pred", args.pred), ("--weights", args.weights), ("--baseline", args.baseline))
        if value is not None
    ]
    if len(chosen) > 1:
        return f"choose one of --pred, --weights, --baseline (got {' and '.join(chosen)})"
    if args.pred is None and args.low is None:
        return "give --pred DIR (images to score) or --low DIR (images to enhance, then score)"
    if args.save is not None and args.save.exists() and not args.save.is_dir():
        return f"--save {args.save} exists and is not a folder"
    if args.pred is not None and args.save is not None:
        return "--save stores enhanced images; with --pred nothing is enhanced"
    if args.denoise and (args.pred is not None or args.baseline is not None):
        return "--denoise applies to a model's output (--weights or the default), not to --pred/--baseline"
    if args.exposure_fade is not None and (args.pred is not None or args.baseline is not None):
        return "--exposure-fade applies to a model (--weights or the default), not to --pred/--baseline"
    if args.montage is not None and args.montage.suffix.lower() != ".png":
        return f"--montage writes a PNG file; give a name ending in .png (got {args.montage})"
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    problem = _check_args(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        plan = _plan(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with_ref = args.ref is not None
    score = _scorers(with_ref)
    enhance: _Enhance | None = None
    description = f"images in {args.pred}"
    if args.pred is None:
        try:
            enhance, description = _enhancer(args)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"error: cannot load the enhancer: {exc}", file=sys.stderr)
            return 2

    results: list[_Result] = []
    rows: list[tuple[str, list[Image.Image | None]]] = []
    # stderr only (stdout is the table): a bar on a terminal, "[3/13] name.png" lines elsewhere
    with ImageProgress(len(plan), desc="evaluate") as progress:
        for entry in plan:
            progress.start(entry.name)
            try:
                if isinstance(entry, _Result):
                    results.append(entry)
                    continue
                result, row = _evaluate_one(entry, enhance, score, args, progress.tiles)
                results.append(result)
                if row is not None:
                    rows.append(row)
            finally:
                progress.finish()

    scored = [r for r in results if r.error is None]
    keys = [k for k, _, _ in _COLUMNS if any(k in r.metrics for r in scored)]
    means = {k: float(np.mean([r.metrics[k] for r in scored])) for k in keys} if scored else {}
    failed = [r for r in results if r.error is not None]

    print(f"scored {len(scored)} of {len(results)} images ({description})")
    print(_table(results, means, keys))
    for result in failed:
        print(f"error: {result.name}: {result.error}", file=sys.stderr)

    if args.json is not None:
        from .._atomic import atomic_path

        report = {
            "source": description,
            "images": [{"name": r.name, **r.metrics} for r in scored],
            "mean": {**means, "count": len(scored)},
            "errors": [{"name": r.name, "error": r.error} for r in failed],
        }
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    if args.montage is not None and rows:
        titles = ["input" if args.low is not None else "", "output", "reference" if with_ref else ""]
        keep = [i for i, title in enumerate(titles) if title]
        _save_montage(
            args.montage, [titles[i] for i in keep], [(lab, [p[i] for i in keep]) for lab, p in rows]
        )
    return 1 if failed or not scored else 0
