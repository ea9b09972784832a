"""The FastAPI application: a small page for people and ``POST /api/enhance`` for programs.

Routes:

==========================  ===================================================================
``GET /``                   the page: drop photos, compare before/after, set the strength, download
``POST /api/enhance``       one image in (multipart field ``file``, or the raw body), the enhanced
                            image out in the same format (HEIC and camera RAW: PNG, 16-bit for
                            10-bit HEIC and RAW); query ``strength`` (0 to 2, default: the
                            server's) and ``exposure_fade`` (``LOW,HIGH`` mean brightnesses
                            above which a photo is left as it is, or ``none``; default: the
                            server's); errors are JSON ``{"detail": "..."}``: 400 not an image or a
                            bad parameter, 413 too many bytes or pixels, 415 HEIC or RAW without
                            the server's extra to read it, 503 busy (``Retry-After``: the seconds
                            the queued work is estimated to take)
``GET /api/info``           the server's limits and defaults (the page reads them)
``GET /healthz``            ``{"status": "ok", ...}`` while the server runs
``GET /openapi.json``       the OpenAPI description (the ``/docs`` viewer is off: it loads its
                            scripts from a CDN and is blank offline)
==========================  ===================================================================

The enhancement is EnlightenGAN's (Jiang et al., IEEE TIP 2021): ``strength`` scales the generator's
attention-weighted residual (see :class:`enlightengan.inference.Enhancer`). Every request is logged to
``enlightengan.access`` (:mod:`enlightengan.server.access`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from .._optional import available
from .._version import __version__
from ..formats import MAX_STRENGTH, RAW_SUFFIXES, parse_exposure_fade
from .access import AccessLogMiddleware
from .config import ServerConfig
from .jobs import TYPICAL_PIXELS, JobQueue, QueueFullError
from .pipeline import EnhancedFile, Pixels, enhance_file
from .rejection import Rejected
from .uploads import FIELD, Upload, receive_upload

if TYPE_CHECKING:
    from ..inference import Enhancer
    from ..inference.enhancer import CallFade

__all__ = ["create_app"]

#: Files of the page, served from this package's ``static`` folder, with their media types.
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}

#: The page loads nothing from elsewhere; results are shown from blob: URLs.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

# One lock per generator: inference is serialised per model even if several apps share an enhancer.
_MODEL_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


#: Side of the square image the server enhances as it starts: a first measure of the generator's
#: seconds per pixel for ``Retry-After`` before any request has been timed (and a warm-up).
CALIBRATION_SIDE = 256

log = logging.getLogger(__name__)


def _model_lock(enhancer: Enhancer) -> threading.Lock:
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(enhancer, threading.Lock())


def _pixel_count(pixels: Pixels) -> int:
    """``width * height`` of a PIL image or an ``H x W [x C]`` array."""
    if hasattr(pixels, "width") and hasattr(pixels, "height"):
        return int(pixels.width) * int(pixels.height)
    return int(pixels.shape[0]) * int(pixels.shape[1])


def _declared_pixels(path: Path) -> int | None:
    """The pixels an uploaded file's header declares, or ``None`` (not an image: the job says why)."""
    from ..image_io import declared_size

    try:
        width, height = declared_size(path)
    except (OSError, ValueError, SyntaxError):
        return None
    return width * height


def _calibrate(enhancer: Enhancer, lock: threading.Lock, queue: JobQueue) -> None:
    """Time one small enhancement (:data:`CALIBRATION_SIDE`) as the queue's first guess of the seconds
    per pixel; a failure here only leaves the estimate without a guess."""
    import torch

    side = CALIBRATION_SIDE
    ramp = torch.linspace(-0.9, -0.3, side)
    grid = (ramp[:, None] + ramp[None, :]) / 2  # a dark picture with gradients, in [-0.9, -0.3]
    image = torch.stack([grid, grid.T, grid.flip(0)])[None]
    try:
        with lock:
            start = time.perf_counter()
            enhancer.enhance_tensor(image)
            seconds = time.perf_counter() - start
    except Exception as exc:  # the first request will say what is wrong; the estimate just waits
        log.warning("could not time a first enhancement for Retry-After: %s", exc)
        return
    queue.record_work(side * side, seconds, first_guess=True)


@dataclass
class _Runtime:
    """What exists while the server runs: the job queue and the one temporary folder."""

    queue: JobQueue
    temp_dir: Path


def _static_bytes(name: str) -> bytes:
    return resources.files(__package__ or "enlightengan.server").joinpath("static", name).read_bytes()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _optional_readers() -> dict[str, bool]:
    """Which optional formats this server reads: HEIC/HEIF (extra ``heif``) and camera RAW (extra ``raw``)."""
    return {"heif": available("pillow_heif"), "raw": available("rawpy")}


def _named_source(upload: Upload) -> Path:
    """The upload's file, renamed ``upload.nef`` etc. when the client named a camera RAW file: NEF and ARW
    have no signature of their own and are recognised by their suffix."""
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in RAW_SUFFIXES:
        return upload.path
    return upload.path.rename(upload.path.with_name(f"upload{suffix}"))


def _disposition(filename: str, suffix: str) -> str:
    stem = Path(filename).stem if filename else "image"
    name = f"{stem or 'image'}-enhanced{suffix}"
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


_BINARY = {"type": "string", "format": "binary"}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "what went wrong and what to do"}},
}
_ENHANCE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"the image: a multipart/form-data field '{FIELD}', or the raw file as the body",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": [FIELD], "properties": {FIELD: _BINARY}}
            },
            "image/*": {"schema": _BINARY},
            "application/octet-stream": {"schema": _BINARY},
        },
    }
}
_ENHANCE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the enhanced image, in the input's format (PNG for formats that cannot be "
        "written, and for HEIC/HEIF and camera RAW: 16-bit for 10-bit HEIC and RAW), same size, pixel "
        "mode and bit depth, ICC profile and EXIF kept",
        "content": {"image/*": {"schema": _BINARY}},
    },
    400: {
        "description": "not an image, corrupt or truncated, an empty upload, a form without "
        f"'{FIELD}', or a bad parameter",
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    },
    413: {
        "description": "more bytes or pixels than the server accepts",
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    },
    415: {
        "description": "a HEIC/HEIF or camera RAW file, and the server lacks the optional package that "
        "reads it (GET /api/info: extras)",
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    },
    503: {
        "description": "the queue is full; retry after the number of seconds in Retry-After (the "
        "time the queued work is estimated to take: its pixels times the measured seconds per pixel)",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    },
    500: {
        "description": "the enhancement itself failed (out of memory, for instance)",
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    },
}


def create_app(enhancer: Enhancer, config: ServerConfig | None = None) -> FastAPI:
    """Build the web app around a ready :class:`~enlightengan.inference.Enhancer`.

    The job queue and the temporary folder are created when the app starts (its lifespan) and
    removed when it stops; run it with uvicorn, or test it with ``with TestClient(app) as client``.

    Args:
        enhancer: the generator to serve; its ``strength`` is the default of ``POST /api/enhance``.
        config: limits and pool sizes (:class:`ServerConfig` defaults when ``None``).

    Example:
        >>> import uvicorn  # doctest: +SKIP
        >>> app = create_app(Enhancer("200_net_G_A.pth"))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=7860)  # doctest: +SKIP
    """
    settings = config or ServerConfig()
    lock = _model_lock(enhancer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temp_dir = Path(tempfile.mkdtemp(prefix="enlightengan-serve-", dir=settings.temp_root))
        queue = JobQueue(
            settings.workers, settings.queue, typical_pixels=min(settings.max_pixels, TYPICAL_PIXELS)
        )
        runtime = _Runtime(queue, temp_dir)
        app.state.runtime = runtime
        await asyncio.to_thread(_calibrate, enhancer, lock, queue)
        try:
            yield
        finally:
            await asyncio.to_thread(runtime.queue.shutdown)
            shutil.rmtree(temp_dir, ignore_errors=True)

    app = FastAPI(
        title="EnlightenGAN",
        version=__version__,
        summary="Low-light photo enhancement (Jiang et al., EnlightenGAN, IEEE TIP 2021)",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(AccessLogMiddleware)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'request'}: {error['msg']}"
            for error in exc.errors()
        )
        return _error(400, f"bad parameter: {problems}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static_bytes("index.html"), headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in _STATIC:
            return _error(404, f"no such file: {name}")
        return Response(_static_bytes(name), media_type=_STATIC[name], headers=_PAGE_HEADERS)

    @app.get("/healthz", summary="Liveness and load")
    async def healthz(request: Request) -> dict[str, Any]:
        """``status`` "ok"; ``busy``: requests running or waiting now, out of ``capacity``."""
        runtime: _Runtime = request.app.state.runtime
        return {"status": "ok", "busy": runtime.queue.admitted, "capacity": runtime.queue.capacity}

    @app.get("/api/info", summary="Limits and defaults")
    async def info() -> dict[str, Any]:
        """The default strength and its range, the default exposure fade (``[low, high]`` or ``null``),
        the device, the upload limits (bytes, pixels), and
        whether this server reads HEIC/HEIF and camera RAW files (``extras``)."""
        return {
            "name": "enlightengan",
            "version": __version__,
            "device": str(enhancer.device),
            "strength": enhancer.strength,
            "max_strength": MAX_STRENGTH,
            "exposure_fade": enhancer.exposure_fade,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_pixels": settings.max_pixels,
            "workers": settings.workers,
            "queue": settings.queue,
            "extras": _optional_readers(),
        }

    @app.post(
        "/api/enhance",
        summary="Enhance one low-light image",
        response_class=Response,
        responses=_ENHANCE_RESPONSES,
        openapi_extra=_ENHANCE_OPENAPI,
    )
    async def enhance(
        request: Request,
        strength: float | None = Query(
            None,
            ge=0,
            le=MAX_STRENGTH,
            allow_inf_nan=False,
            description=f"scale of the enhancement, 0 to {MAX_STRENGTH:g}: 1 = the published model, "
            "0 = unchanged; default: the server's --strength",
        ),
        exposure_fade: str | None = Query(
            None,
            max_length=40,
            description="LOW,HIGH mean brightnesses (0 to 1) between which the enhancement fades out, "
            "so that photos brighter than HIGH are left as they are (0.25,0.35 also spares low-key "
            "well-exposed photos), or none: every photo enhanced fully; default: the server's "
            "--exposure-fade (GET /api/info)",
        ),
    ) -> Response:
        """Send an image (multipart field ``file``, or the raw body); get it back enhanced, same format."""
        runtime: _Runtime = request.app.state.runtime
        try:
            fade: CallFade = "enhancer" if exposure_fade is None else parse_exposure_fade(exposure_fade)
        except ValueError as exc:
            return _error(400, f"exposure_fade: {exc}")
        try:
            ticket = runtime.queue.admit()
        except QueueFullError as exc:
            return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

        def run_model(pixels: Pixels) -> Pixels:
            with lock:  # timed inside the lock: the generator's own time, for Retry-After
                start = time.perf_counter()
                result = enhancer.enhance(pixels, strength, exposure_fade=fade)
                runtime.queue.record_work(_pixel_count(pixels), time.perf_counter() - start)
            return result

        work = Path(tempfile.mkdtemp(dir=runtime.temp_dir))
        submitted = False
        try:
            upload = await receive_upload(request, work / "upload", settings.max_upload_bytes)
            source = _named_source(upload)
            declared = await asyncio.to_thread(_declared_pixels, source)
            if declared is not None:
                ticket.set_pixels(declared)  # its share of the queue's work, for Retry-After
            job = functools.partial(enhance_file, source, work, run_model, settings.max_pixels)
            submitted = True  # from here on the queue removes `work` and releases the ticket
            result: EnhancedFile = await runtime.queue.run(
                ticket, job, functools.partial(shutil.rmtree, work, ignore_errors=True)
            )
        except Rejected as exc:  # UploadError, ImageRejected
            return _error(exc.status, exc.message)
        except ClientDisconnect:
            return _error(400, "the client went away before the upload was complete")
        except ValueError as exc:  # an image the enhancer cannot take (mode, shape)
            return _error(400, f"cannot enhance this image: {exc}")
        except (RuntimeError, MemoryError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return _error(500, f"the enhancement failed: {reason}")
        finally:
            if not submitted:
                shutil.rmtree(work, ignore_errors=True)
                ticket.release()
        headers = {
            "Content-Disposition": _disposition(upload.filename, result.suffix),
            "Cache-Control": "no-store",
            "X-Image-Format": result.format,
        }
        return Response(result.data, media_type=result.media_type, headers=headers)

    return app
