"""``enlightengan enhance``: enhance photos from files, folders and globs into an output folder."""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..formats import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    HEIF_SUFFIXES,
    IMAGE_SUFFIXES,
    OUTPUT_FORMATS,
    PHOTO_SUFFIXES,
    RAW_SUFFIXES,
    VIDEO_SUFFIXES,
    list_files,
)
from ._args import (
    add_backend_argument,
    add_denoise_argument,
    add_device_argument,
    add_exposure_fade_argument,
    add_weights_argument,
    enhancement_strength,
    fade_choice,
    natural_key,
    non_negative_int,
    positive_int,
    strength,
)
from ._progress import TileBar

if TYPE_CHECKING:
    from ..image_io import LoadedImage
    from ..inference import Enhancer

__all__ = ["register", "run"]

EPILOG = f"""\
examples:
  # enhance two photos with the authors' released generator:
  enlightengan enhance dark1.jpg dark2.png -o bright/ --weights 200_net_G_A.pth

  # every image in a folder (top level), then a whole tree keeping its sub-folders under bright/:
  enlightengan enhance photos/ -o bright/
  enlightengan enhance photos/ -o bright/ --recursive

  # globs are expanded by enlightengan too, so quoted patterns work (** with --recursive):
  enlightengan enhance 'shots/*.jpg' 'scans/**/*.tif' -o bright/ --recursive

  # a milder result on the GPU, replacing earlier outputs:
  enlightengan enhance photos/ -o bright/ --strength 0.6 --device cuda --overwrite

  # weights from the environment instead of --weights:
  ENLIGHTENGAN_WEIGHTS=run/generator.safetensors enlightengan enhance photos/ -o bright/

  # a 50-megapixel panorama in bounded memory (tiles of at most 1024 px; within one grey level of untiled):
  enlightengan enhance pano.tif -o bright/ --tile 1024

  # faster, approximate (the network on a fifth of the pixels, guided upsampling), via ONNX Runtime:
  enlightengan enhance photos/ -o bright/ --fast --backend onnxruntime

  # less noise in what were the darkest parts (attention-guided non-local means; 0 = off):
  enlightengan enhance photos/ -o bright/ --denoise        # or --denoise 10 for stronger

  # a video: streamed frame by frame, frame rate, size and audio kept, flicker reported:
  enlightengan enhance clip.mp4 -o bright/ --smoothing 0.8

  # a bulk job shared by 4 machines or cluster tasks (each runs one shard; rerun to resume):
  enlightengan enhance archive/ -o bright/ --recursive --shard 1/4     # ... 2/4, 3/4, 4/4

  # phone HEIC (writes bright/IMG_0042.heic) and camera RAW (bright/DSC_0815.tif, 16-bit):
  enlightengan enhance IMG_0042.heic DSC_0815.NEF -o bright/           # extras [heif] and [raw]

  # a folder of mixed JPEG, PNG, HEIC and RAW files, all written as JPEG at quality 90:
  enlightengan enhance night/ -o bright/ --format jpg --quality 90

large images are processed in overlapping tiles sized from the memory available (--tile to choose),
with the same result as in one piece; nothing is ever downscaled. --fast is the exception: it runs the
network at reduced resolution on purpose (2.25 times smaller per side; --fast-scale to choose) and
carries the enhancement back to full size.

videos ({" ".join(VIDEO_SUFFIXES)}, named or found in folders) are decoded and encoded as a stream
(H.264; VP9 for .webm) at the input's size and frame rate, with the audio streams copied unchanged;
--smoothing A (0 <= A < 1) averages the coarse brightening over frames against flicker. For each video
the flicker (mean absolute change between frames, 8-bit levels) of the input and the output is printed.

--shard K/N: the inputs are sorted by output path and every N-th one, starting with the K-th, is this
process's share; N processes with K = 1..N share the work without overlap. Existing outputs are skipped
(unless --overwrite), so an interrupted shard is resumed by running it again. --shard auto reads K/N
from the scheduler: a Slurm job array ($SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT), a Kubernetes
Indexed Job ($JOB_COMPLETION_INDEX; set $ENLIGHTENGAN_SHARD_COUNT to its completions) or torchrun
($RANK of $WORLD_SIZE).

what is written: OUT_DIR/<same file name>, in the input's format (JPEG, WebP and HEIC at quality
{DEFAULT_QUALITY}), with the same size, pixel mode and bit depth (16-bit PNG stays 16-bit, 10-bit HEIC stays
10-bit), the ICC profile and EXIF kept and the photo turned upright by its EXIF orientation. Palette
and CMYK images come back as RGB. Folders are read for files ending in (any case; hidden files are
ignored):
  {" ".join(IMAGE_SUFFIXES)}
  {" ".join(HEIF_SUFFIXES)}   HEIC/HEIF: needs pip install 'enlightengan[heif]'
  {" ".join(RAW_SUFFIXES)}   camera RAW: needs pip install 'enlightengan[raw]'
files named on the command line or matched by a glob are always tried. Every output is written to a
temporary file and renamed, so an interrupted run never leaves a partial image.

camera RAW files are developed to 16-bit sRGB with the camera's white balance and no automatic
brightening (brightening is the model's job), enhanced at 16 bits and written as 16-bit TIFF
(name.tif) with the EXIF the file carries.

--format {"|".join(OUTPUT_FORMATS)} writes every image in that format, with that suffix: 16-bit results
become 8-bit in JPEG and WebP, alpha is dropped in JPEG, 16-bit results are 10-bit in HEIC. --quality N
sets the quality of JPEG, WebP and HEIC outputs (1-100). Videos keep their own format.

weights: --weights, else $ENLIGHTENGAN_WEIGHTS, else the default model bundled with the package
(docs/MODEL_CARD.md). Accepted: the released 200_net_G_A.pth, a plain generator state dict, or this
package's .safetensors (what enlightengan train writes).

exit status: 0 all enhanced (or skipped as existing); 1 some inputs failed (each is named with its
reason on stderr, the others are still processed); 2 usage error (bad option, weights that cannot be
loaded, an output folder that cannot be created or written).
"""


#: enlightengan.inference.tiling.DEFAULT_MARGIN, repeated so that --help needs no torch (a test checks).
_TILE_MARGIN = 128

#: Smallest --tile: two overlaps and a 16 px core.
_MIN_TILE = 2 * _TILE_MARGIN + 16


def _tile(text: str) -> int:
    value = positive_int(text)
    if value < _MIN_TILE:
        raise argparse.ArgumentTypeError(
            f"must be at least {_MIN_TILE} pixels (tiles overlap by {_TILE_MARGIN} px), got {text}"
        )
    return value


def _shard(text: str) -> tuple[int, int] | str:
    if text.strip() == "auto":
        return "auto"
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected K/N such as 2/8, got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"K/N needs 1 <= K <= N, got {text}")
    return k, n


def _fast_scale(text: str) -> float:
    value = strength(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (1 = exact), got {text}")
    return value


def _fast_config(args: argparse.Namespace) -> Any:
    """``False``, or the fast mode's settings (``--fast-scale`` implies ``--fast``)."""
    if args.fast_scale is None:
        return bool(args.fast)
    from ..inference.fast import FastConfig

    return FastConfig(scale=args.fast_scale)


def _quality(text: str) -> int:
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, got {text}")
    return value


def _smoothing(text: str) -> float:
    value = strength(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "enhance",
        help="enhance low-light photos (files, folders, globs) into an output folder",
        description="Enhance low-light photos with an EnlightenGAN generator (Jiang et al., IEEE TIP 2021). "
        "Each INPUT is an image file, a folder of images, or a glob pattern.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT_DIR", help="folder for the results (created)"
    )
    add_weights_argument(p)
    add_device_argument(p)
    p.add_argument(
        "--strength",
        type=enhancement_strength,
        default=1.0,
        metavar="S",
        help="scale of the enhancement residual, 0 to 2: 1 = the published model, 0 = unchanged (default: 1)",
    )
    add_exposure_fade_argument(p)
    p.add_argument(
        "--recursive",
        action="store_true",
        help="also read sub-folders of folder INPUTs, mirroring them under OUT_DIR; ** in globs",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument(
        "--format",
        choices=("same", *OUTPUT_FORMATS),
        default="same",
        help="format of every image written, with its suffix (default: same as the input; RAW -> 16-bit "
        "TIFF); 16-bit results become 8-bit for jpg and webp, alpha is dropped for jpg",
    )
    p.add_argument(
        "--quality",
        type=_quality,
        default=DEFAULT_QUALITY,
        metavar="N",
        help=f"quality of JPEG, WebP and HEIC outputs, 1-100 (default: {DEFAULT_QUALITY})",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"refuse images with more pixels than N (decompression bombs; default: {DEFAULT_MAX_PIXELS:,})",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no notes on skipped files; errors still shown",
    )
    p.add_argument(
        "--tile",
        type=_tile,
        default=None,
        metavar="PX",
        help="largest tile side for large images (default: from the memory available); results equal "
        "the untiled ones within one grey level from 384 px on (measured on 1 to 12 MP photos)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="approximate and faster: the network on a fifth of the pixels, guided upsampling to full size",
    )
    p.add_argument(
        "--fast-scale",
        type=_fast_scale,
        default=None,
        metavar="S",
        help="shrink factor per side for the network in fast mode (implies --fast; default 2.25; "
        "larger is faster and coarser)",
    )
    add_backend_argument(p)
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="bulk speed: the next photos are decoded and the last ones encoded while the network runs "
        "(default 1); N >= 2 runs N networks side by side, each with its share of the cores, for machines "
        "with many cores (memory grows with N); 0 processes the photos strictly one after the other",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N|auto",
        help="process only the K-th of N interleaved shares of the sorted inputs (bulk jobs); auto: K and N "
        "from a Slurm job array, a Kubernetes Indexed Job or torchrun",
    )
    add_denoise_argument(
        p,
        "attention-guided denoising after enhancement, where the photo was dark and not where it was "
        "bright: colour taken from the input (no coloured grain), luma cleaned by non-local means of "
        "strength H (default 10 when given without H; 5 light, 14 strong)",
    )
    p.add_argument(
        "--smoothing",
        type=_smoothing,
        default=0.0,
        metavar="A",
        help="videos: temporal smoothing of the brightening, 0 (off, default) to <1 (strong)",
    )


class _UsageError(Exception):
    """Nothing can be done: bad weights, device or output folder (exit status 2)."""


@dataclass(frozen=True)
class _Job:
    source: Path
    target: Path


@dataclass
class _Plan:
    jobs: list[_Job] = field(default_factory=list)
    #: (input as given or found, reason) for inputs that cannot even be planned.
    failures: list[tuple[str, str]] = field(default_factory=list)


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _folder_images(folder: Path, recursive: bool, out_dir: Path) -> list[Path]:
    found = [
        path
        for path in list_files(folder, (*PHOTO_SUFFIXES, *VIDEO_SUFFIXES), recursive=recursive)
        # never re-enhance earlier results written inside the input tree
        if not (recursive and _is_inside(path, out_dir))
    ]
    return sorted(found, key=lambda p: natural_key(str(p)))


def _has_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _output_name(relative: Path, output_format: str) -> Path:
    """The output's path under OUT_DIR: the input's, with the suffix of ``--format`` (RAW: ``.tif``)."""
    suffix = relative.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return relative
    if output_format != "same":
        return relative.with_suffix(OUTPUT_FORMATS[output_format].suffix)
    return relative.with_suffix(".tif") if suffix in RAW_SUFFIXES else relative


def _plan(inputs: Sequence[str], out_dir: Path, recursive: bool, output_format: str = "same") -> _Plan:
    plan = _Plan()
    sources: list[tuple[Path, Path]] = []  # (source, path relative to out_dir)
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            images = _folder_images(path, recursive, out_dir)
            if not images:
                what = "its sub-folders" if recursive else "it (add --recursive for sub-folders)"
                plan.failures.append((raw, f"folder holds no images in {what}"))
            sources.extend((image, image.relative_to(path)) for image in images)
        elif path.exists() or path.is_symlink():
            sources.append((path, Path(path.name)))
        elif _has_magic(raw):
            matches = sorted(
                (Path(m) for m in glob.glob(os.path.expanduser(raw), recursive=recursive)),
                key=lambda p: natural_key(str(p)),
            )
            files = [m for m in matches if m.is_file()]
            if not files:
                plan.failures.append((raw, "no files match this pattern"))
            sources.extend((m, Path(m.name)) for m in files)
        else:
            plan.failures.append((raw, "no such file or folder"))

    claimed: dict[Path, Path] = {}
    seen_sources: set[Path] = set()
    for source, relative in sources:
        resolved = source.resolve()
        if resolved in seen_sources:
            continue  # the same file named twice (a folder and a glob, say)
        seen_sources.add(resolved)
        target = out_dir / _output_name(relative, output_format)
        if target.resolve() == resolved:
            plan.failures.append(
                (str(source), "its output would overwrite the input: choose another -o folder")
            )
            continue
        earlier = claimed.get(target)
        if earlier is not None:
            plan.failures.append((str(source), f"same output name as {earlier}: {target}"))
            continue
        claimed[target] = source
        plan.jobs.append(_Job(source, target))
    return plan


def _prepare_output(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and prove it writable (a temporary file), or raise :class:`_UsageError`.

    Returns:
        The folders this created, deepest first (:func:`_remove_if_empty` takes them away again if the
        run writes nothing into them).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise _UsageError(f"the output path {out_dir} exists and is not a folder")
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from exc
    try:
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".enlightengan-write-test."):
            pass
    except OSError as exc:
        _remove_if_empty(created)
        raise _UsageError(f"cannot write into the output folder {out_dir}: {exc.strerror or exc}") from exc
    return created


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the ``folders`` (deepest first) that hold nothing: a run that writes nothing leaves nothing."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): it and the folders above it stay
            return


def _load_enhancer(args: argparse.Namespace) -> Enhancer:
    from ..devices import resolve_device
    from ..inference import Enhancer
    from ..weights import resolve_weights

    try:
        weights = resolve_weights(args.weights)  # before any work: a missing model is a usage error
        device = resolve_device(args.device)
        return Enhancer(
            weights,
            device=device,
            strength=args.strength,
            tile=args.tile,
            fast=_fast_config(args),
            backend=args.backend,
            denoise=args.denoise,
            exposure_fade=fade_choice(args.exposure_fade),
        )
    except (OSError, ValueError, ImportError) as exc:  # WeightsError and CheckpointError are ValueErrors
        raise _UsageError(str(exc)) from exc


class _Reporter:
    """Messages on stderr that do not break the progress bar."""

    def __init__(self, quiet: bool, bar: Any) -> None:
        self.quiet = quiet
        self.bar = bar

    def say(self, message: str, *, important: bool = False) -> None:
        if self.quiet and not important:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _enhance_video(job: _Job, enhancer: Enhancer, args: argparse.Namespace, report: _Reporter) -> None:
    """Stream one video through the enhancer, then report its flicker."""
    from tqdm import tqdm

    from ..inference.video import enhance_video

    job.target.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(
        unit="frame", disable=args.quiet, file=sys.stderr, leave=False, position=1, desc=job.source.name
    ) as bar:

        def progress(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        result = enhance_video(job.source, job.target, enhancer, smoothing=args.smoothing, progress=progress)
    rate = float(result.frame_rate or 0)
    report.say(
        f"{job.source}: {result.frames} frames {result.width}x{result.height} at {rate:.3g} fps, "
        f"{result.audio_streams} audio stream(s) copied; flicker (mean |frame-to-frame change|, 8-bit "
        f"levels): input {result.flicker_input:.2f}, output {result.flicker_output:.2f}"
    )


def _read_one(job: _Job, args: argparse.Namespace, report: _Reporter) -> LoadedImage:
    """Decode one photo (with the near-black warning); raises ``ValueError``/``OSError`` on failure."""
    from ..image_io import near_black, read_image

    loaded = read_image(job.source, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    warning = near_black(loaded.pixels)
    if warning is not None:
        report.say(f"warning: {job.source}: {warning}", important=True)
    return loaded


def _write_one(job: _Job, loaded: LoadedImage, result: Any, args: argparse.Namespace) -> None:
    """Encode and write one result in the chosen format, with the photo's ICC profile and EXIF."""
    from ..image_io import default_write_format, fit_to_format, write_image

    if args.format == "same":
        file_format = default_write_format(loaded.format) or "PNG"
    else:
        file_format = OUTPUT_FORMATS[args.format].pillow
    # a 10- or 12-bit HEIC is written back at its depth; other 16-bit data as 10-bit HEIC
    heif_depth = loaded.bit_depth if loaded.format == "HEIF" and loaded.bit_depth in (10, 12) else None
    job.target.parent.mkdir(parents=True, exist_ok=True)
    write_image(
        fit_to_format(result, file_format),
        job.target,
        format=file_format,
        icc_profile=loaded.icc_profile,
        exif=loaded.exif,
        quality=args.quality,
        bit_depth=heif_depth,
    )


def _enhance_one(
    job: _Job, enhancer: Enhancer, args: argparse.Namespace, report: _Reporter, tiles: TileBar
) -> None:
    """Read, enhance and write one image; raises ``ValueError``/``OSError``/``RuntimeError`` on failure.

    A photo large enough to need several tiles shows their progress in ``tiles``.
    """
    loaded = _read_one(job, args, report)
    try:
        result = enhancer.enhance(loaded.pixels, progress=tiles)
    finally:
        tiles.close()
    _write_one(job, loaded, result, args)


def _reason(exc: BaseException) -> str:
    from ..image_io import ImageReadError

    if isinstance(exc, ImageReadError):
        return exc.reason
    if isinstance(exc, OSError):
        return f"cannot write the output: {exc}"
    if isinstance(exc, MemoryError):
        return "not enough memory to enhance this image"
    if isinstance(exc, RuntimeError):
        return f"enhancement failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return str(exc)


_FAILURES = (ValueError, OSError, RuntimeError, MemoryError, ImportError)


def _process(
    jobs: Iterable[_Job], total: int, args: argparse.Namespace, enhancer: Enhancer
) -> tuple[int, int, list[tuple[str, str]]]:
    """Enhance every job: photos overlapped (``--workers`` >= 1) or one after another (0), videos in turn."""
    from tqdm import tqdm

    enhanced = skipped = 0
    failures: list[tuple[str, str]] = []
    photos: list[_Job] = []
    tiles = TileBar(disable=args.quiet or args.workers > 1)  # several photos at once: no tile bar
    with tqdm(total=total, unit="img", disable=args.quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        report = _Reporter(args.quiet, None if args.quiet else bar)

        def finished(job: _Job, error: BaseException | None, seconds: float | None = None) -> None:
            nonlocal enhanced
            if error is None:
                enhanced += 1
            else:
                failures.append((str(job.source), _reason(error)))
                report.say(f"failed: {job.source}: {failures[-1][1]}", important=True)
            if seconds is not None:
                bar.set_postfix_str(f"{job.source.name} {seconds:.2f}s", refresh=False)
            bar.update(1)

        for job in jobs:
            if job.target.exists() and not args.overwrite:
                skipped += 1
                report.say(f"skipped (exists, use --overwrite to replace): {job.target}")
                bar.update(1)
            elif _is_video(job.source) or args.workers == 0:
                start = time.perf_counter()
                try:
                    if _is_video(job.source):
                        _enhance_video(job, enhancer, args, report)
                    else:
                        _enhance_one(job, enhancer, args, report, tiles)
                except _FAILURES as exc:
                    finished(job, exc, time.perf_counter() - start)
                else:
                    finished(job, None, time.perf_counter() - start)
            else:
                photos.append(job)
        if photos:
            _overlapped(photos, enhancer, args, report, tiles, finished)
    return enhanced, skipped, failures


def _overlapped(
    photos: list[_Job],
    enhancer: Enhancer,
    args: argparse.Namespace,
    report: _Reporter,
    tiles: TileBar,
    finished: Callable[[_Job, BaseException | None], None],
) -> None:
    """Decode ahead and encode behind the network (:class:`._pipeline.Pipeline`), ``--workers`` networks."""
    import threading

    import torch

    from ._pipeline import Pipeline

    threads = torch.get_num_threads()
    lock = threading.Lock()

    def work(job: _Job, loaded: LoadedImage) -> tuple[LoadedImage, Any]:
        try:
            return loaded, enhancer.enhance(loaded.pixels, progress=None if args.workers > 1 else tiles)
        finally:
            if args.workers == 1:
                tiles.close()

    def write(job: _Job, item: tuple[LoadedImage, Any]) -> None:
        _write_one(job, item[0], item[1], args)

    def done(job: _Job, error: BaseException | None) -> None:
        with lock:  # the progress bar and the failure list are shared with the other threads
            finished(job, error)

    pipeline: Pipeline[_Job, LoadedImage, tuple[LoadedImage, Any]] = Pipeline(
        lambda job: _read_one(job, args, report),
        work,
        write,
        done,
        workers=max(1, args.workers),
        failures=_FAILURES,
    )
    if args.workers > 1:  # each network thread gets its share of the cores, not all of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.workers))
    try:
        pipeline.run(photos)
    finally:
        torch.set_num_threads(threads)


def _resolve_shard(value: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """``--shard``'s share; ``auto`` is read from the scheduler's environment (:mod:`._shard`)."""
    if value != "auto":
        return value if isinstance(value, tuple) else None
    from ._shard import ShardError, shard_from_environment

    try:
        return shard_from_environment(os.environ)
    except ShardError as exc:
        raise _UsageError(str(exc)) from exc


def _shard_jobs(jobs: list[_Job], k: int, n: int) -> list[_Job]:
    """The K-th of N interleaved shares of ``jobs`` sorted by output path (deterministic, disjoint)."""
    ordered = sorted(jobs, key=lambda job: str(job.target))
    return ordered[k - 1 :: n]


def _check_format(output_format: str) -> None:
    """``--format heic`` needs pillow-heif: a usage error before any work, not one failure per image."""
    if output_format != "heic":
        return
    from .._optional import OptionalDependencyError, require

    try:
        require("pillow_heif", "heif")
    except OptionalDependencyError as exc:
        raise _UsageError(f"--format heic: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.output.expanduser()
    created: list[Path] = []
    try:
        shard = _resolve_shard(args.shard)
        _check_format(args.format)
        enhancer = _load_enhancer(args)
        if out_dir.exists() and not out_dir.is_dir():
            raise _UsageError(f"the output path {out_dir} exists and is not a folder")
        plan = _plan(args.inputs, out_dir, args.recursive, args.format)
        if shard is not None:
            plan.jobs = _shard_jobs(plan.jobs, *shard)
        if plan.jobs:  # with nothing to do, no output folder is made at all
            created = _prepare_output(out_dir)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    for source, reason in plan.failures:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    try:
        enhanced, skipped, failures = _process(plan.jobs, len(plan.jobs), args, enhancer)
    finally:
        _remove_if_empty(created)  # every input failed (or Ctrl-C before the first): no empty folder
    failures = plan.failures + failures

    if failures or not args.quiet:
        where = f"outputs in {out_dir}" if out_dir.is_dir() else "nothing written"
        summary = f"{enhanced} enhanced, {skipped} skipped, {len(failures)} failed ({where})"
        print(summary, file=sys.stderr)
    if failures:
        print("failures:", file=sys.stderr)
        for source, reason in failures:
            print(f"  {source}: {reason}", file=sys.stderr)
        return 1
    return 0
