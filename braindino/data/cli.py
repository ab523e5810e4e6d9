"""The ``prepare`` command line (``pretrain/prepare.py``, ``braindino prepare``): NIfTI/DICOM
datasets -> preprocessed slice shards for pretraining.

    braindino prepare --out OUT INPUT...                     # folders, globs, CSV manifests
    braindino prepare --out OUT --config configs/data/example.yaml [key=value ...]
    braindino prepare --dry-run INPUT...                     # check the volumes, write nothing

Writes OUT/shards/*.u8, OUT/index/*, OUT/report.json, OUT/config.yaml and OUT/prepare.json. A
killed run resumes where it stopped when started again with the same arguments; an OUT holding
shards of other inputs or settings is refused (use a new OUT, or --overwrite). Label maps, skull-on
duplicates and bundled templates are left out (by name, and label maps also by content) and listed
in report.json with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from braindino.cli import prog_name


def build_parser() -> argparse.ArgumentParser:
    """The prepare command line."""
    parser = argparse.ArgumentParser(
        prog=prog_name("python pretrain/prepare.py"),
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
        "--volume-index",
        type=int,
        default=None,
        metavar="N",
        help="volume N of 4D images (fMRI, DWI series) for INPUTs without their own "
        "(a manifest's volume_index column wins); 3D images are read as they are",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the shards in OUT even if they were prepared from other inputs/settings",
    )
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
    excluded: list[dict[str, str]] = []
    inputs = collect_inputs(cfg, paths, args.dataset, args.modality, excluded, args.volume_index)
    progress = not args.quiet
    if args.dry_run:
        from braindino.check import check_inputs, print_checks

        return print_checks(check_inputs(inputs, progress_bar=progress))
    report = prepare_shards(
        inputs,
        args.out,
        cfg,
        int(cfg.workers),
        progress_bar=progress,
        strict=bool(cfg.strict),
        overwrite=args.overwrite,
        excluded=excluded,
    )
    summary = {k: report[k] for k in ("volumes_ok", "slices", "seconds")}
    summary["volumes_skipped"] = len(report["volumes_skipped"])
    summary["files_excluded"] = len(report.get("excluded", []))
    print(json.dumps(summary))
    for item in report["volumes_skipped"]:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    if report.get("excluded"):
        print(f"left out {len(report['excluded'])} file(s) (label maps, duplicates, templates; "
              f"reasons in {args.out}/report.json)", file=sys.stderr)  # fmt: skip
    return 0
