"""SSL step time against the bare backbone floor, on the CPU or a GPU.

The floor is what no pretrainer can avoid: the student backbone's forward + backward on all crops
(masked globals, locals) and the teacher backbone's forward on the globals — no heads, losses,
optimiser or EMA. The full step is ``SelfDistillation.losses`` + backward + clipping + AdamW + EMA.
The step runs as the trainer runs it (``run.fused``, the default: the last block only for the
tokens a loss reads and the fused DINO/iBOT losses); ``floor_wanted`` is the floor with that same
saving, so ``ratio_to_floor_wanted`` is the heads', losses' and optimiser's own overhead.
``step_plain`` is the same step on the plain path (``run.fused=false``: full last block, plain
losses on materialised logits), timed in the same rounds, and ``plain_over_fused`` their ratio.

    python bench/pretrain_bench.py --arch vit_small_patch16_dinov3 --batch 8 --runs 5
    python bench/pretrain_bench.py --device cuda --arch vit_base_patch16_dinov3 --batch 64 --bf16
    python bench/pretrain_bench.py --device cuda --arch vit_large_patch16_dinov3 --bf16 --fsdp

Prints one JSON line: medians over --runs rounds (after --warmup calls of each figure); the
ratios are medians of the per-round ratios (step and floor timed in turn, one round each). With
``--fsdp`` the student is sharded (FSDP2) and the floor figures are left out: the bare backbones
would run outside the sharded root module. With ``--compile`` the blocks are compiled after the
FLOP count (which runs eagerly) and ``compiled_graphs`` says how many graphs were made.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import time

import torch
import torch.distributed as dist

from braindino.config import load_config
from braindino.data.multicrop import MultiCropAugmentation
from braindino.ssl.build import build_meta_arch, build_optimizer
from braindino.ssl.param_groups import apply_schedule_values, clip_gradients
from braindino.ssl.sharding import shard_student, unsharded


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_round_robin(figures: dict, device, warmup: int, runs: int) -> dict[str, list[float]]:
    """Time each figure ``runs`` times, taking turns (floor, step, floor, ...), after ``warmup``
    calls of each: a machine whose speed drifts then slows every figure alike, and the ratios
    of one round compare like with like."""
    for fn in figures.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in figures}
    for _ in range(runs):
        for name, fn in figures.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def one_process_group(device: torch.device) -> None:
    """A process group of this one process (NCCL on a GPU, gloo on the CPU), so that the trainer's
    FSDP2 sharding runs without a launcher: it must at least run on one GPU."""
    if dist.is_initialized():
        return
    with socket.socket() as sock:  # a free local port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if device.type == "cuda":
        torch.cuda.set_device(device.index if device.index is not None else 0)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def bench_config(
    arch: str, prototypes: int, global_size: int | None = None, local_size: int | None = None
):
    """The default pretraining config for ``arch`` with ``prototypes`` per head, no stochastic
    depth, and the crop sides given (else the augment config's 224 / 96)."""
    return load_config(
        "pretrain/default",
        dotlist=[
            f"model.arch={arch}",
            "model.drop_path_rate=0.0",
            f"heads.dino.out_dim={prototypes}",
            f"heads.ibot.out_dim={prototypes}",
            *([f"augment.global_crops.size={global_size}"] if global_size else []),
            *([f"augment.local_crops.size={local_size}"] if local_size else []),
        ],
    )


def make_batch(
    cfg,
    batch: int,
    device: torch.device,
    source: int = 256,
    gram_ratio: int = 1,
    gram_size: int | None = None,
) -> dict:
    """A multi-crop batch from random uint8 slices (content does not change the cost); with
    ``gram_ratio`` > 1 also the Gram teacher's crops at that many times the global size (or
    at ``gram_size`` px)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, source, source), dtype=torch.uint8, generator=gen)
    aug = MultiCropAugmentation(cfg.augment, gram_ratio=gram_ratio, gram_size=gram_size)
    out = aug(
        images.to(device),
        torch.full((batch,), 0.02, device=device),
        torch.full((batch,), -2.0, device=device),
        generator=gen,
    )
    return out


def main() -> None:
    """Measure and print the floor, the full step and their ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--arch", default="vit_small_patch16_dinov3")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--prototypes", type=int, default=65536)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--fsdp",
        action="store_true",
        help="shard the student with FSDP2 (the trainer's run.fsdp sharding) over a one-process "
        "group; the EMA update runs on the gathered student, as in the trainer",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print the step's top operators (self time)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=0.0,
        help="device's dense peak (TFLOP/s) for MFU, e.g. 989 for an H200 in bf16",
    )
    parser.add_argument(
        "--gram-ratio",
        type=int,
        default=0,
        help="also time stage-2 steps with the Gram teacher on the student's crops and at this "
        "resolution ratio (gram.resolution_ratio; DINOv3: 2); 0 = skip",
    )
    parser.add_argument(
        "--crops",
        default="",
        help="GLOBAL,LOCAL[,GRAM] crop sides in px (a highres.crop_sizes entry, e.g. "
        "512,112,768); default: the augment config's 224 / 96, Gram at --gram-ratio",
    )
    args = parser.parse_args()
    if args.fsdp and args.compile:
        parser.error("--compile is not supported with --fsdp (nor is run.compile in the trainer)")
    sides = [int(v) for v in args.crops.split(",") if v]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = bench_config(args.arch, args.prototypes, *sides[:2])
    gram_size = sides[2] if len(sides) > 2 else None
    torch.manual_seed(0)
    meta = build_meta_arch(cfg).to(device)
    if args.fsdp:  # the optimiser is built after sharding (the parameters are replaced)
        one_process_group(device)
        shard_student(meta.student, device)
    optimizer = build_optimizer(cfg, meta)
    apply_schedule_values(optimizer, 1e-4, 0.04)
    batch = make_batch(cfg, args.batch, device, source=max([256, *sides]))
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    student, teacher = meta.student.backbone, meta.teacher.backbone

    def floor(wanted_only: bool = False) -> None:
        """The bare backbones; ``wanted_only``: the last block on loss-read tokens only, as the
        step runs it (the issue's floor is the full backbone)."""
        masks = batch["masks"]
        local = batch["local_crops"]
        keep, keep_local = (masks, student.patch_mask(local)) if wanted_only else (None, None)
        with amp:
            with torch.no_grad():
                teacher.forward_features(batch["global_crops"], keep_patches=keep)
            g = student.forward_features(batch["global_crops"], masks=masks, keep_patches=keep)
            lo = student.forward_features(local, keep_patches=keep_local)
            loss = g["cls"].float().sum() + g["patches"].float().sum() + lo["cls"].float().sum()
        loss.backward()
        student.zero_grad(set_to_none=True)

    def full_step(fused: bool = True, gram: dict | None = None) -> None:
        """One training step; ``gram``: a stage-2 step (Gram weight 2) on that batch."""
        meta.fused = fused
        with amp:
            if gram is None:
                loss, _ = meta.losses(batch, teacher_temp=0.07)
            else:
                loss, _ = meta.losses(gram, teacher_temp=0.07, gram_weight=2.0)
        loss.backward()
        clip_gradients(
            {"backbone": student, "dino": meta.student.dino_head, "ibot": meta.student.ibot_head},
            3.0,
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with unsharded(meta.student) if args.fsdp else contextlib.nullcontext():
            meta.update_teacher(0.996)

    if args.profile:
        for _ in range(max(2, args.warmup)):  # steady state (allocator, caches) first
            full_step()
        with torch.profiler.profile() as prof:
            full_step()
            _sync(device)
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=70))

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        full_step()
    step_flops = counter.get_total_flops()
    if args.compile:  # after the FLOP count, which runs eagerly
        meta.student.backbone.compile_blocks()
        meta.teacher.backbone.compile_blocks()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    figures = {"full_step": full_step, "step_plain": lambda: full_step(fused=False)}
    if not args.fsdp:  # the bare backbones run outside the sharded root module's hooks
        figures.update(floor=floor, floor_wanted=lambda: floor(wanted_only=True))
    if args.gram_ratio:  # stage 2: the Gram teacher on the student's crops vs at gram_ratio x
        meta.set_gram_teacher()
        source = max(256, *sides, gram_size or 0)
        gram_batches = {
            r: make_batch(cfg, args.batch, device, source, r, gram_size if r > 1 else None)
            for r in (1, args.gram_ratio)
        }
        figures["step_gram_1x"] = lambda: full_step(gram=gram_batches[1])
        figures[f"step_gram_{args.gram_ratio}x"] = lambda: full_step(
            gram=gram_batches[args.gram_ratio]
        )
    times = _time_round_robin(figures, device, args.warmup, args.runs)
    median = {name: statistics.median(values) for name, values in times.items()}

    def median_ratio(over: str, step: str = "full_step") -> float:
        return statistics.median(s / f for s, f in zip(times[step], times[over]))

    images = args.batch
    out = {
        "arch": args.arch,
        "batch": args.batch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "bf16": args.bf16,
        "compile": args.compile,
        "fsdp": args.fsdp,
        "prototypes": args.prototypes,
        "crops": [int(batch["global_crops"].shape[-1]), int(batch["local_crops"].shape[-1])]
        + ([gram_size] if gram_size else []),
        "step_s": round(median["full_step"], 4),
        "images_per_s": round(images / median["full_step"], 2),
        "step_plain_s": round(median["step_plain"], 4),
        "plain_over_fused": round(median_ratio("full_step", "step_plain"), 3),
        **{f"{name}_s": round(median[name], 4) for name in median if name.startswith("step_gram")},
    }
    if "floor" in median:
        out["floor_s"] = round(median["floor"], 4)
        out["ratio"] = round(median_ratio("floor"), 3)
        out["floor_wanted_s"] = round(median["floor_wanted"], 4)
        out["ratio_to_floor_wanted"] = round(median_ratio("floor_wanted"), 3)
    out["step_tflop"] = round(step_flops / 1e12, 3)
    out["achieved_tflops"] = round(step_flops / median["full_step"] / 1e12, 2)
    if args.peak_tflops:
        out["mfu"] = round(step_flops / median["full_step"] / (args.peak_tflops * 1e12), 3)
    if args.compile:  # whether the blocks ran compiled: graphs made, frames compiled or not
        from torch._dynamo.utils import counters

        out["compiled_graphs"] = counters["stats"]["unique_graphs"]
        out["dynamo_frames"] = dict(counters["frames"])
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
