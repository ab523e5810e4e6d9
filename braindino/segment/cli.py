"""The command line of ``downstream/segment.py``: arguments -> ``SegmentOptions`` -> run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from braindino.cli import prog_name
from braindino.downstream.cli import add_run_arguments, key_values, list_values
from braindino.segment.model import HEADS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``downstream/segment.py``."""
    parser = argparse.ArgumentParser(
        prog=prog_name("downstream/segment.py"),
        description="Tumour / lesion segmentation over a frozen encoder: modalities mixed by a "
        "learned 1x1 conv, features of several blocks, a light x16 decoder (and the linear-probe "
        "baseline), trained on axial slices (Dice + cross-entropy, foreground oversampling, MRI "
        "augmentation), selected on validation; predictions written in each case's original "
        "image space, per-case Dice/HD95, bootstrap CIs and a report. "
        "Example: python downstream/segment.py --task brats2021",
    )
    add_run_arguments(
        parser,
        "brats2021",
        "brats2021, brats2023_gli, brats2023_men, brats2023_met, brats2024_goat, atlas_lesion or "
        "a YAML (default brats2021)",
    )
    parser.add_argument(
        "--head", action="append", help=f"head(s): {', '.join(HEADS)} (default both)"
    )
    parser.add_argument(
        "--blocks", help="encoder blocks for the decoder, e.g. 2,5,8,11 (default 4 evenly spaced)"
    )
    parser.add_argument("--width", type=int, default=128, help="decoder width (default 128)")
    parser.add_argument("--epochs", type=int, default=20, help="max epochs (default 20)")
    parser.add_argument("--steps-per-epoch", type=int, help="default: training slices / batch")
    parser.add_argument("--batch-size", type=int, default=16, help="slices per step (16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="head learning rate (1e-3)")
    parser.add_argument(
        "--unfreeze-encoder",
        action="store_true",
        help="also train the encoder (off by default; reported)",
    )
    parser.add_argument(
        "--encoder-lr",
        type=float,
        default=1e-5,
        help="encoder learning rate with --unfreeze-encoder (1e-5)",
    )
    parser.add_argument(
        "--foreground-fraction",
        type=float,
        default=0.5,
        help="share of batch slices drawn from labelled slices (0.5)",
    )
    parser.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    parser.add_argument("--patience", type=int, default=10, help="early-stop epochs (10)")
    parser.add_argument(
        "--no-predictions",
        action="store_true",
        help="do not write prediction NIfTIs (no overlays either)",
    )
    parser.add_argument("--cache", help="prepared-slice store (default ~/.cache/braindino/segment)")
    return parser


def parse_options(argv: Sequence[str] | None = None):
    """``SegmentOptions`` from command-line arguments."""
    from braindino.segment.options import SegmentOptions

    args = build_parser().parse_args(argv)
    return SegmentOptions(
        task=args.task,
        encoder=args.encoder,
        data_root=args.data_root,
        out=args.out,
        label_fractions=list_values(args.label_fraction, float, "--label-fraction") or None,
        seeds=list_values(args.seeds, int, "--seeds") or [0],
        compare=list_values(args.compare, str, "--compare"),
        heads=list_values(args.head, str, "--head") or list(HEADS),
        blocks=list_values([args.blocks] if args.blocks else None, int, "--blocks") or None,
        width=args.width,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        unfreeze_encoder=args.unfreeze_encoder,
        encoder_lr=args.encoder_lr,
        foreground_fraction=args.foreground_fraction,
        augment=not args.no_augment,
        patience=args.patience,
        bootstrap=args.bootstrap,
        save_predictions=not args.no_predictions,
        overrides=list(args.set),
        preprocess=key_values(args.preprocess, "--preprocess"),
        cache=args.cache,
        progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``downstream/segment.py``; prints where the report is."""
    from braindino.segment.runner import run_segmentation

    metrics = run_segmentation(parse_options(argv))
    print(f"report: {metrics['out']}/report.md")
    return 0
