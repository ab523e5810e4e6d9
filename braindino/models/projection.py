"""The DINO / iBOT projection head: MLP -> bottleneck -> L2 norm -> prototypes.

DINO (image level, on CLS) and iBOT (patch level, on masked patch tokens) each get their own
``DINOHead`` instance, as in DINOv3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from braindino.errors import ConfigError
from braindino.losses.fused import FactoredLogits, norm_eps


def _unit_rows(x: Tensor) -> Tensor:
    return F.normalize(x, p=2, dim=-1, eps=norm_eps(x.dtype))


class PrototypeLayer(nn.Module):
    """Linear prototypes without bias: ``logits = x @ W^T``.

    With ``normalize=True`` every prototype row is scaled to unit length in the forward pass,
    which equals DINOv2's weight-normalised linear layer with the gain fixed at 1: for
    L2-normalised inputs the logits are cosine similarities in [-1, 1]. ``weight`` is the one
    parameter, so the layer needs no parametrisation machinery (plain state dict, EMA, FSDP).
    """

    def __init__(self, in_dim: int, out_dim: int, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """Prototype scores ``[..., out_dim]``: ``x @ unit(weight).T`` (or ``x @ weight.T``)."""
        weight = _unit_rows(self.weight) if self.normalize else self.weight
        return F.linear(x, weight.to(x.dtype))

    def extra_repr(self) -> str:
        out_dim, in_dim = self.weight.shape
        return f"in_dim={in_dim}, out_dim={out_dim}, normalize={self.normalize}"


def _mlp(in_dim: int, hidden_dim: int, bottleneck_dim: int, nlayers: int) -> nn.Sequential:
    if nlayers == 1:
        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim))
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
    for _ in range(nlayers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
    layers.append(nn.Linear(hidden_dim, bottleneck_dim))
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """``nlayers``-layer MLP (GELU) -> bottleneck -> L2 norm -> ``out_dim`` prototypes.

    Args:
        in_dim: backbone embedding width.
        out_dim: number of prototypes K (65,536 in DINOv2; fewer suits small data).
        hidden_dim: MLP width.
        bottleneck_dim: width of the L2-normalised bottleneck.
        nlayers: MLP depth (>= 1; 1 maps straight to the bottleneck).
        normalize_prototypes: unit-length prototype rows (weight norm with gain 1, DINOv2);
            False gives a plain linear layer.

    The prototype layer is ``head.last_layer``. To keep it frozen early in training (DINO does
    so for the first epoch), call ``head.drop_last_layer_grad()`` after ``backward()`` and before
    the optimiser step: its gradients become ``None``, so the optimiser (AdamW included, weight
    decay too) leaves it untouched.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        normalize_prototypes: bool = True,
    ):
        super().__init__()
        sizes = {"in_dim": in_dim, "out_dim": out_dim, "hidden_dim": hidden_dim}
        sizes.update(bottleneck_dim=bottleneck_dim, nlayers=nlayers)
        bad = [f"{k}={v!r}" for k, v in sizes.items() if not isinstance(v, int) or v < 1]
        if bad:
            raise ConfigError(
                f"DINO head sizes must be positive ints, got {', '.join(bad)}",
                path="head",
                fix="set positive integer sizes in the pretrain config",
            )
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, nlayers)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = PrototypeLayer(bottleneck_dim, out_dim, normalize=normalize_prototypes)

    def bottleneck(self, x: Tensor) -> Tensor:
        """The L2-normalised bottleneck features ``[..., bottleneck_dim]``."""
        return _unit_rows(self.mlp(x))

    def forward(self, x: Tensor, factored: bool = False) -> Tensor | FactoredLogits:
        """Prototype logits ``[..., out_dim]`` for features ``[..., in_dim]``.

        ``factored=True`` returns the logits as their two factors,
        :class:`~braindino.losses.fused.FactoredLogits` (bottleneck ``[..., bottleneck_dim]``,
        prototypes ``[out_dim, bottleneck_dim]``), for the fused losses that never materialise
        the ``[..., out_dim]`` matrix. Computed inside ``forward`` so that FSDP's hooks see it.
        """
        z = self.bottleneck(x)
        if factored:
            return FactoredLogits(z, self.last_layer.weight, self.last_layer.normalize)
        return self.last_layer(z)

    def drop_last_layer_grad(self) -> None:
        """Discard the prototype layer's gradients so the next optimiser step skips it."""
        for param in self.last_layer.parameters():
            param.grad = None
