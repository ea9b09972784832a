"""``enlightengan export``: write the generator as an ONNX graph that runs anywhere ONNX runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

EPILOG = """\
examples:
  # the authors' released generator, as ONNX:
  enlightengan export --weights 200_net_G_A.pth --onnx enlightengan.onnx

  # check it against PyTorch on a random 157x203 image as well (needs onnxruntime):
  enlightengan export --weights run/generator.safetensors --onnx g.onnx --verify

the graph: input "input", RGB in [0, 1], N x 3 x H x W float32, any N, H and W (each side at least 9
pixels); output "output", the enhanced RGB in [0, 1] (clipped), same shape. The attention map, the
reflection padding to multiples of 16 and the crop back are inside the graph, so a caller only scales
8-bit pixels to [0, 1] and back. The file is checked with onnx.checker before it is written (atomically:
an interrupted export leaves no partial file).

needs the optional packages onnx (and onnxruntime for --verify): pip install 'enlightengan[onnx]'

exit status: 0 written; 2 usage error (weights that cannot be loaded, a missing output folder, onnx not
installed); 1 --verify found a mismatch.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the generator to ONNX (dynamic size, attention and padding inside the graph)",
        description="Export an EnlightenGAN generator (Jiang et al., IEEE TIP 2021) to ONNX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="generator weights (released 200_net_G_A.pth, a state dict, or .safetensors); "
        "default: $ENLIGHTENGAN_WEIGHTS, else the bundled model",
    )
    p.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx", help="where to write the graph")
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

    from ..export import require

    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rgb01 = torch.rand(1, 3, 157, 203, generator=torch.Generator().manual_seed(0))
    (result,) = session.run(None, {"input": rgb01.numpy()})
    with torch.inference_mode():
        expected = model(rgb01 * 2 - 1).output.clamp(-1, 1)
    return float((torch.from_numpy(result) * 2 - 1 - expected).abs().max())


def run(args: argparse.Namespace) -> int:
    from ..export import DEFAULT_OPSET, OptionalDependencyError, export_onnx
    from ..models.checkpoint import load_generator
    from ..weights import resolve_weights

    target: Path = args.onnx.expanduser()
    try:
        model = load_generator(resolve_weights(args.weights))
        if not target.parent.is_dir():
            raise ValueError(f"the folder {target.parent} does not exist: create it first")
        export_onnx(model, target, opset=args.opset or DEFAULT_OPSET)
    except (OptionalDependencyError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target} ({target.stat().st_size:,} bytes); onnx.checker: ok", file=sys.stderr)
    if args.verify:
        try:
            difference = _verify(model, target)
        except OptionalDependencyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        verdict = "ok" if difference <= 1e-4 else "MISMATCH"
        print(
            f"verify: largest difference from PyTorch {difference:.2e} on [-1, 1]: {verdict}", file=sys.stderr
        )
        return 0 if difference <= 1e-4 else 1
    return 0
