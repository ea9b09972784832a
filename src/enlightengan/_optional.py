"""Optional dependencies (``onnx``, ``onnxruntime``, ``av``): imported when a feature needs them.

:func:`require` turns a missing package into an :class:`OptionalDependencyError` that names the
``pip install 'enlightengan[extra]'`` command which brings it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["OptionalDependencyError", "require"]


class OptionalDependencyError(ImportError):
    """An optional dependency (onnx, onnxruntime, av) is not installed."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`OptionalDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OptionalDependencyError(
            f"this feature needs the optional package {module!r}: pip install 'enlightengan[{extra}]'"
        ) from exc
