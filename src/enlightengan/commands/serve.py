"""``enlightengan serve``: a local web page and HTTP API that enhance photos."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from ._args import (
    add_backend_argument,
    add_device_argument,
    add_exposure_fade_argument,
    add_weights_argument,
    enhancement_strength,
    fade_choice,
    non_negative_int,
    positive_float,
    positive_int,
)

__all__ = ["register", "run"]

EPILOG = """\
examples:
  # the page at http://127.0.0.1:7860 (open it in a browser), with the released generator:
  enlightengan serve --weights 200_net_G_A.pth

  # from a program (same machine): the enhanced image comes back in the input's format
  curl -F file=@dark.jpg 'http://127.0.0.1:7860/api/enhance?strength=0.8' -o bright.jpg
  curl --data-binary @dark.png -H 'Content-Type: image/png' http://127.0.0.1:7860/api/enhance -o bright.png

  # leave this photo as it is if it is well exposed (the server's --exposure-fade otherwise):
  curl -F file=@photo.jpg 'http://127.0.0.1:7860/api/enhance?exposure_fade=0.25,0.35' -o out.jpg

  # a phone's HEIC or a camera's RAW file comes back as PNG (16-bit for RAW; extras [heif], [raw]):
  curl -F file=@IMG_0042.heic http://127.0.0.1:7860/api/enhance -o bright.png

  # reachable from the local network, on the GPU, for larger photos:
  enlightengan serve --host 0.0.0.0 --device cuda --max-pixels 100000000 --max-upload-mb 100

routes: GET / (the page), POST /api/enhance (multipart field "file" or the raw image as the body; query
strength and exposure_fade), GET /api/info (limits and defaults), GET /healthz, GET /openapi.json (the API
description; the /docs viewer is off because it loads its scripts from a CDN).

limits: uploads over --max-upload-mb or --max-pixels are answered with 413, files that are not images
(or are corrupt) with 400 and the reason, HEIC or RAW files without the extra that reads them with 415,
a strength outside 0 to 2 or a malformed exposure_fade with 400. At most --workers + --queue requests are
taken at once; the next is answered with 503 and a Retry-After header: the seconds the queued work is
estimated to take (its pixels times the generator's measured seconds per pixel). The generator runs one
image at a time; the workers decode and encode in parallel. Uploads and results live in one temporary
folder only while their request runs; the folder is removed when the server stops (Ctrl-C).

access log: one line per request on stdout, as uvicorn prints them, with the response size in bytes
and the duration: INFO:     127.0.0.1:52344 - "POST /api/enhance?strength=0.8 HTTP/1.1" 200 183452 0.412s
(the logger enlightengan.access; no file names are logged). --no-access-log turns it off.

the server has no login: it listens on 127.0.0.1 (this machine only) unless --host says otherwise.

needs the optional packages of the serve extra: pip install 'enlightengan[serve]' (and for HEIC and
camera RAW uploads: pip install 'enlightengan[serve,heif,raw]')

exit status: 130 stopped with Ctrl-C; 2 usage error (weights that cannot be loaded, an address that
cannot be bound, the serve extra missing).
"""


def _port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0: any free port), got {text}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a local web page and HTTP API that enhance photos",
        description="Serve EnlightenGAN (Jiang et al., IEEE TIP 2021) as a web page and an HTTP API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=_port, default=7860, help="port (default: 7860; 0: any free port)")
    add_weights_argument(p)
    add_device_argument(p)
    p.add_argument(
        "--strength",
        type=enhancement_strength,
        default=1.0,
        metavar="S",
        help="default strength, 0 to 2: 1 = the published model, 0 = unchanged (default: 1)",
    )
    add_exposure_fade_argument(p)
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=50.0,
        metavar="MB",
        help="largest upload in MB of 2**20 bytes (default: 50)",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=50_000_000,
        metavar="N",
        help="largest image in pixels, width x height (default: 50,000,000)",
    )
    p.add_argument(
        "--queue",
        type=non_negative_int,
        default=8,
        metavar="N",
        help="requests that may wait for a worker; more are answered with 503 (default: 8)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help="threads that decode, enhance (one at a time) and encode (default: 2)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="approximate and faster: the network on a fifth of the pixels, guided upsampling to full size",
    )
    add_backend_argument(p)
    p.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no line per request on stdout (by default: client, method, path, status, bytes, seconds)",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        from ..server import ServerConfig, bind, create_app, serve_forever
    except ImportError as exc:
        print(
            f"error: enlightengan serve needs FastAPI, uvicorn and python-multipart ({exc}): "
            "pip install 'enlightengan[serve]'",
            file=sys.stderr,
        )
        return 2
    from ..inference import Enhancer

    try:
        config = ServerConfig(
            max_upload_bytes=ServerConfig.upload_bytes(args.max_upload_mb),
            max_pixels=args.max_pixels,
            workers=args.workers,
            queue=args.queue,
        )
        enhancer = Enhancer(
            args.weights,
            device=args.device,
            strength=args.strength,
            fast=args.fast,
            backend=args.backend,
            exposure_fade=fade_choice(args.exposure_fade),
        )
    except (OSError, ValueError, ImportError) as exc:  # WeightsError and CheckpointError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"EnlightenGAN on {enhancer.device}: open http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    if not _is_loopback(args.host):
        print(
            f"warning: listening on {args.host}, reachable from other machines; the server has no login",
            file=sys.stderr,
        )
    try:
        serve_forever(create_app(enhancer, config), sock, access_log=args.access_log)
    finally:
        sock.close()
    return 0
