"""Inference: enhancing photos and videos with a trained generator, exactly and in bounded memory.

:class:`Enhancer` (:mod:`~enlightengan.inference.enhancer`) is the entry point. Below it: the
tiler (:mod:`~enlightengan.inference.tiling`) and the fast mode (:mod:`~enlightengan.inference.fast`)
cut the work, the backends (:mod:`~enlightengan.inference.backend`: PyTorch, ONNX Runtime) run the
network on 16-aligned tiles placed in their image (:mod:`~enlightengan.inference.placement`), the
ONNX graphs are built in :mod:`~enlightengan.inference.onnx_export`; :mod:`~enlightengan.inference.denoise`
and :mod:`~enlightengan.inference.video` come after the network. docs/ARCHITECTURE.md tells how an
image flows through them.
"""

from .enhancer import Enhancer, enhance, make_backend

__all__ = ["Enhancer", "enhance", "make_backend"]
