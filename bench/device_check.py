"""Numerical checks on the device users train on: run by ``bench/gpu_check.sh`` on a GPU (and by
the suite on the CPU, with a micro model, to keep it working).

1. ``partial_block``: the last block run on the wanted tokens only (padded ragged queries) against
   the full block on the same input: CLS, kept patch tokens and every gradient, fp32 and bf16.
2. ``fused_vs_plain``: one step's loss terms and gradients with ``run.fused`` on and off, fp32 and
   bf16 (the fused losses never build the ``[rows, K]`` logits).
3. ``bf16_vs_fp32``: a few training steps from the same weights on the same batches, in bf16
   autocast and in fp32: the losses of each step.

Errors are ``||a - b|| / ||b||`` over all compared values; fp32 runs with TF32 off. The tolerances
(``TOLERANCE``) follow the precision: fp32 reorders sums only (1e-5 for values, 1e-4 for
gradients through 65,536 prototypes); bf16 keeps 8 bits of mantissa (3e-2); the bf16-vs-fp32 step
losses within 2e-2. Prints one JSON line per check and exits 1 when any fails.

    python bench/device_check.py --device cuda --arch vit_base_patch16_dinov3 --batch 16
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

import torch
from pretrain_bench import bench_config, make_batch  # bench/ is on sys.path as a script
from torch import nn

from braindino.models import create_backbone
from braindino.ssl.build import build_meta_arch, build_optimizer
from braindino.ssl.param_groups import apply_schedule_values

TOLERANCE = {
    ("fp32", "values"): 1e-5,
    ("fp32", "grads"): 1e-4,
    ("bf16", "values"): 3e-2,
    ("bf16", "grads"): 3e-2,
    "steps": 2e-2,
}


def relative_error(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """``||got - want|| / ||want||`` over all the pairs, in float64; NaN anywhere gives inf."""
    got, want = [g.detach().double() for g in got], [w.detach().double() for w in want]
    num = sum(float((g - w).square().sum()) for g, w in zip(got, want))
    den = sum(float(w.square().sum()) for w in want)
    err = (num / max(den, 1e-300)) ** 0.5
    return err if err == err else float("inf")


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _report(check: str, precision: str, errors: dict[str, float], tolerances: dict) -> bool:
    ok = all(errors[k] <= tolerances[k] for k in errors)
    line = {"check": check, "precision": precision, "ok": ok}
    line.update({f"{k}_rel_err": float(f"{v:.3g}") for k, v in errors.items()})
    line.update({f"{k}_tolerance": tolerances[k] for k in errors})
    print(json.dumps(line), flush=True)
    return ok


def check_partial_block(arch: str, batch: int, size: int, device: torch.device) -> bool:
    """The last block on the kept tokens only equals the full block on those tokens."""
    torch.manual_seed(0)
    model = create_backbone(arch, drop_path_rate=0.0).to(device).train()
    with torch.no_grad():  # LayerScale away from its 1e-5 init, so the last block's MLP counts
        model.mask_token.normal_()
        for block in model.vit.blocks:
            for p in block.parameters():
                if p.ndim == 1 and p.shape[0] == model.embed_dim:
                    p.normal_(0.0, 0.3)
    n_patches = (size // model.patch_size[0]) ** 2
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, size, size, generator=gen).to(device)
    masks = (torch.rand(batch, n_patches, generator=gen) < 0.3).to(device)
    keep = torch.rand(batch, n_patches, generator=gen) < 0.3
    keep[0] = False  # an image with no wanted patch (a local crop)
    keep = keep.to(device)
    weight = torch.randn(model.embed_dim, generator=gen).to(device)
    ok = True
    for precision in ("fp32", "bf16"):
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        outs, grads = [], []
        for kwargs in ({}, {"keep_patches": keep}):
            model.zero_grad(set_to_none=True)
            with amp:
                out = model.forward_features(x, masks=masks, **kwargs)
                patches = out["patches"] if kwargs else out["patches"][keep]
                loss = (out["cls"].float() @ weight).sin().sum()
                loss = loss + (patches.float() @ weight).cos().sum()
            loss.backward()
            outs.append([out["cls"].float(), patches.float()])
            grads.append(_grads(model))
        (full, part), (g_full, g_part) = outs, grads
        names = sorted(g_full)
        errors = {
            "values": relative_error(part, full),
            "grads": relative_error([g_part[n] for n in names], [g_full[n] for n in names]),
        }
        tol = {k: TOLERANCE[(precision, k)] for k in errors}
        ok &= _report("partial_block", precision, errors, tol) and set(g_part) == set(g_full)
    return ok


def _meta(arch: str, prototypes: int, size: int, device: torch.device) -> tuple:
    local = max(size * 3 // 7 // 16 * 16, 16)  # the recipe's 96 at 224, a multiple of 16
    cfg = bench_config(arch, prototypes, size, local)
    torch.manual_seed(0)
    return cfg, build_meta_arch(cfg).to(device)


def _batch(cfg, batch: int, device: torch.device, seed: int) -> dict:
    torch.manual_seed(seed)
    return make_batch(cfg, batch, device, source=max(256, int(cfg.augment.global_crops.size)))


def check_fused_vs_plain(
    arch: str, prototypes: int, batch: int, size: int, device: torch.device
) -> bool:
    """One step's loss terms and gradients, ``run.fused`` on vs off, on the same batch."""
    cfg, meta = _meta(arch, prototypes, size, device)
    data = _batch(cfg, batch, device, seed=3)
    ok = True
    for precision in ("fp32", "bf16"):
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        results = []
        for fused in (True, False):
            meta.fused = fused
            meta.student.zero_grad(set_to_none=True)
            with amp:
                total, logs = meta.losses(data, teacher_temp=0.07)
            total.backward()
            terms = {k: v.detach().float() for k, v in logs.items() if k.startswith("loss/")}
            results.append((total.detach().float(), terms, _grads(meta.student)))
        (t_f, l_f, g_f), (t_p, l_p, g_p) = results
        names = sorted(g_p)
        errors = {
            "values": relative_error([t_f, *(l_f[k] for k in l_p)], [t_p, *l_p.values()]),
            "grads": relative_error([g_f[n] for n in names], [g_p[n] for n in names]),
        }
        tol = {k: TOLERANCE[(precision, k)] for k in errors}
        ok &= _report("fused_vs_plain", precision, errors, tol) and set(g_f) == set(g_p)
    meta.fused = True
    return ok


def check_bf16_steps(
    arch: str, prototypes: int, batch: int, size: int, device: torch.device, steps: int
) -> bool:
    """``steps`` AdamW steps from the same weights on the same batches, bf16 vs fp32."""
    cfg, meta_fp32 = _meta(arch, prototypes, size, device)
    meta_bf16 = copy.deepcopy(meta_fp32)
    batches = [_batch(cfg, batch, device, seed=10 + i) for i in range(steps)]
    losses: dict[str, list[torch.Tensor]] = {}
    for precision, meta in (("fp32", meta_fp32), ("bf16", meta_bf16)):
        optimizer = build_optimizer(cfg, meta)
        apply_schedule_values(optimizer, 1e-4, 0.04)
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        for data in batches:
            with amp:
                total, _ = meta.losses(data, teacher_temp=0.07)
            total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            meta.update_teacher(0.996)
            losses.setdefault(precision, []).append(total.detach().float().reshape(1))
    error = relative_error(losses["bf16"], losses["fp32"])
    tol = {"losses": TOLERANCE["steps"]}
    line_ok = _report("bf16_vs_fp32", f"{steps} steps", {"losses": error}, tol)
    print(
        json.dumps(
            {
                "check": "bf16_vs_fp32_losses",
                **{p: [round(float(v), 5) for v in vals] for p, vals in losses.items()},
            }
        )
    )
    return line_ok


def main() -> None:
    """Run the three checks and exit 1 when any fails."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="vit_micro_patch16_dinov3")
    parser.add_argument("--prototypes", type=int, default=65536)
    parser.add_argument("--batch", type=int, default=16, help="global crops per step")
    parser.add_argument("--size", type=int, default=224, help="global crop side (px)")
    parser.add_argument("--steps", type=int, default=3, help="steps of the bf16-vs-fp32 check")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the fp32 checks
    torch.backends.cudnn.allow_tf32 = False
    results = [
        check_partial_block(args.arch, args.batch, args.size, device),
        check_fused_vs_plain(args.arch, args.prototypes, args.batch, args.size, device),
        check_bf16_steps(args.arch, args.prototypes, args.batch, args.size, device, args.steps),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
