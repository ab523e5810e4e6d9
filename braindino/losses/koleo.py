"""KoLeo regulariser: spreads L2-normalised features by pushing up nearest-neighbour distances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from braindino.losses._common import check_positive, check_tensor, full_precision, upcast


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """−mean_i log(min_{j≠i} ‖x̂_i − x̂_j‖ + eps), with x̂ the L2-normalised rows of ``[N, D]``.

    ``features`` may also be ``[G, N, D]``: G independent groups (e.g. one per global crop), each
    scored on its own and the G results averaged. With fewer than 2 rows per group there is no
    neighbour and the loss is 0 (no NaN), still attached to the graph. Identical rows give
    ``−log(eps)`` with a zero gradient rather than NaN. Computed in float32 with autocast off
    (float64 inputs stay float64).
    """
    where = "koleo_loss"
    check_tensor(features, f"{where}(features)", (2, 3))
    check_positive(eps, f"{where}(eps)")
    grouped = features if features.dim() == 3 else features.unsqueeze(0)
    if grouped.shape[1] < 2:
        return upcast(features).sum() * 0.0
    with full_precision(features):
        unit = F.normalize(upcast(grouped), p=2, dim=-1)
        with torch.no_grad():
            # On the unit sphere the nearest neighbour is the most similar other row.
            similarity = unit @ unit.transpose(1, 2)
            similarity.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
            nearest = similarity.argmax(dim=-1)  # [G, N]
        neighbours = torch.gather(unit, 1, nearest[..., None].expand_as(unit))
        distance = torch.linalg.vector_norm(unit - neighbours, dim=-1)
        return -torch.log(distance + float(eps)).mean()
