"""Running the app with uvicorn: on a socket bound in advance, in the foreground or in a thread."""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from .access import ACCESS_LOGGER

__all__ = ["bind", "serve_forever", "serve_in_background"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: any free port).

    Binding here, before uvicorn starts, turns "address already in use" into an ``OSError`` the
    caller can report, and lets tests ask for a free port.

    Raises:
        OSError: the address cannot be bound (in use, not an address of this machine, no permission).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging configuration, with the app's access log (:mod:`.access`) printed as uvicorn
    prints its own: ``INFO:     ...`` lines on stdout, or silenced."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["enlightengan.access"] = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"][ACCESS_LOGGER] = {
        "handlers": ["enlightengan.access"] if access_log else [],
        "level": "INFO" if access_log else "WARNING",
        "propagate": False,
    }
    return config


def _server(app: Any, log_level: str, access_log: bool | None) -> Any:
    import uvicorn

    # uvicorn's own access lines are off: the app logs each request with its size and duration
    # (enlightengan.access). access_log=None leaves that logger as the process has configured it.
    options: dict[str, Any] = {} if access_log is None else {"log_config": _log_config(access_log)}
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on", **options)
    return uvicorn.Server(config)


def serve_forever(app: Any, sock: socket.socket, log_level: str = "info", *, access_log: bool = True) -> None:
    """Serve ``app`` on ``sock`` until interrupted (Ctrl-C), then shut down cleanly.

    Args:
        app: the ASGI app (:func:`~enlightengan.server.create_app`).
        sock: a listening socket (:func:`bind`).
        log_level: uvicorn's log level.
        access_log: print the access log (one line per request, :mod:`enlightengan.server.access`) on
            stdout, as uvicorn prints its own; ``False`` silences it.
    """
    _server(app, log_level, access_log).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_background(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` from a thread of this process; yields its base URL, e.g. ``http://127.0.0.1:41235``.

    For notebooks and tests. The server is stopped, and its lifespan shut down (temporary folder
    removed), when the block ends. The access log (logger ``enlightengan.access``) is left to the
    process's own logging configuration.

    Raises:
        OSError: the address cannot be bound.
        RuntimeError: the server did not start within ``startup_timeout`` seconds.
    """
    sock = bind(host, port)
    server = _server(app, "warning", None)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="enlightengan-serve", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.02)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
