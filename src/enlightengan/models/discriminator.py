"""PatchGAN discriminators of EnlightenGAN (Jiang et al., IEEE TIP 2021, Sec. III-A).

Both the global discriminator (``n_layers=5``, whole images) and the local one (``n_layers=4``,
32 x 32 patches) are the released ``no_norm`` PatchGANs: 4 x 4 kernels, padding 2, LeakyReLU(0.2),
no normalisation. Parameter names (``model.0.weight``, ``model.2.weight``, ...) equal those of the
released ``D_A`` / ``D_P`` checkpoints after their ``module.`` prefix is removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn

__all__ = ["DiscriminatorConfig", "PatchDiscriminator", "global_discriminator", "local_discriminator"]

_KERNEL = 4
_PAD = 2


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of :class:`PatchDiscriminator`.

    Attributes:
        n_layers: stride-2 convolutions (5 for the global, 4 for the local discriminator).
        base_width: channels of the first convolution (64 as published).
        in_channels: 3 for RGB.
    """

    n_layers: int = 5
    base_width: int = 64
    in_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("n_layers", "base_width", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    """A PatchGAN without normalisation.

    Layers: one stride-2 conv ``in -> w``; ``n_layers - 1`` stride-2 convs doubling the width
    (capped at ``8 w``); one stride-1 conv to ``min(2**n_layers, 8) w``; one stride-1 conv to 1
    channel. Each conv but the last is followed by LeakyReLU(0.2).

    Shapes:
        input ``N x 3 x H x W`` in ``[-1, 1]``; output ``N x 1 x H' x W'`` of unbounded scores
        (least-squares GAN: no sigmoid). For a 320 x 320 input and ``n_layers=5`` the output is
        ``N x 1 x 13 x 13``; for 32 x 32 and ``n_layers=4`` it is ``N x 1 x 5 x 5``.
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        w = self.config.base_width
        layers: list[nn.Module] = [
            nn.Conv2d(self.config.in_channels, w, _KERNEL, stride=2, padding=_PAD),
            nn.LeakyReLU(0.2),
        ]
        mult = 1
        for n in range(1, self.config.n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(w * prev, w * mult, _KERNEL, stride=2, padding=_PAD), nn.LeakyReLU(0.2)]
        prev, mult = mult, min(2**self.config.n_layers, 8)
        layers += [nn.Conv2d(w * prev, w * mult, _KERNEL, stride=1, padding=_PAD), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(w * mult, 1, _KERNEL, stride=1, padding=_PAD))
        self.model = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected N x {self.config.in_channels} x H x W, got shape {tuple(image.shape)}"
            )
        out: Tensor = self.model(image)
        return out


def global_discriminator(base_width: int = 64) -> PatchDiscriminator:
    """The global discriminator (``n_layers=5``), applied to whole images."""
    return PatchDiscriminator(DiscriminatorConfig(n_layers=5, base_width=base_width))


def local_discriminator(base_width: int = 64) -> PatchDiscriminator:
    """The local discriminator (``n_layers=4``), applied to random 32 x 32 patches."""
    return PatchDiscriminator(DiscriminatorConfig(n_layers=4, base_width=base_width))
