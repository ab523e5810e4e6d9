"""The command line of every downstream script (``classify.py``, ``regress.py``,
``survival.py``, ``knn.py``, ``segment.py``): the shared arguments, the script's own ones,
parsed into ``RunOptions`` / ``SegmentOptions``, then the protocol."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

from braindino.cli import prog_name
from braindino.downstream.options import (
    ADAPTERS,
    FEATURES,
    SEGMENTATION_HEADS,
    ProtocolOptions,
    RunOptions,
    SegmentOptions,
)
from braindino.errors import ConfigError

EXAMPLES = {
    "classify": "adni",
    "regress": "brain_age",
    "survival": "upenn_cox",
    "knn": "knn",
    "segment": "brats2021",
}
LORA_NUMBERS = ("lora_rank", "lora_alpha", "lora_dropout", "adapter_lr")
SEGMENTATION_TASKS = (
    "brats2021, brats2023_gli, brats2023_men, brats2023_met, brats2024_goat, atlas_lesion"
)


def list_values(values: Sequence[str] | None, kind: type, flag: str) -> list:
    """Repeatable, comma-separated numbers (``--seeds 0,1 --seeds 2``) as a flat list."""
    out = []
    for value in values or []:
        for item in str(value).split(","):
            if not item.strip():
                continue
            try:
                out.append(kind(item))
            except ValueError as exc:
                raise ConfigError(
                    f"'{item}' is not a {kind.__name__}", path=flag, fix="pass e.g. 0.1,1.0"
                ) from exc
    return out


def key_values(values: Sequence[str] | None, flag: str) -> dict:
    """Repeatable ``key=value`` items (``--preprocess spacing=2.0``) as a dict; numbers parsed."""
    out = {}
    for item in values or []:
        if "=" not in item:
            raise ConfigError(f"'{item}' is not key=value", path=flag, fix="write key=value")
        key, value = item.split("=", 1)
        try:
            out[key] = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            out[key] = value
    return out


def add_run_arguments(parser: argparse.ArgumentParser, task: str, task_help: str) -> None:
    """The arguments every downstream script shares: task, encoder and baselines, data, run
    folder, label fractions x seeds, bootstrap, config / preprocessing overrides, quiet."""
    parser.add_argument("--task", default=task, help=task_help)
    parser.add_argument(
        "--encoder",
        help="export folder, random:<arch> or timm name (default: demo_out/encoder from make demo)",
    )
    parser.add_argument("--data-root", help="dataset folder or CSV (default: synthetic cohort)")
    parser.add_argument("--out", help="run folder (default runs/downstream/<task>-<time>)")
    parser.add_argument(
        "--label-fraction",
        action="append",
        help="fraction(s) of training labels, repeatable or comma list (default: the task's)",
    )
    parser.add_argument("--seeds", action="append", help="seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument(
        "--compare",
        nargs="?",
        const="random",
        action="append",
        help="baseline encoders on the same splits (alone: random init, the encoder's random-init "
        "twin; or a comma list of random, natural (timm's natural-image DINOv3 ViT-S/16 if "
        "available), timm names, export folders)",
    )
    parser.add_argument(
        "--bootstrap", type=int, help=f"CI resamples ({default_of(ProtocolOptions, 'bootstrap')})"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="task config override key=value (repeatable)"
    )
    parser.add_argument(
        "--preprocess", action="append", default=[], help="preprocessing override key=value"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_adapter_arguments(parser)


def default_of(options: type, name: str) -> Any:
    """The default of field ``name`` of an options dataclass: the one source of every
    command-line default (the flags default to None, meaning "the options' default")."""
    spec = {f.name: f for f in fields(options)}[name]
    return spec.default_factory() if spec.default is MISSING else spec.default  # type: ignore[misc]


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options a command line set: ``None`` (a flag not given) leaves the default."""
    return {key: value for key, value in values.items() if value is not None}


def same_name_flags(args: argparse.Namespace, options: type) -> dict[str, Any]:
    """The parsed flags named like a field of the ``options`` dataclass, as they are (a flag
    that needs converting is then set by the caller)."""
    return {f.name: getattr(args, f.name) for f in fields(options) if hasattr(args, f.name)}


def add_volume_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the volume-head scripts (classify, regress, survival, knn)."""
    parser.add_argument("--head", help="head (mean_mlp, attention, regression, cox; task default)")
    parser.add_argument(
        "--feature", help=f"{' | '.join(FEATURES)} (default {default_of(RunOptions, 'feature')})"
    )
    epochs, batch = default_of(RunOptions, "epochs"), default_of(RunOptions, "batch_size")
    parser.add_argument("--epochs", type=int, help=f"max head epochs (default {epochs})")
    parser.add_argument("--lr", type=float, help="head learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, help=f"head batch (default {batch})")
    parser.add_argument("--cache", help="feature cache (default ~/.cache/braindino/features)")


def add_adapter_arguments(parser: argparse.ArgumentParser) -> None:
    """``--adapter lora`` and its settings (classify, regress, survival, segment; knn refuses
    it: it trains nothing)."""
    lora = {name: default_of(ProtocolOptions, name) for name in LORA_NUMBERS}
    targets = ",".join(default_of(ProtocolOptions, "lora_targets"))
    parser.add_argument(
        "--adapter",
        help=f"{' | '.join(ADAPTERS)}: lora trains LoRA adapters on the encoder's blocks with "
        "the head (peft; volume heads then use no feature cache: every step encodes its "
        f"slices; default {default_of(ProtocolOptions, 'adapter')})",
    )
    parser.add_argument("--lora-rank", type=int, help=f"LoRA rank ({lora['lora_rank']})")
    parser.add_argument("--lora-alpha", type=float, help=f"LoRA alpha ({lora['lora_alpha']:g})")
    parser.add_argument(
        "--lora-dropout",
        type=float,
        help=f"dropout on the adapters' input ({lora['lora_dropout']:g})",
    )
    parser.add_argument(
        "--lora-targets",
        action="append",
        help=f"linear layers of every block to adapt, comma list ({targets}; also fc1, fc2)",
    )
    parser.add_argument(
        "--adapter-lr", type=float, help=f"adapter learning rate ({lora['adapter_lr']:g})"
    )


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``downstream/segment.py``."""
    heads = ", ".join(SEGMENTATION_HEADS)
    parser.add_argument("--head", action="append", help=f"head(s): {heads} (default both)")
    parser.add_argument(
        "--blocks", help="encoder blocks for the decoder, e.g. 2,5,8,11 (default 4 evenly spaced)"
    )
    seg = SegmentOptions(task="")  # the defaults
    parser.add_argument("--width", type=int, help=f"decoder width (default {seg.width})")
    parser.add_argument("--epochs", type=int, help=f"max epochs (default {seg.epochs})")
    parser.add_argument("--steps-per-epoch", type=int, help="default: training slices / batch")
    parser.add_argument("--batch-size", type=int, help=f"slices per step ({seg.batch_size})")
    parser.add_argument("--lr", type=float, help=f"head learning rate ({seg.lr:g})")
    parser.add_argument(
        "--unfreeze-encoder",
        action="store_true",
        help="also train the encoder (off by default; reported)",
    )
    parser.add_argument(
        "--encoder-lr",
        type=float,
        help=f"encoder learning rate with --unfreeze-encoder ({seg.encoder_lr:g})",
    )
    parser.add_argument(
        "--foreground-fraction",
        type=float,
        help=f"share of batch slices drawn from labelled slices ({seg.foreground_fraction})",
    )
    parser.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    parser.add_argument("--patience", type=int, help=f"early-stop epochs ({seg.patience})")
    parser.add_argument(
        "--no-predictions",
        action="store_true",
        help="do not write prediction NIfTIs (no overlays either)",
    )
    parser.add_argument("--cache", help="prepared-slice store (default ~/.cache/braindino/segment)")


DESCRIPTIONS = {
    "segment": "Tumour / lesion segmentation over a frozen encoder: modalities mixed by a "
    "learned 1x1 conv, features of several blocks, a light x16 decoder (and the linear-probe "
    "baseline), trained on axial slices (Dice + cross-entropy, foreground oversampling, MRI "
    "augmentation), selected on validation; predictions written in each case's original "
    "image space, per-case Dice/HD95, bootstrap CIs and a report.",
}


def build_parser(script: str) -> argparse.ArgumentParser:
    """The argument parser of one downstream script."""
    task = EXAMPLES[script]
    description = DESCRIPTIONS.get(
        script,
        f"Frozen-encoder {script} protocol: cached slice features, fixed splits, label "
        "fractions x seeds, heads selected on validation, test metrics with 95 % CIs and a "
        "report.",
    )
    parser = argparse.ArgumentParser(
        prog=prog_name(f"downstream/{script}.py"),
        description=f"{description} Example: python downstream/{script}.py --task {task}",
    )
    if script == "segment":
        add_run_arguments(parser, task, f"{SEGMENTATION_TASKS} or a YAML (default {task})")
        add_segment_arguments(parser)
    else:
        add_run_arguments(parser, task, f"task name or YAML (default {task})")
        add_volume_arguments(parser)
    return parser


def parse_options(script: str, argv: Sequence[str] | None = None) -> RunOptions | SegmentOptions:
    """``RunOptions`` (or, for ``segment``, ``SegmentOptions``) from command-line arguments."""
    args = build_parser(script).parse_args(argv)
    kind = SegmentOptions if script == "segment" else RunOptions
    chosen = same_name_flags(args, kind)
    chosen.update(  # the flags that are not an option field as they are
        label_fractions=list_values(args.label_fraction, float, "--label-fraction") or None,
        seeds=list_values(args.seeds, int, "--seeds") or None,
        compare=list_values(args.compare, str, "--compare"),
        overrides=list(args.set),
        preprocess=key_values(args.preprocess, "--preprocess"),
        progress=not args.quiet,
        lora_targets=list_values(args.lora_targets, str, "--lora-targets") or None,
    )
    if script != "segment":
        return RunOptions(**given(dict(chosen, script=script)))
    chosen.update(
        heads=list_values(args.head, str, "--head") or None,
        blocks=list_values([args.blocks] if args.blocks else None, int, "--blocks") or None,
        augment=not args.no_augment,
        save_predictions=not args.no_predictions,
    )
    return SegmentOptions(**given(chosen))


def main(script: str, argv: Sequence[str] | None = None) -> int:
    """Run one downstream script; prints where the report is."""
    from braindino.downstream.segmentation.kind import run_segmentation
    from braindino.downstream.volume import run_downstream

    options = parse_options(script, argv)
    run = run_segmentation if isinstance(options, SegmentOptions) else run_downstream
    metrics = run(options)  # type: ignore[arg-type]
    print(f"report: {metrics['out']}/report.md")
    return 0
