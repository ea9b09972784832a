"""Optional dependencies (``onnx``, ``onnxruntime``, ``av``, ``pillow_heif``, ``rawpy``): imported when a
feature needs them.

:func:`require` turns a missing package into an :class:`OptionalDependencyError` that names the
``pip install 'enlightengan[extra]'`` command which brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

__all__ = ["OptionalDependencyError", "available", "require"]


class OptionalDependencyError(ImportError):
    """An optional dependency (onnx, onnxruntime, av, pillow_heif, rawpy) is not installed."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`OptionalDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OptionalDependencyError(
            f"this feature needs the optional package {module!r}: pip install 'enlightengan[{extra}]'"
        ) from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported, found without importing it (a module set to ``None`` in
    ``sys.modules``, as tests do to hide one, is not available)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
