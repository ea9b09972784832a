"""EnlightenGAN: low-light image enhancement without paired supervision (Jiang et al., IEEE TIP 2021).

Quick start::

    from PIL import Image
    from enlightengan import enhance
    enhance(Image.open("dark.jpg")).save("bright.jpg")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .models import (
    CheckpointError,
    EnlightenGenerator,
    GeneratorConfig,
    GeneratorOutput,
    attention_map,
    load_generator,
    save_generator,
)

__all__ = [
    "CheckpointError",
    "Enhancer",
    "EnlightenGenerator",
    "GeneratorConfig",
    "GeneratorOutput",
    "__version__",
    "attention_map",
    "enhance",
    "load_generator",
    "save_generator",
]

if TYPE_CHECKING:
    from .inference import Enhancer, enhance


def __getattr__(name: str) -> Any:
    # The inference layer pulls in image IO; import it on first use only.
    if name in ("Enhancer", "enhance"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'enlightengan' has no attribute {name!r}")
