"""The EnlightenGAN objective: the losses of one training step, given the networks and a batch.

Jiang et al., IEEE TIP 2021, Sec. III: generator loss = global relativistic LSGAN + local LSGAN on
random patches + self feature preserving loss on the whole image and on the patches. The objective
knows the losses; the trainer owns the optimisers and the order of the updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import LossConfig
from ..data.patches import crop_patches
from ..losses.adversarial import (
    patch_lsgan_d_loss,
    patch_lsgan_g_loss,
    relativistic_lsgan_d_loss,
    relativistic_lsgan_g_loss,
)
from ..losses.consistency import exposure_consistency_loss, resolution_consistency_loss
from ..losses.feature import SelfFeaturePreservingLoss
from ..losses.priors import (
    chroma_noise_loss,
    chromaticity_loss,
    color_loss,
    contrast_loss,
    correlation_structure_loss,
    exposure_loss,
    structure_loss,
)
from ..models.ops import attention_map
from .distributed import global_mean

__all__ = ["Batch", "EnlightenGANObjective", "GeneratorStep", "unwrap"]


@dataclass
class Batch:
    """One training batch, all ``N x C x S x S`` crops in ``[-1, 1]`` (gray in ``[0, 1]``)."""

    low: Tensor  # the low-light crop before the random darkening (the feature loss's target)
    input: Tensor  # the generator's input (possibly darkened)
    gray: Tensor  # attention map of ``input``, N x 1 x S x S
    normal: Tensor  # an unrelated normal-light crop

    @classmethod
    def from_dict(cls, data: dict[str, Tensor], device: torch.device, channels_last: bool = False) -> Batch:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        moved = {
            k: data[k].to(device, non_blocking=True, memory_format=fmt)
            for k in ("low", "input", "gray", "normal")
        }
        return cls(**moved)


@dataclass
class GeneratorStep:
    loss: Tensor  # the total generator loss (to backpropagate)
    output: Tensor  # the enhanced batch (attached to the generator's graph)
    latent: Tensor
    logs: dict[str, Tensor]  # detached scalars


class _WeightedSum:
    """The generator loss as it is summed term by term, and each term's detached value for the logs."""

    def __init__(self) -> None:
        self.loss: Tensor | None = None
        self.logs: dict[str, Tensor] = {}

    def add(self, name: str, weight: float, term: Tensor) -> None:
        self.logs[name] = term.detach()
        self.loss = weight * term if self.loss is None else self.loss + weight * term

    def total(self) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, logs)``; the logs end with ``g_total``, the loss's own value."""
        assert self.loss is not None, "the global adversarial term is always added"
        self.logs["g_total"] = self.loss.detach()
        return self.loss, self.logs


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel or torch.compile wrapper."""
    inner = getattr(module, "module", module)
    return getattr(inner, "_orig_mod", inner)


class EnlightenGANObjective(nn.Module):
    """Losses of EnlightenGAN.

    Args:
        generator: maps ``(input, gray)`` to ``GeneratorOutput(output, latent)`` (possibly DDP-wrapped).
        d_global: the global discriminator (possibly DDP-wrapped).
        d_local: the local (patch) discriminator (possibly DDP-wrapped).
        feature_loss: the self feature preserving loss, or None to leave it out.
        config: loss weights and patch settings.
    """

    def __init__(
        self,
        generator: nn.Module,
        d_global: nn.Module,
        d_local: nn.Module,
        feature_loss: SelfFeaturePreservingLoss | None,
        config: LossConfig,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.d_global = d_global
        self.d_local = d_local
        self.feature_loss = feature_loss
        self.config = config

    def generator_step(
        self, batch: Batch, boxes: Sequence[tuple[int, int]], scale: float | None = None
    ) -> GeneratorStep:
        """Forward the generator and compute its loss.

        The discriminators are called unwrapped (no DDP gradient sync) and must be frozen by the caller
        (``requires_grad_(False)``): only the generator is updated by this loss. ``scale`` is the
        shrink factor of the resolution consistency term (drawn by the trainer; used only when
        ``config.scale_weight`` is set). Its second generator forward goes to the unwrapped module, so
        a DDP generator sees one forward per backward (the gradients of both forwards meet in each
        parameter's one accumulation, which DDP reduces).
        """
        cfg = self.config
        output, latent = self.generator(batch.input, batch.gray)
        d_global = unwrap(self.d_global)
        d_local = unwrap(self.d_local)
        terms = _WeightedSum()

        fake_scores = d_global(output)
        with torch.no_grad():
            real_scores = d_global(batch.normal)
        terms.add(
            "g_adv_global",
            cfg.global_adv_weight,
            relativistic_lsgan_g_loss(real_scores, fake_scores, mean=global_mean),
        )
        if boxes:
            fake_patches = crop_patches(output, boxes, cfg.patch_size)
            terms.add("g_adv_local", cfg.local_adv_weight, patch_lsgan_g_loss(d_local(fake_patches)))
        if self.feature_loss is not None:
            terms.add("g_feature", cfg.feature_weight, self.feature_loss(output, batch.low))
            if boxes:
                low_patches = crop_patches(batch.low, boxes, cfg.patch_size)
                terms.add(
                    "g_feature_patch", cfg.patch_feature_weight, self.feature_loss(fake_patches, low_patches)
                )

        # optional terms beyond the paper (all weights 0 in configs/paper.yaml)
        if cfg.structure_weight:
            structure = correlation_structure_loss if cfg.structure_kind == "correlation" else structure_loss
            terms.add("g_structure", cfg.structure_weight, structure(output, batch.low))
        if cfg.chromaticity_weight:
            terms.add("g_chromaticity", cfg.chromaticity_weight, chromaticity_loss(output, batch.low))
        if cfg.color_weight:
            terms.add("g_color", cfg.color_weight, color_loss(output, batch.low, floor=cfg.color_floor))
        if cfg.exposure_weight:
            terms.add(
                "g_exposure",
                cfg.exposure_weight,
                exposure_loss(output, cfg.exposure_level, cfg.exposure_cell),
            )
        if cfg.contrast_weight:
            haze = contrast_loss(output, batch.low, ratio=cfg.contrast_ratio)
            terms.add("g_contrast", cfg.contrast_weight, haze)
        if cfg.chroma_weight:
            terms.add("g_chroma", cfg.chroma_weight, chroma_noise_loss(output))
        if cfg.identity_weight:
            # a second forward on the unwrapped module, as the resolution consistency term below
            same, _ = unwrap(self.generator)(batch.normal, attention_map(batch.normal))
            terms.add("g_identity", cfg.identity_weight, (same - batch.normal).abs().mean())
        if cfg.scale_weight:
            if scale is None:
                raise ValueError("loss.scale_weight is set: generator_step needs a scale")
            consistency = resolution_consistency_loss(unwrap(self.generator), batch.input, output, scale)
            terms.add("g_scale", cfg.scale_weight, consistency)
        if cfg.exposure_consistency_weight:
            anchored = exposure_consistency_loss(unwrap(self.generator), batch.low, batch.input, output)
            terms.add("g_exposure_consistency", cfg.exposure_consistency_weight, anchored)

        loss, logs = terms.total()
        return GeneratorStep(loss=loss, output=output, latent=latent, logs=logs)

    def discriminator_losses(
        self, batch: Batch, fake: Tensor, boxes: Sequence[tuple[int, int]]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """Losses of the global and local discriminators on the same forward's (detached) output.

        Real and fake go through each discriminator in one concatenated forward: one DDP forward per
        backward, and half the kernel launches.
        """
        fake = fake.detach()
        n = batch.normal.shape[0]
        scores = self.d_global(torch.cat((batch.normal, fake), dim=0))
        d_global = relativistic_lsgan_d_loss(scores[:n], scores[n:], mean=global_mean)
        logs = {"d_global": d_global.detach()}
        d_local: Tensor | None = None
        if boxes:
            size = self.config.patch_size
            real_patches = crop_patches(batch.normal, boxes, size)
            fake_patches = crop_patches(fake, boxes, size)
            patch_scores = self.d_local(torch.cat((real_patches, fake_patches), dim=0))
            m = real_patches.shape[0]
            d_local = patch_lsgan_d_loss(patch_scores[:m], patch_scores[m:])
            logs["d_local"] = d_local.detach()
        return d_global, d_local, logs
