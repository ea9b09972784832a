"""Networks of EnlightenGAN and their weights: generator, discriminators, VGG-16 features, checkpoints,
BatchNorm statistics, and the pure tensor operations around them (:mod:`enlightengan.models.ops`)."""

from .checkpoint import CheckpointError, convert_legacy_state_dict, load_generator, save_generator
from .discriminator import DiscriminatorConfig, PatchDiscriminator, global_discriminator, local_discriminator
from .generator import BatchNormMode, EnlightenGenerator, GeneratorConfig, GeneratorOutput
from .ops import attention_map

__all__ = [
    "BatchNormMode",
    "CheckpointError",
    "DiscriminatorConfig",
    "EnlightenGenerator",
    "GeneratorConfig",
    "GeneratorOutput",
    "PatchDiscriminator",
    "attention_map",
    "convert_legacy_state_dict",
    "global_discriminator",
    "load_generator",
    "local_discriminator",
    "save_generator",
]
