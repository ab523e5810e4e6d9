"""Frozen transfer speed: slices/s encoded, and a cold vs warm-cache ``classify --task adni``.

    python bench/transfer_bench.py --encoder demo_out/encoder --cohort ~/.cache/braindino/cohort

Prints JSON lines: (1) encoding throughput of ``encode_volume`` on the task's volumes;
(2) wall time of one ``classify --task adni`` run with an empty feature cache (cold: every volume
encoded) and of a label-scarcity sweep (3 fractions x 5 seeds) on the warm cache. Goal: the warm
sweep costs less than one cold encoding pass.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--encoder", default="demo_out/encoder")
    parser.add_argument("--cohort", default=None, help="synthetic cohort (default: the cache's)")
    parser.add_argument("--task", default="adni")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from braindino.downstream import RunOptions, run_downstream
    from braindino.features import encode_volume
    from braindino.models import load_encoder
    from braindino.tasks import ensure_cohort, load_manifest, load_task

    cohort = str(args.cohort or ensure_cohort())
    encoder = load_encoder(args.encoder, map_location=args.device)
    manifest = load_manifest(load_task(args.task), cohort=cohort)
    paths = list(manifest["image"])
    start, slices = time.perf_counter(), 0
    with torch.inference_mode():
        for path in paths:
            slices += len(encode_volume(encoder, path)["cls"])
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "figure": "encode",
                "device": args.device,
                "threads": torch.get_num_threads(),
                "volumes": len(paths),
                "slices": slices,
                "seconds": round(seconds, 2),
                "slices_per_s": round(slices / seconds, 1),
            }
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        common = {"encoder": args.encoder, "cohort": cohort, "cache": f"{tmp}/cache"}
        common["progress"] = False
        start = time.perf_counter()
        run_downstream(RunOptions(args.task, out=f"{tmp}/cold", **common))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        run_downstream(
            RunOptions(
                args.task,
                out=f"{tmp}/sweep",
                label_fractions=[0.1, 0.5, 1.0],
                seeds=[0, 1, 2, 3, 4],
                **common,
            )
        )
        sweep = time.perf_counter() - start
    print(
        json.dumps(
            {
                "figure": "classify",
                "task": args.task,
                "encoder": str(Path(args.encoder)),
                "cold_single_run_s": round(cold, 1),
                "warm_sweep_15_heads_s": round(sweep, 1),
                "cold_encoding_pass_s": round(seconds, 1),
                "sweep_over_encoding": round(sweep / seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
