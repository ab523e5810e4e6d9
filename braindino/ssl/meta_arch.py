"""The self-distillation meta-architecture: student, EMA teacher, optional Gram teacher.

One call of :meth:`SelfDistillation.losses` is one DINOv3 training step's forward: the teacher
sees the unmasked global crops and gives Sinkhorn–Knopp targets for the CLS (DINO) and the masked
patch tokens (iBOT); the student sees masked global crops and unmasked local crops, each size
group in one backbone call; KoLeo spreads the student's global CLS; in stage 2 a frozen Gram
teacher anchors the patch-to-patch similarity structure. In distillation
(``braindino.ssl.distill``) a frozen, larger teacher replaces the EMA teacher as the source of
the targets, and the student may see its global crops unmasked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from braindino.config import section_with_defaults
from braindino.losses import dino_loss, gram_loss, ibot_loss, koleo_loss, sinkhorn_knopp
from braindino.losses.fused import FactoredLogits, fused_dino_loss, fused_ibot_loss
from braindino.losses.gram import resize_patch_grid
from braindino.models import DINOHead, MaskableViT


class StudentNetwork(nn.Module):
    """Backbone + DINO head + iBOT head; ``forward`` is the student side of one step.

    Kept as one module with one ``forward`` so that DDP/FSDP wrap it whole.
    """

    def __init__(self, backbone: MaskableViT, dino_head: DINOHead, ibot_head: DINOHead):
        super().__init__()
        self.backbone = backbone
        self.dino_head = dino_head
        self.ibot_head = ibot_head

    def forward(
        self,
        global_crops: Tensor,
        local_crops: Tensor | None,
        masks: Tensor,
        all_patches: bool = False,
        fused: bool = False,
        mask_input: bool = True,
    ) -> dict:
        """Student outputs: global CLS, DINO logits of every crop (global crops first, then
        local, crop-major) and iBOT logits of the masked patches; with ``all_patches`` also
        every global patch token (``patches_global``, for the Gram loss).

        ``mask_input=False`` (distillation with ``distill.mask_student=false``): the global
        crops go in unmasked; ``masks`` then only picks the patch tokens the iBOT head reads.

        ``fused`` (``run.fused``): the last block runs only for the tokens a loss reads (CLS of
        every crop, masked patches of the global crops) and the logits stay factored
        (:class:`~braindino.losses.fused.FactoredLogits`) for the fused losses.
        """
        backbone = self.backbone
        lean = fused and not all_patches
        glob = backbone.forward_features(
            global_crops, masks=masks if mask_input else None, keep_patches=masks if lean else None
        )
        cls = [glob["cls"]]
        if local_crops is not None and local_crops.shape[0] > 0:
            only_cls = backbone.patch_mask(local_crops) if fused else None  # no patch is read
            cls.append(backbone.forward_features(local_crops, keep_patches=only_cls)["cls"])
        out = {
            "cls_global": glob["cls"],
            "dino_logits": self.dino_head(torch.cat(cls), factored=fused),
            "ibot_logits": self.ibot_head(
                glob["patches"] if lean else glob["patches"][masks], factored=fused
            ),
        }
        if all_patches:
            out["patches_global"] = glob["patches"]
        return out


@dataclass
class LossWeights:
    """Weights of the loss terms (REFERENCE §2); ``dino_local`` drops to 0.5 in stage 2.

    The one source of their defaults is the ``loss:`` section of
    ``configs/pretrain/default.yaml`` (:meth:`from_mapping`)."""

    dino_global: float
    dino_local: float
    ibot: float
    koleo: float
    student_temperature: float
    sinkhorn_iterations: int

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LossWeights:
        """``values`` over the defaults; an unknown key is one ConfigError."""
        return cls(**section_with_defaults("pretrain/default", "loss", values))


def _crop_major(logits: Tensor | FactoredLogits, crops: int, batch: int):
    """``[crops * batch, ...]`` rows as ``[crops, batch, ...]`` (factored: the features)."""
    if isinstance(logits, FactoredLogits):
        return logits._replace(features=logits.features.view(crops, batch, -1))
    return logits.view(crops, batch, -1)


def _crops(logits: Tensor | FactoredLogits, index: slice):
    """The rows (or crops) ``index`` of plain or factored logits."""
    return logits.select(index) if isinstance(logits, FactoredLogits) else logits[index]


def _entropy(probs: Tensor) -> Tensor:
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean()


def effective_rank(features: Tensor) -> Tensor:
    """exp(entropy of the normalised singular values) of centred features: 1 = collapsed."""
    x = features.float() - features.float().mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    return torch.exp(_entropy(s / s.sum().clamp_min(1e-12)))


class SelfDistillation(nn.Module):
    """Student, EMA teacher and (stage 2) Gram teacher, with the losses of one step.

    With a distillation teacher (:meth:`set_distill_teacher`) the DINO/iBOT targets come from
    that frozen network instead of the EMA teacher; the EMA of the student is still kept (it is
    what a run exports)."""

    def __init__(
        self, student: StudentNetwork, weights: LossWeights | None = None, fused: bool = True
    ):
        super().__init__()
        self.fused = fused  # run.fused: the memory-lean path; False: the plain losses
        self.student = student
        self.teacher = copy.deepcopy(student)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.gram_teacher: MaskableViT | None = None
        self.distill_teacher: StudentNetwork | None = None
        self.mask_student = True  # False: distillation with unmasked student crops
        self.weights = weights or LossWeights.from_mapping({})

    def train(self, mode: bool = True) -> SelfDistillation:
        """Set the student's mode; the teachers always stay in eval mode (no drop path)."""
        super().train(mode)
        self.teacher.eval()
        for frozen in (self.gram_teacher, self.distill_teacher):
            if frozen is not None:
                frozen.eval()
        return self

    # ------------------------------------------------------------------ teachers
    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA: teacher ← momentum · teacher + (1 − momentum) · student."""
        t_params = list(self.teacher.parameters())
        s_params = [p.detach() for p in self.student.parameters()]
        torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)  # one pass per tensor

    def set_gram_teacher(self) -> None:
        """Freeze the Gram teacher: a copy of the EMA teacher's backbone as it is now."""
        self.gram_teacher = copy.deepcopy(self.teacher.backbone).requires_grad_(False).eval()

    def set_distill_teacher(self, teacher: StudentNetwork, mask_student: bool = False) -> None:
        """Take the DINO/iBOT targets from ``teacher`` (frozen here: no gradient, eval mode);
        ``mask_student=False`` feeds the student unmasked global crops (DINOv3 distillation)."""
        self.distill_teacher = teacher.requires_grad_(False).eval()
        self.mask_student = bool(mask_student)

    @torch.no_grad()
    def _teacher_targets(self, global_crops: Tensor, masks: Tensor, temperature: float) -> dict:
        w = self.weights
        keep = masks if self.fused else None  # fused: the last block on the read tokens only
        teacher = self.teacher if self.distill_teacher is None else self.distill_teacher
        out = teacher.backbone.forward_features(global_crops, keep_patches=keep)
        masked = out["patches"] if self.fused else out["patches"][masks]
        cls_logits = teacher.dino_head(out["cls"])
        dino = sinkhorn_knopp(cls_logits, temperature, w.sinkhorn_iterations)
        ibot = sinkhorn_knopp(teacher.ibot_head(masked), temperature, w.sinkhorn_iterations)
        return {"dino": dino, "ibot": ibot, "cls_logits": cls_logits}

    @torch.no_grad()
    def _gram_targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The Gram teacher's patch tokens of the global crops on the student's patch grid: of
        ``gram_crops`` (higher resolution, undistorted) resized bicubically when the batch
        holds them, else of the student's own global crops."""
        glob, teacher = batch["global_crops"], self.gram_teacher
        crops = batch.get("gram_crops", glob)
        patches = teacher.forward_features(crops)["patches"]
        grid, size = teacher.patch_grid(*crops.shape[-2:]), teacher.patch_grid(*glob.shape[-2:])
        return resize_patch_grid(patches, grid, size)

    # ------------------------------------------------------------------ losses
    def losses(
        self,
        batch: dict[str, Tensor],
        teacher_temp: float,
        gram_weight: float = 0.0,
        student: Callable[..., dict] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The total loss of one step and its terms/monitors (detached) for logging.

        ``batch``: ``global_crops [2B, C, G, G]``, ``local_crops [nB, C, L, L]`` (crop-major),
        ``masks`` bool ``[2B, P]``. ``student`` is the (possibly DDP-wrapped) student module.
        """
        w = self.weights
        student = self.student if student is None else student
        glob, local, masks = batch["global_crops"], batch.get("local_crops"), batch["masks"]
        n_global, b = 2, glob.shape[0] // 2
        n_local = 0 if local is None else local.shape[0] // b
        targets = self._teacher_targets(glob, masks, teacher_temp)
        use_gram = gram_weight > 0 and self.gram_teacher is not None
        out = student(
            glob, local, masks, all_patches=use_gram, fused=self.fused, mask_input=self.mask_student
        )
        dino_fn, ibot_fn = (
            (fused_dino_loss, fused_ibot_loss) if self.fused else (dino_loss, ibot_loss)
        )
        k = out["dino_logits"].shape[-1]
        s_dino = _crop_major(out["dino_logits"], n_global + n_local, b)
        t_dino = targets["dino"].view(n_global, b, k)
        tau = w.student_temperature
        terms: dict[str, Tensor] = {}
        s_global = _crops(s_dino, slice(0, n_global))
        terms["dino_global"] = dino_fn(s_global, t_dino, tau, ignore_diagonal=True)
        global_pairs, local_pairs = n_global * (n_global - 1), n_local * n_global
        dino = terms["dino_global"] * w.dino_global * global_pairs
        if n_local:
            s_local = _crops(s_dino, slice(n_global, None))
            terms["dino_local"] = dino_fn(s_local, t_dino, tau, ignore_diagonal=False)
            dino = dino + terms["dino_local"] * w.dino_local * local_pairs
        total = dino / (global_pairs + local_pairs)
        terms["ibot"] = ibot_fn(out["ibot_logits"], targets["ibot"], masks, tau)
        terms["koleo"] = koleo_loss(out["cls_global"].view(n_global, b, -1))
        total = total + w.ibot * terms["ibot"] + w.koleo * terms["koleo"]
        # keep the mask token in the graph when no crop is masked (DDP expects every gradient)
        total = total + 0.0 * self.student.backbone.mask_token.sum()
        if use_gram:
            terms["gram"] = gram_loss(out["patches_global"], self._gram_targets(batch))
            total = total + gram_weight * terms["gram"]
        logs = {f"loss/{name}": value.detach() for name, value in terms.items()}
        logs["loss/total"] = total.detach()
        logs.update(self._monitors(out, targets, k, b))
        return total, logs

    @torch.no_grad()
    def _monitors(self, out: dict, targets: dict, k: int, b: int) -> dict[str, Tensor]:
        t_probs = targets["dino"]
        s_glob = _crops(out["dino_logits"], slice(0, 2 * b))
        if isinstance(s_glob, FactoredLogits):
            s_glob = s_glob.materialize()
        agree = (s_glob.argmax(-1) == t_probs.argmax(-1)).float().mean()
        cls = F.normalize(out["cls_global"].float(), dim=-1)
        return {
            "monitor/teacher_entropy": _entropy(t_probs),
            "monitor/teacher_entropy_max": torch.tensor(float(torch.log(torch.tensor(k)))),
            "monitor/teacher_clusters_used": torch.tensor(
                float(t_probs.argmax(-1).unique().numel())
            ),
            "monitor/student_teacher_agreement": agree,
            "monitor/feature_std": cls.std(0).mean(),
            "monitor/effective_rank": effective_rank(cls),
        }
