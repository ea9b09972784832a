"""``enlightengan export``: write the generator as an ONNX graph, or in the project's safetensors format."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..models.generator import BATCHNORM_MODES
from ._args import add_weights_argument, exposure_fade, fade_choice, positive_int

__all__ = ["register", "run"]

EPILOG = """\
examples:
  # the authors' released generator, as ONNX:
  enlightengan export --weights 200_net_G_A.pth --onnx enlightengan.onnx

  # check it against PyTorch on a random 157x203 image as well (needs onnxruntime):
  enlightengan export --weights run/generator.safetensors --onnx g.onnx --verify

  # the project's own format (weights + architecture, no pickle), e.g. from a training checkpoint, in
  # float16 (half the size; computed in float32 after loading):
  enlightengan export --weights run/checkpoints/best.pt --safetensors g.safetensors --half

  # a generator that normalises each photo with its own BatchNorm statistics (the 2026-11 default):
  enlightengan export --weights run/generator.safetensors --safetensors g.safetensors --batchnorm per-image

  # the same with BatchNorm statistics re-estimated on whole low-light photos (precise BN):
  enlightengan export --weights run/checkpoints/best.pt --safetensors g.safetensors --recalibrate-bn data/low

the graph: input "input", RGB in [0, 1], N x 3 x H x W float32, any N, H and W (each side at least 9
pixels); output "output", the enhanced RGB in [0, 1] (clipped), same shape. The attention map, the
reflection padding to multiples of 16 and the crop back are inside the graph, so a caller only scales
8-bit pixels to [0, 1] and back. For a per-image BatchNorm generator (such as the 2026-11 default
model) the graph also measures each image's BatchNorm statistics first, on its copy of at most 1
megapixel, as the torch path does; each image of a batch gets its own. An exposure fade recorded in
the weights (the bundled default model's) is inside the graph too: well-exposed photos come out
unchanged, as with the Enhancer. The file is checked with onnx.checker before it is written
(atomically: an interrupted export leaves no partial file).

needs the optional packages onnx (and onnxruntime for --verify): pip install 'enlightengan[onnx]'

exit status: 0 written; 2 usage error (weights that cannot be loaded, a missing output folder, onnx not
installed); 1 --verify found a mismatch.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the generator to ONNX (dynamic size, attention and padding inside the graph)",
        description="Export an EnlightenGAN generator (Jiang et al., IEEE TIP 2021) to ONNX or to the "
        "project's safetensors format.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_weights_argument(p)
    p.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="where to write the ONNX graph")
    p.add_argument(
        "--safetensors",
        type=Path,
        metavar="OUT.safetensors",
        help="where to write the weights in the project's format (loads with --weights anywhere)",
    )
    p.add_argument("--half", action="store_true", help="--safetensors: store float16 tensors (half the size)")
    p.add_argument(
        "--recalibrate-bn",
        type=Path,
        metavar="DIR",
        help="recompute the BatchNorm running statistics on the whole images in DIR (e.g. the low-light "
        "training photos) before writing: precise BN, fixes casts of small-batch training",
    )
    p.add_argument(
        "--batchnorm",
        choices=BATCHNORM_MODES,
        help="record which BatchNorm statistics the model uses at inference: its running averages (how "
        "the released weights and the bundled default model are run), or each image's own (per-image); "
        "default: as in the weights file",
    )
    p.add_argument(
        "--exposure-fade",
        type=exposure_fade,
        metavar="LOW,HIGH",
        help="record that the model's enhancement fades out between these mean brightnesses of a photo "
        "(0-1, e.g. 0.25,0.35: full below LOW, none above HIGH, for photos already well exposed); "
        "'none' removes it; default: as in the weights file. The Enhancer applies it, and --onnx "
        "puts it inside the graph",
    )
    p.add_argument(
        "--recalibrate-max",
        type=positive_int,
        default=200,
        metavar="N",
        help="use at most N images of --recalibrate-bn DIR (default 200, sorted by path)",
    )
    p.add_argument(
        "--opset", type=int, default=None, metavar="N", help="ONNX opset (default: 18, the lowest that works)"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the written graph with onnxruntime and compare with PyTorch (tolerance 1e-4 on [-1, 1])",
    )


def _verify(model: Any, path: Path) -> float:
    """Largest difference on the ``[-1, 1]`` scale between ONNX Runtime and PyTorch on a random image."""
    import torch

    from .._optional import require
    from ..models.batchnorm import per_image_model

    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rgb01 = torch.rand(1, 3, 157, 203, generator=torch.Generator().manual_seed(0))
    (result,) = session.run(None, {"input": rgb01.numpy()})
    image = rgb01 * 2 - 1
    with torch.inference_mode():
        reference = per_image_model(model, image) if model.config.per_image else model
        expected = reference(image).output.clamp(-1, 1)
    return float((torch.from_numpy(result) * 2 - 1 - expected).abs().max())


def _recalibrate(model: Any, folder: Path, limit: int) -> int:
    """Precise BN on up to ``limit`` readable images of ``folder``; unreadable ones are skipped."""
    from ..data.folders import DataError, list_images
    from ..data.unpaired import load_rgb
    from ..image_io import to_tensor
    from ..models.batchnorm import recalibrate_batchnorm

    try:
        files = list_images(folder)[:limit]
    except DataError as exc:
        raise ValueError(f"--recalibrate-bn: {exc}") from exc

    def images() -> Any:
        for path in files:
            try:
                rgb = load_rgb(path)
            except (OSError, ValueError) as exc:
                print(f"warning: --recalibrate-bn: skipped {path} ({exc})", file=sys.stderr)
                continue
            yield to_tensor(rgb)

    return recalibrate_batchnorm(model, images())


def run(args: argparse.Namespace) -> int:
    import torch

    from .._optional import OptionalDependencyError
    from ..inference.onnx_export import DEFAULT_OPSET, export_onnx
    from ..models.checkpoint import load_generator, save_generator
    from ..weights import resolve_weights, sha256_file

    if args.onnx is None and args.safetensors is None:
        print("error: give --onnx OUT.onnx and/or --safetensors OUT.safetensors", file=sys.stderr)
        return 2
    if args.half and args.safetensors is None:
        print("error: --half applies to --safetensors", file=sys.stderr)
        return 2
    if args.verify and args.onnx is None:
        print("error: --verify checks the ONNX graph: give --onnx too", file=sys.stderr)
        return 2
    targets = [t.expanduser() for t in (args.onnx, args.safetensors) if t is not None]
    try:
        for folder in {t.parent for t in targets}:
            if not folder.is_dir():
                raise ValueError(f"the folder {folder} does not exist: create it first")
        source = resolve_weights(args.weights)
        model = load_generator(source)
        metadata = {"source": source.name}
        if args.batchnorm is not None:
            model.config = dataclasses.replace(model.config, batchnorm=args.batchnorm)
        fade = fade_choice(args.exposure_fade)
        if fade != "weights":
            model.config = dataclasses.replace(model.config, exposure_fade=fade)
        if args.recalibrate_bn is not None:
            used = _recalibrate(model, args.recalibrate_bn, args.recalibrate_max)
            metadata["batchnorm"] = f"recalibrated on {used} images of {args.recalibrate_bn.name}"
            print(f"BatchNorm statistics recalibrated on {used} images", file=sys.stderr)
        if args.safetensors is not None:
            target = args.safetensors.expanduser()
            dtype = torch.float16 if args.half else torch.float32
            save_generator(model, target, metadata=metadata, dtype=dtype)
            print(
                f"wrote {target} ({target.stat().st_size:,} bytes, {str(dtype).removeprefix('torch.')}); "
                f"sha256 {sha256_file(target)}",
                file=sys.stderr,
            )
        if args.onnx is not None:
            target = args.onnx.expanduser()
            export_onnx(model, target, opset=args.opset or DEFAULT_OPSET)
            print(f"wrote {target} ({target.stat().st_size:,} bytes); onnx.checker: ok", file=sys.stderr)
    except (OptionalDependencyError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.verify:
        try:
            difference = _verify(model, args.onnx.expanduser())
        except OptionalDependencyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        verdict = "ok" if difference <= 1e-4 else "MISMATCH"
        print(
            f"verify: largest difference from PyTorch {difference:.2e} on [-1, 1]: {verdict}", file=sys.stderr
        )
        return 0 if difference <= 1e-4 else 1
    return 0
