"""The access log: one line per request, with its status, the size of the answer and how long it took.

The lines go to the standard :mod:`logging` logger ``enlightengan.access`` at level INFO, in the form
uvicorn users know from ``uvicorn.access``, with the response size in bytes and the duration added::

    127.0.0.1:52344 - "POST /api/enhance?strength=0.8 HTTP/1.1" 200 183452 0.412s

Each record also carries the fields as attributes (``client_addr``, ``method``, ``path``,
``http_version``, ``status_code``, ``response_bytes``, ``duration``) for handlers that format
them otherwise. ``enlightengan serve`` prints them to stdout as uvicorn prints its own (whose access
lines, without size and duration, are off); ``--no-access-log`` turns them off. Nothing of the images is
logged: no file name, only the client's address, the path and the query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ACCESS_LOGGER", "AccessLogMiddleware"]

#: Name of the access log's logger.
ACCESS_LOGGER = "enlightengan.access"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def _client(scope: _Scope) -> str:
    client = scope.get("client")
    if not client:
        return "-"
    host, port = client[0], client[1]
    return f"{host}:{port}" if port is not None else str(host)


class AccessLogMiddleware:
    """ASGI middleware that logs each HTTP request once its answer has been sent (or has failed).

    The answer streams through unchanged; the size counted is that of the body bytes sent.

    Args:
        app: the ASGI application to wrap.
        logger: where the lines go (default: the ``enlightengan.access`` logger).
    """

    def __init__(self, app: _App, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        size = 0

        async def counting_send(message: _Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            status = status or 500  # the error handler outside this middleware answers 500
            raise
        finally:
            self._log(scope, status, size, time.perf_counter() - start)

    def _log(self, scope: _Scope, status: int, size: int, seconds: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "") + (f"?{query}" if query else "")
        fields = {
            "client_addr": _client(scope),
            "method": scope.get("method", "-"),
            "path": path,
            "http_version": scope.get("http_version", "1.1"),
            "status_code": status,
            "response_bytes": size,
            "duration": seconds,
        }
        self.logger.info(
            '%s - "%s %s HTTP/%s" %d %d %.3fs',
            fields["client_addr"],
            fields["method"],
            path,
            fields["http_version"],
            status,
            size,
            seconds,
            extra=fields,
        )
