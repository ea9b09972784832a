"""Loading and saving generator weights.

Three kinds of files are accepted by :func:`load_generator`:

* the released ``200_net_G_A.pth`` (torch 0.3.1 legacy serialisation, saved from ``DataParallel``:
  keys prefixed ``module.``, no ``num_batches_tracked``);
* any plain generator state dict saved with ``torch.save`` (optionally nested under ``state_dict``,
  ``generator`` or ``G``);
* the project's own format: a ``.safetensors`` file whose metadata holds the architecture, so the file
  alone rebuilds its model (written by :func:`save_generator`).

Torch files are always read with ``weights_only=True`` (a checkpoint can never run code) and loaded
with strict key and shape checks. Every failure is a :class:`CheckpointError` whose message says what
the file is and what to do.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._atomic import atomic_path
from .generator import EnlightenGenerator, GeneratorConfig

__all__ = [
    "FORMAT_NAME",
    "CheckpointError",
    "convert_legacy_state_dict",
    "load_generator",
    "read_generator_file",
    "save_generator",
]

#: ``format`` value in the safetensors metadata of the project's own generator files.
FORMAT_NAME = "enlightengan.generator"
FORMAT_VERSION = "1"

_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
_NESTING_KEYS = ("state_dict", "generator", "G", "netG", "model")


class CheckpointError(ValueError):
    """A weights file that cannot be used as an EnlightenGAN generator."""


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove the ``module.`` prefix that ``DataParallel`` / ``DistributedDataParallel`` add."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def _looks_like_discriminator(keys: set[str]) -> bool:
    return (
        any(k.startswith("model.") and k.endswith(".weight") for k in keys) and "conv1_1.weight" not in keys
    )


def convert_legacy_state_dict(
    state: Mapping[str, Any], expected_width: int | None = None
) -> tuple[dict[str, Tensor], GeneratorConfig]:
    """Turn a released / DataParallel / plain generator state dict into one for :class:`EnlightenGenerator`.

    Strips ``module.`` prefixes, drops ``num_batches_tracked`` entries (absent from torch 0.3 files and
    not needed for inference), infers the base width from ``conv1_1.weight`` and checks every key and
    shape against a freshly built generator of that width.

    Args:
        state: a mapping from parameter names to tensors.
        expected_width: if given, a checkpoint of another base width is an error.

    Returns:
        The cleaned state dict and the :class:`GeneratorConfig` it belongs to.

    Raises:
        CheckpointError: not a generator state dict, wrong width, missing/unexpected keys or shapes.
    """
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(
            "the file holds no state dict (expected a mapping of parameter names to tensors)"
        )
    non_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if non_tensors:
        raise CheckpointError(f"not a state dict: entries {non_tensors[:5]} are not tensors")
    cleaned = {k: v for k, v in _strip_prefix(state).items() if not k.endswith("num_batches_tracked")}
    keys = set(cleaned)
    if _looks_like_discriminator(keys):
        raise CheckpointError(
            "this is a discriminator checkpoint (keys model.0.weight, model.2.weight, ...; the released "
            "D_A / D_P files), not a generator: use the generator file, e.g. 200_net_G_A.pth"
        )
    first = cleaned.get("conv1_1.weight")
    if first is None or first.ndim != 4:
        raise CheckpointError(
            f"not an EnlightenGAN generator: there is no conv1_1.weight (first keys: {sorted(keys)[:5]})"
        )
    width = int(first.shape[0])
    if expected_width is not None and width != expected_width:
        raise CheckpointError(
            f"the checkpoint is a generator of base width {width}, but width {expected_width} was asked for"
        )
    try:
        config = GeneratorConfig(base_width=width)
    except ValueError as exc:  # pragma: no cover - a 4-d tensor always has a positive size
        raise CheckpointError(str(exc)) from exc
    reference = {
        k: v
        for k, v in EnlightenGenerator(config).state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    missing = sorted(set(reference) - keys)
    unexpected = sorted(keys - set(reference))
    wrong_shape = [
        f"{k}: file {tuple(cleaned[k].shape)} vs model {tuple(reference[k].shape)}"
        for k in sorted(keys & set(reference))
        if cleaned[k].shape != reference[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if wrong_shape:
        problems.append(f"wrong shapes {wrong_shape[:4]}{' ...' if len(wrong_shape) > 4 else ''}")
    if problems:
        raise CheckpointError(
            f"the state dict does not match an EnlightenGAN generator of width {width}: "
            + "; ".join(problems)
        )
    return {k: v.float() if v.is_floating_point() else v for k, v in cleaned.items()}, config


def _describe(path: Path) -> str:
    return f"{path} ({path.stat().st_size:,} bytes)"


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError and OSErrors
        raise CheckpointError(
            f"{_describe(path)} is not a readable safetensors file ({exc}); it may be truncated: "
            "download or export it again"
        ) from exc
    return tensors, metadata


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < _SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


def _unnest(obj: Any) -> Any:
    """Find the state dict inside common checkpoint wrappers (``{'state_dict': ...}`` and friends)."""
    for _ in range(3):
        if not isinstance(obj, Mapping):
            return obj
        inner = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            return obj
        obj = inner
    return obj


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if "weights_only" in message or "Unsupported global" in message:
            raise CheckpointError(
                f"{_describe(path)} contains Python objects other than tensors, and checkpoints are only "
                "loaded with weights_only=True (a checkpoint must never run code). Re-save its state dict "
                "with torch.save(model.state_dict(), path)."
            ) from exc
        raise CheckpointError(f"{_describe(path)} is not a PyTorch checkpoint ({message})") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{_describe(path)} could not be read as a PyTorch checkpoint "
            f"({str(exc).splitlines()[0][:120]}); "
            "the file looks truncated or corrupt: download it again"
        ) from exc
    except Exception as exc:  # the unpickler raises KeyError/ValueError/... on arbitrary bytes
        raise CheckpointError(
            f"{_describe(path)} is not a PyTorch checkpoint or safetensors file "
            f"({type(exc).__name__}: {str(exc)[:100]})"
        ) from exc


def read_generator_file(
    path: str | os.PathLike[str], expected_width: int | None = None
) -> tuple[dict[str, Tensor], GeneratorConfig, dict[str, str]]:
    """Read a generator weights file of any accepted kind without building the model.

    Returns:
        ``(state_dict, config, metadata)``; ``metadata`` is the safetensors metadata of the
        project's own files (``{}`` for torch files).

    Raises:
        CheckpointError: see the module docstring.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"weights path is a folder, not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"weights file is empty (0 bytes): {path}; download it again")
    with path.open("rb") as handle:
        head = handle.read(16)

    if _is_safetensors(head):
        tensors, metadata = _read_safetensors(path)
        state, config = convert_legacy_state_dict(tensors, expected_width)
        if "config" in metadata:
            try:
                declared = GeneratorConfig.from_dict(json.loads(metadata["config"]))
            except (ValueError, TypeError) as exc:
                raise CheckpointError(f"{path}: unreadable architecture in its metadata ({exc})") from exc
            if declared.base_width != config.base_width:
                raise CheckpointError(f"{path}: metadata says {declared}, but the weights are {config}")
            config = declared  # the weights fix the width; the metadata adds how BatchNorm is used
        return state, config, metadata

    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{_describe(path)} is not a PyTorch checkpoint or safetensors file "
            f"(it starts with {head[:8]!r}); pass the generator weights, e.g. 200_net_G_A.pth"
        )
    obj = _unnest(_read_torch(path))
    return (*convert_legacy_state_dict(obj, expected_width), {})


def load_generator(
    source: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    expected_width: int | None = None,
    device: str | torch.device = "cpu",
) -> EnlightenGenerator:
    """Build an :class:`EnlightenGenerator` from a weights file or state dict, in eval mode.

    Args:
        source: a path (released ``.pth``, plain state dict, project ``.safetensors``) or a state dict.
        expected_width: refuse a checkpoint of another base width.
        device: where to put the model.

    Raises:
        CheckpointError: with a message naming the problem (see the module docstring).

    Example:
        >>> model = load_generator("200_net_G_A.pth")  # doctest: +SKIP
    """
    if isinstance(source, Mapping):
        state, config = convert_legacy_state_dict(_unnest(source), expected_width)
    else:
        state, config, _ = read_generator_file(source, expected_width)
    model = EnlightenGenerator(config)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def save_generator(
    model: EnlightenGenerator,
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``model`` in the project's own format (safetensors + architecture), atomically.

    Args:
        model: the generator (a DDP/compiled wrapper's ``.module`` must be passed unwrapped).
        path: destination, conventionally ``*.safetensors``.
        metadata: extra string metadata (training step, data, ...) stored in the header.
        dtype: storage type of the tensors: ``torch.float32`` (default) or ``torch.float16`` (half the
            size; loading casts back to float32, so the model still computes in float32).

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"save_generator stores float32 or float16 tensors, not {dtype}")
    path = Path(path)
    state = {
        k: v.detach().to("cpu", dtype).contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    header = {str(k): str(v) for k, v in (metadata or {}).items()}
    header.update(
        format=FORMAT_NAME, format_version=FORMAT_VERSION, config=json.dumps(model.config.to_dict())
    )
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=header)
    return path
