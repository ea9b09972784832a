"""Losses of EnlightenGAN (adversarial, self feature preserving) and optional priors."""

from .adversarial import (
    LSGANLoss,
    PatchLSGANDiscriminatorLoss,
    PatchLSGANGeneratorLoss,
    RelativisticLSGANDiscriminatorLoss,
    RelativisticLSGANGeneratorLoss,
    lsgan_loss,
    patch_lsgan_d_loss,
    patch_lsgan_g_loss,
    relativistic_lsgan_d_loss,
    relativistic_lsgan_g_loss,
)
from .feature import SelfFeaturePreservingLoss, instance_normalize, self_feature_preserving_loss
from .priors import ColorLoss, ExposureLoss, StructureLoss, color_loss, exposure_loss, structure_loss

__all__ = [
    "ColorLoss",
    "ExposureLoss",
    "LSGANLoss",
    "PatchLSGANDiscriminatorLoss",
    "PatchLSGANGeneratorLoss",
    "RelativisticLSGANDiscriminatorLoss",
    "RelativisticLSGANGeneratorLoss",
    "SelfFeaturePreservingLoss",
    "StructureLoss",
    "color_loss",
    "exposure_loss",
    "instance_normalize",
    "lsgan_loss",
    "patch_lsgan_d_loss",
    "patch_lsgan_g_loss",
    "relativistic_lsgan_d_loss",
    "relativistic_lsgan_g_loss",
    "self_feature_preserving_loss",
    "structure_loss",
]
