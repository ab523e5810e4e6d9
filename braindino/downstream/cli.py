"""The shared command line of ``downstream/classify.py``, ``regress.py``, ``survival.py`` and
``knn.py``: parse arguments into ``RunOptions`` and run the protocol."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from braindino.cli import prog_name
from braindino.errors import ConfigError

EXAMPLES = {
    "classify": "adni",
    "regress": "brain_age",
    "survival": "upenn_cox",
    "knn": "knn",
}


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
    parser.add_argument("--bootstrap", type=int, default=1000, help="CI resamples (1000)")
    parser.add_argument(
        "--set", action="append", default=[], help="task config override key=value (repeatable)"
    )
    parser.add_argument(
        "--preprocess", action="append", default=[], help="preprocessing override key=value"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser(family: str) -> argparse.ArgumentParser:
    """The argument parser of one downstream script."""
    task = EXAMPLES[family]
    parser = argparse.ArgumentParser(
        prog=prog_name(f"downstream/{family}.py"),
        description=f"Frozen-encoder {family} protocol: cached slice features, fixed splits, "
        "label fractions x seeds, heads selected on validation, test metrics with 95 % CIs "
        f"and a report. Example: python downstream/{family}.py --task {task}",
    )
    add_run_arguments(parser, task, f"task name or YAML (default {task})")
    parser.add_argument("--head", help="head (mean_mlp, attention, regression, cox; task default)")
    parser.add_argument("--feature", default="cls", help="cls | patch_mean | cls+patch_mean")
    parser.add_argument("--epochs", type=int, default=50, help="max head epochs (default 50)")
    parser.add_argument("--lr", type=float, help="head learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=16, help="head batch (default 16)")
    parser.add_argument("--cache", help="feature cache (default ~/.cache/braindino/features)")
    return parser


def parse_options(family: str, argv: Sequence[str] | None = None):
    """``RunOptions`` from command-line arguments."""
    from braindino.downstream.options import RunOptions

    args = build_parser(family).parse_args(argv)
    fractions = list_values(args.label_fraction, float, "--label-fraction") or None
    compare = [c for c in list_values(args.compare, str, "--compare")]
    return RunOptions(
        task=args.task,
        family=family,
        encoder=args.encoder,
        data_root=args.data_root,
        out=args.out,
        label_fractions=fractions,
        seeds=list_values(args.seeds, int, "--seeds") or [0],
        compare=compare,
        head=args.head,
        feature=args.feature,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        bootstrap=args.bootstrap,
        overrides=list(args.set),
        preprocess=key_values(args.preprocess, "--preprocess"),
        cache=args.cache,
        progress=not args.quiet,
    )


def main(family: str, argv: Sequence[str] | None = None) -> int:
    """Run one downstream script; prints where the report is."""
    from braindino.downstream.runner import run_downstream

    options = parse_options(family, argv)
    metrics = run_downstream(options)
    print(f"report: {metrics['out']}/report.md")
    return 0
