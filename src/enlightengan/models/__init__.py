"""Networks of EnlightenGAN and their weights."""

from .checkpoint import CheckpointError, convert_legacy_state_dict, load_generator, save_generator
from .discriminator import DiscriminatorConfig, PatchDiscriminator, global_discriminator, local_discriminator
from .generator import EnlightenGenerator, GeneratorConfig, GeneratorOutput, attention_map

__all__ = [
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
