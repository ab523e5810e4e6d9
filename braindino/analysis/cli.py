"""The command line of ``downstream/analyze.py`` (``braindino analyze``): flags ->
``AnalyzeOptions`` -> ``run_analysis``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from braindino.analysis.options import ANALYSES, PROBE_NAMES, AnalyzeOptions
from braindino.cli import prog_name
from braindino.downstream.cli import (
    default_of,
    given,
    key_values,
    list_values,
    same_name_flags,
)

EPILOG = """examples:
  python downstream/analyze.py --encoder demo_out/encoder            # probes + maps, vs its twin
  python downstream/analyze.py --encoder random:vit_micro_patch16_dinov3 --analyses probe
  python downstream/analyze.py --encoder ENC --task adni --volumes 24  # maps of a task's scans
  python downstream/analyze.py --encoder ENC --folder /data/scans --analyses pca,attention
"""


def _default(name: str):
    return default_of(AnalyzeOptions, name)


def build_parser() -> argparse.ArgumentParser:
    """The analyze command's argument parser (defaults from ``AnalyzeOptions``)."""
    parser = argparse.ArgumentParser(
        prog=prog_name("downstream/analyze.py"),
        description="Representation analyses of a frozen encoder beside its random-init twin: "
        "dense linear probes of patch tokens (tissue, tumour sub-region; with a position-only "
        "baseline), PCA and attention maps, slice retrieval, embedding maps; one report "
        "(report.md, metrics.json, plots/).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--encoder", help="export folder, random:<arch> or timm name (default: demo_out/encoder)")
    add(
        "--compare",
        action="append",
        help="encoders beside it, comma list (default: random, "
        "the encoder's random-init twin; 'none' for no baseline)",
    )
    add("--task", help="maps of this task's manifest (default: the dense probes' subjects)")
    add("--data-root", help="the task's dataset folder or CSV (default: synthetic cohort)")
    add("--folder", help="maps of the volumes under this folder instead of a task")
    add("--out", help="report folder (default runs/analyze)")
    add("--analyses", help=f"comma list of {', '.join(ANALYSES)} (default all)")
    add("--probes", help=f"dense probes, comma list of {', '.join(PROBE_NAMES)} (default both)")
    add(
        "--probe-subjects",
        type=int,
        help=f"synthetic subjects per probe, half tested ({_default('probe_subjects')})",
    )
    add("--probe-slices", type=int, help=f"slices per subject ({_default('probe_slices')})")
    add("--scales", help="slice enlargement factors, comma list (default 1,2)")
    add("--shift", type=int, help=f"max whole-patch shift per side ({_default('shift')})")
    add("--tissue-modality", help=f"tissue probe sequence ({_default('tissue_modality')})")
    add("--tumour-modality", help=f"tumour probe sequence ({_default('tumour_modality')})")
    add(
        "--tumour-task",
        help="tumour probe on this segmentation task's cases (e.g. brats2021) "
        "instead of in-memory synthetic ones",
    )
    add("--tumour-root", help="--tumour-task's release folder (default: its synthetic stand-in)")
    add("--volumes", type=int, help=f"volumes in the maps ({_default('volumes')})")
    add("--show", type=int, help=f"slices shown in PCA/attention/retrieval ({_default('show')})")
    add("--neighbours", type=int, help=f"retrieved slices per query ({_default('neighbours')})")
    add("--bootstrap", type=int, help=f"CI resamples ({_default('bootstrap')})")
    add("--seed", type=int, help=f"split, shift and bootstrap seed ({_default('seed')})")
    add("--set", action="append", default=[], help="task config override key=value")
    add("--preprocess", action="append", default=[], help="preprocessing override key=value")
    add("--quiet", action="store_true", help="no progress output")
    return parser


def _words(value: str | None) -> list[str] | None:
    return None if value is None else [w.strip() for w in value.split(",") if w.strip()]


def parse_options(argv: Sequence[str] | None = None) -> AnalyzeOptions:
    """``AnalyzeOptions`` from the command line (flags not given keep their defaults)."""
    args = build_parser().parse_args(argv)
    compare = [w for value in args.compare or [] for w in _words(value) or []]
    chosen = same_name_flags(args, AnalyzeOptions)
    chosen.update(  # the flags that are not an option field as they are
        analyses=_words(args.analyses),
        probes=_words(args.probes),
        scales=list_values([args.scales], int, "--scales") if args.scales else None,
        compare=([] if compare == ["none"] else compare) if args.compare else None,
        overrides=list(args.set),
        preprocess=key_values(args.preprocess, "--preprocess"),
        progress=not args.quiet,
    )
    return AnalyzeOptions(**given(chosen))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``downstream/analyze.py``; prints where the report is."""
    from braindino.analysis.run import run_analysis

    options = parse_options(argv)
    run_analysis(options)
    print(f"report: {options.out or 'runs/analyze'}/report.md")
    return 0
