"""Loss functions for pretraining (DINO, iBOT, KoLeo, Gram, Sinkhorn–Knopp targets) and for the
downstream heads (SupCon, class variance, Cox, Dice): small, pure, documented torch functions
on plain tensors, each a few lines of its definition.

Every loss computes in float32 (float64 inputs stay float64) with autocast switched off, so
fp32 and bf16 inputs give the same numbers, and a bad argument raises one ``ValueError`` naming
it. :mod:`braindino.losses.fused` holds the memory-lean DINO/iBOT path that ``run.fused`` switches
on (``auto``: on the CPU, where it measured faster), tested equal to these.
"""

from braindino.losses.class_variance import class_variance_loss
from braindino.losses.cox import cox_loss
from braindino.losses.dice import dice_loss
from braindino.losses.dino import dino_loss
from braindino.losses.gram import gram_loss
from braindino.losses.ibot import ibot_loss
from braindino.losses.koleo import koleo_loss
from braindino.losses.sinkhorn import sinkhorn_knopp
from braindino.losses.supcon import supcon_loss

__all__ = [
    "class_variance_loss",
    "cox_loss",
    "dice_loss",
    "dino_loss",
    "gram_loss",
    "ibot_loss",
    "koleo_loss",
    "sinkhorn_knopp",
    "supcon_loss",
]
