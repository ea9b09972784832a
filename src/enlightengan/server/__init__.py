"""A local web app and HTTP service for EnlightenGAN (Jiang et al., IEEE TIP 2021): ``enlightengan serve``.

Needs the optional packages of the ``serve`` extra (FastAPI, uvicorn, python-multipart):
``pip install 'enlightengan[serve]'``.

Example:
    >>> from enlightengan.inference import Enhancer
    >>> from enlightengan.server import ServerConfig, create_app, serve_in_background
    >>> app = create_app(Enhancer("200_net_G_A.pth"), ServerConfig(max_pixels=24_000_000))  # doctest: +SKIP
    >>> with serve_in_background(app) as url:  # doctest: +SKIP
    ...     print(url)  # http://127.0.0.1:PORT; open it in a browser, or POST to URL/api/enhance
"""

from __future__ import annotations

from .app import create_app
from .background import bind, serve_forever, serve_in_background
from .config import MEBIBYTE, ServerConfig
from .jobs import JobQueue, QueueFullError

__all__ = [
    "MEBIBYTE",
    "JobQueue",
    "QueueFullError",
    "ServerConfig",
    "bind",
    "create_app",
    "serve_forever",
    "serve_in_background",
]
