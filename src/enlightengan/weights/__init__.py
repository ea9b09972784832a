"""Which weights to use, declared as data: the bundled default generator and the files to download.

* :mod:`~enlightengan.weights.spec`: :class:`WeightsSpec`, one declaration for every weights file
  (name, SHA-256, licence, input format; a URL for downloads), and :func:`sha256_file`;
* :mod:`~enlightengan.weights.bundled`: the default generator shipped with the package and
  :func:`resolve_weights` (an explicit path, then ``$ENLIGHTENGAN_WEIGHTS``, then the bundled file);
* :mod:`~enlightengan.weights.downloads`: published files (torchvision's VGG-16 for the training
  loss), fetched once into the torch hub cache by :func:`cached_path`.
"""

from .bundled import (
    DEFAULT_MODEL,
    ENV_VAR,
    WEIGHTS_DIR,
    NoDefaultWeightsError,
    WeightsError,
    bundled_path,
    resolve_weights,
)
from .downloads import VGG16_TORCHVISION, WeightsUnavailableError, cached_path, hub_dir
from .spec import WeightsSpec, sha256_file

__all__ = [
    "DEFAULT_MODEL",
    "ENV_VAR",
    "VGG16_TORCHVISION",
    "WEIGHTS_DIR",
    "NoDefaultWeightsError",
    "WeightsError",
    "WeightsSpec",
    "WeightsUnavailableError",
    "bundled_path",
    "cached_path",
    "hub_dir",
    "resolve_weights",
    "sha256_file",
]
