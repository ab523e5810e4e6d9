"""Against a peer: BrainDINO's recipe vs a DINOv2-style recipe built from lightly's components.

    pip install lightly                      # the peer; not a BrainDINO dependency
    python -m braindino.synth --out /tmp/cohort            # or let the bench generate the default
    python pretrain/prepare.py --out /tmp/shards /tmp/cohort/pretrain_pool.csv \\
        preprocess.slices.size=64 "preprocess.spacing=[2.0,2.0,2.0]"
    python bench/peer_bench.py --cohort /tmp/cohort --shards /tmp/shards --out /tmp/peer

Three pretraining runs on the same slice shards, the same number of steps, batch and crop
sizes (the tiny config's 2 x 64 px global and 4 x 32 px local crops of one
``MultiCropAugmentation``):

* ``braindino``: ``configs/pretrain/tiny.yaml`` as it is (DINOv3-style ViT: RoPE, registers);
* ``braindino_abs_pos``: the same recipe on a ViT with learned absolute position embeddings
  (timm ``vit_small_patch16_224`` at the tiny width and depth) — the backbone's share of a gap;
* ``lightly``: lightly's documented DINOv2 example (``examples/pytorch/dinov2.py``: DINO + iBOT
  + KoLeo losses, ``DINOv2ProjectionHead``, ``MaskedVisionTransformerTIMM`` over that same
  absolute-position ViT, block masks, AdamW lr 1e-3, teacher temperature 0.04 -> 0.07, weight
  decay 0.04 -> 0.4, momentum 0.992 -> 1) with the projection heads at the tiny config's size.

Each trained teacher and its random-init twin (same architecture, :func:`random_like`) is scored
by the same frozen probes: balanced accuracy of logistic regression and cosine k-NN on the last 4
blocks' CLS + mean patch tokens (protocol 5 of bench/RESULTS.md, subject-grouped 5-fold CV),
and the dense tissue probe (``braindino.analysis.dense_probe``: patch tokens -> background / CSF /
GM / WM on shifted slices of ``--tissue-subjects`` synthetic heads, half of them tested).
Finished encoders are reused when the bench runs again into the same ``--out``.
One JSON document goes to ``--out/peer.json`` and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from braindino.analysis.cases import labelled_case
from braindino.analysis.dense_probe import dense_probe
from braindino.analysis.synthetic import synthetic_volumes
from braindino.config import load_config
from braindino.data.multicrop import MultiCropAugmentation
from braindino.data.shards import SliceShardReader
from braindino.models import (
    MaskableViT,
    create_backbone,
    load_encoder,
    random_like,
    save_encoder,
)
from braindino.ssl.data import build_loader, sampling_weights
from braindino.ssl.export import export_run
from braindino.ssl.probe import ProbeSet
from braindino.ssl.trainer import pretrain
from braindino.synth.tissue import TISSUE_CLASSES

ABS_POS_ARCH = "vit_small_patch16_224"  # timm VisionTransformer: learned absolute positions


def abs_pos_kwargs(cfg) -> dict:
    """timm arguments giving the absolute-position ViT the tiny config's width and depth."""
    tiny = create_backbone(str(cfg.model.arch), img_size=int(cfg.model.img_size))
    return {"embed_dim": tiny.embed_dim, "depth": tiny.depth, "num_heads": tiny.num_heads}


def train_braindino(cfg) -> MaskableViT:
    """Pretrain with BrainDINO's trainer (resumes a killed run); the exported EMA teacher."""
    pretrain(cfg)
    return load_encoder(export_run(Path(cfg.run.out), Path(cfg.run.out) / "export"))


def _cosine(step: int, total: int, start: float, end: float) -> float:
    return end - (end - start) * (math.cos(math.pi * step / max(total - 1, 1)) + 1) / 2


def train_lightly(cfg, steps: int, seed: int) -> MaskableViT:
    """lightly's DINOv2 example on BrainDINO's crops; the EMA teacher as a BrainDINO encoder."""
    from lightly.loss import DINOLoss, IBOTPatchLoss, KoLeoLoss
    from lightly.models.modules import DINOv2ProjectionHead, MaskedVisionTransformerTIMM
    from lightly.models.utils import random_block_mask, update_momentum

    torch.manual_seed(seed)
    size = int(cfg.model.img_size)
    backbone, encoder = (
        create_backbone(ABS_POS_ARCH, img_size=size, init_values=1.0, **abs_pos_kwargs(cfg))
        for _ in range(2)
    )
    student, teacher = (
        MaskedVisionTransformerTIMM(vit=b.vit, antialias=False, pos_embed_initialization="skip")
        for b in (backbone, encoder)
    )
    teacher.load_state_dict(student.state_dict())
    h = cfg.heads.dino
    head, teacher_head = (
        DINOv2ProjectionHead(
            backbone.embed_dim, int(h.hidden_dim), int(h.bottleneck_dim), int(h.out_dim)
        )
        for _ in range(2)
    )  # weight-normed last layers: copied by state dict, not deepcopy
    teacher_head.load_state_dict(head.state_dict())
    for module in (teacher, teacher_head):
        module.requires_grad_(False).eval()
    dino, ibot = DINOLoss(output_dim=int(h.out_dim)), IBOTPatchLoss(output_dim=int(h.out_dim))
    koleo = KoLeoLoss()
    optimizer = torch.optim.AdamW([*student.parameters(), *head.parameters()], lr=1e-3)

    reader = SliceShardReader(cfg.data.shards)
    batch = int(cfg.data.batch_size_per_device)
    loader, _ = build_loader(reader, batch, 0, seed, 0, 1, sampling_weights(reader, None))
    augment = MultiCropAugmentation(cfg.augment)
    grid = size // backbone.patch_size[0]
    for step, (images, scale, offset) in zip(range(steps), loader):
        crops = augment(images, scale, offset, torch.Generator().manual_seed(seed * 7919 + step))
        global_views, local_views = crops["global_crops"], crops["local_crops"]
        # min 1 patch per block (lightly: 4): a 4 x 4 grid masks 2-8 patches per image
        block_mask = random_block_mask((len(global_views), grid, grid), min_num_masks_per_block=1)
        mask = torch.zeros(len(global_views), 1 + grid * grid, dtype=torch.bool)
        mask[:, 1:] = block_mask.flatten(1)
        temp = 0.04 + (0.07 - 0.04) * min(step / max(int(0.6 * steps), 1), 1.0)
        with torch.no_grad():
            tokens = teacher.encode(global_views)
            teacher_cls, teacher_patch = teacher_head(tokens[:, 0]), teacher_head(tokens[mask])
        tokens = student.encode(global_views, mask=mask)
        student_global = head(tokens[:, 0])
        student_local = head(student.encode(local_views)[:, 0])
        loss = (
            dino(
                teacher_out=list(teacher_cls.chunk(2)),
                student_out=list(torch.cat([student_global, student_local]).chunk(2 + 4)),
                teacher_temp=temp,
            )
            + ibot(teacher_patch, head(tokens[mask]), block_mask, teacher_temp=temp)
            + 0.1 * sum(koleo(t) for t in tokens[:, 0].chunk(2))
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["weight_decay"] = _cosine(step, steps, 0.04, 0.4)
        optimizer.step()
        momentum = _cosine(step, steps, 0.992, 1.0)
        update_momentum(student, teacher, m=momentum)
        update_momentum(head, teacher_head, m=momentum)
        if step % 20 == 0:
            print(f"lightly step {step}/{steps} loss {loss.item():.3f}", flush=True)
    return encoder.eval()  # its vit is the EMA teacher's


def score(probes: ProbeSet, cases: list, encoder: MaskableViT) -> dict[str, dict[str, float]]:
    """Balanced accuracy per probe task and classifier, and of the dense tissue probe."""
    scores = {c: probes.evaluate(encoder, k=10, classifier=c) for c in ("logreg", "knn")}
    tissue = dense_probe(encoder, cases, TISSUE_CLASSES, bootstrap=200)
    scores["dense"] = {"tissue": tissue.balanced_accuracy[0]}
    return scores


def main() -> None:
    """Train the three recipes, probe each against its random twin, write peer.json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True, help="synthetic cohort (probe labels)")
    parser.add_argument("--shards", required=True, help="slice shards of its pretraining pool")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--epochs", type=int, default=12, help="x 20 iterations (tiny config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="brain_age,diagnosis", help="probe tasks")
    parser.add_argument("--tissue-subjects", type=int, default=60, help="dense tissue probe")
    args = parser.parse_args()
    out = Path(args.out)
    dotlist = [f"data.shards={args.shards}", "run.progress=false", f"run.seed={args.seed}"]
    dotlist += [f"schedule.epochs={args.epochs}"]
    base = load_config("pretrain/default", ["pretrain/tiny"], [*dotlist, f"run.out={out}/bd"])
    steps = int(base.schedule.epochs) * int(base.schedule.iters_per_epoch)
    kwargs = abs_pos_kwargs(base)
    abs_pos = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        [
            *dotlist,
            f"run.out={out}/bd_abs",
            f"model.arch={ABS_POS_ARCH}",
            *[f"model.kwargs.{k}={v}" for k, v in kwargs.items()],
        ],
    )
    probes = ProbeSet(
        args.cohort,
        args.tasks.split(","),
        int(base.model.img_size),
        8,
        preprocess={"spacing": [2.0] * 3},
        pooling="cls+patch",
        blocks=4,
    )
    volumes = synthetic_volumes("tissue", args.tissue_subjects, "T1", args.seed)
    size = int(base.model.img_size)  # the shards' slices: 2 mm, size px
    shard_preprocess = {"spacing": [2.0] * 3, "slices": {"size": size}}
    cases = [labelled_case(None, *volume, shard_preprocess) for volume in volumes]
    runs = {
        "braindino": lambda: train_braindino(base),
        "braindino_abs_pos": lambda: train_braindino(abs_pos),
        "lightly": lambda: train_lightly(base, steps, args.seed),
    }
    results: dict = {"steps": steps, "batch": int(base.data.batch_size_per_device), "runs": {}}
    for name, train in runs.items():
        start, folder = time.perf_counter(), out / name / "encoder"
        if (folder / "config.json").is_file():  # a finished run of an earlier call
            encoder, seconds = load_encoder(folder), math.nan
        else:
            encoder = train()
            seconds = time.perf_counter() - start
            save_encoder(encoder, folder)
        trained = score(probes, cases, encoder)
        twin = score(probes, cases, random_like(encoder, seed=12345))
        results["runs"][name] = {"train_s": seconds, "pretrained": trained, "random_init": twin}
        print(json.dumps({name: results["runs"][name]}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "peer.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| recipe | probe | task | random init | pretrained | gain |\n|---|---|---|---|---|---|")
    for name, run in results["runs"].items():
        for c, tasks in run["pretrained"].items():
            for task, value in tasks.items():
                base_value = run["random_init"][c][task]
                print(
                    f"| {name} | {c} | {task} | {base_value:.3f} | {value:.3f} | "
                    f"{value - base_value:+.3f} |"
                )
    print(f"mean pretrained score per recipe: {_means(results)}")


def _means(results: dict) -> dict[str, float]:
    return {
        name: float(np.mean([v for tasks in run["pretrained"].values() for v in tasks.values()]))
        for name, run in results["runs"].items()
    }


if __name__ == "__main__":
    main()
