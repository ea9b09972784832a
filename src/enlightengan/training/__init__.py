"""Training EnlightenGAN: the loop, the objective of one step, checkpoints, validation, previews.

:class:`~enlightengan.training.trainer.Trainer` drives a run; ``enlightengan train`` is its face.
"""
