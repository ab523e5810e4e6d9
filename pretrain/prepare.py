"""Turn NIfTI/DICOM datasets into preprocessed slice shards for pretraining.

    python pretrain/prepare.py --out OUT INPUT...                 # folders, globs, CSV manifests
    python pretrain/prepare.py --out OUT --config configs/data/example.yaml [key=value ...]
    python pretrain/prepare.py --dry-run INPUT...                 # check the volumes, write nothing

Writes OUT/shards/*.u8, OUT/index/*, OUT/report.json and OUT/config.yaml. A killed run resumes
where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    """The prepare command line."""
    parser = argparse.ArgumentParser(
        prog="python pretrain/prepare.py",
        description="Preprocess brain MRI volumes into axial slice shards + index + report.",
        epilog="Dotlist overrides (key=value) apply to configs/data/default.yaml merged with "
        "--config, e.g. shards.slices_per_shard=8192 datasets.ixi.weight=2.",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="folder (searched recursively), glob, CSV/TSV manifest, volume file, or key=value",
    )
    parser.add_argument("--out", help="output folder (required unless --dry-run)")
    parser.add_argument("--config", help="data config YAML naming datasets (configs/data/X.yaml)")
    parser.add_argument("--workers", type=int, help="parallel processes (default: config, 1)")
    parser.add_argument("--strict", action="store_true", help="fail if any volume is skipped")
    parser.add_argument(
        "--dataset", default="default", help="dataset name for INPUTs (default: %(default)s)"
    )
    parser.add_argument(
        "--modality", default="auto", help="modality tag for INPUTs; auto = from file names"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only check the volumes (orientation, spacing, …)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config, and prepare (or check) the volumes."""
    from braindino.config import save_config
    from braindino.data.prepare import collect_inputs, load_prepare_config, prepare_shards
    from braindino.errors import ConfigError

    args = build_parser().parse_intermixed_args(argv)
    dotlist = [item for item in args.inputs if "=" in item and not os.path.exists(item)]
    paths = [item for item in args.inputs if item not in dotlist]
    if args.workers is not None:
        dotlist.append(f"workers={args.workers}")
    if args.strict:
        dotlist.append("strict=true")
    cfg = load_prepare_config(args.config, dotlist)
    if not args.dry_run and not args.out:
        raise ConfigError("--out is required", path="command line", fix="add --out FOLDER")
    inputs = collect_inputs(cfg, paths, args.dataset, args.modality)
    progress = not args.quiet
    if args.dry_run:
        from braindino.check import check_inputs, print_checks

        return print_checks(check_inputs(inputs, progress_bar=progress))
    save_config(cfg, f"{args.out}/config.yaml")
    report = prepare_shards(
        inputs, args.out, cfg, int(cfg.workers), progress_bar=progress, strict=bool(cfg.strict)
    )
    summary = {k: report[k] for k in ("volumes_ok", "slices", "seconds")}
    summary["volumes_skipped"] = len(report["volumes_skipped"])
    print(json.dumps(summary))
    for item in report["volumes_skipped"]:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from braindino.cli import run_cli

    run_cli(main)
