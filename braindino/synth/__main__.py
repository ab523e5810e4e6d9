"""``python -m braindino.synth --out DIR``: write the synthetic brain-MRI cohort."""

from __future__ import annotations

import argparse

from braindino.cli import prog_name
from braindino.errors import ConfigError
from braindino.synth.cohort_specs import COHORTS, task_cohorts


def _subjects(text: str) -> int | dict[str, int]:
    """``200`` (a total) or ``adni=40,ixi=30`` (per cohort)."""
    if "=" not in text:
        try:
            return int(text)
        except ValueError as exc:
            raise ConfigError(
                f"--subjects must be a number or cohort=count pairs, got '{text}'",
                path="--subjects",
                fix="e.g. --subjects 200 or --subjects adni=40,ixi=30",
            ) from exc
    counts: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            counts[name.strip()] = int(value)
        except ValueError as exc:
            raise ConfigError(
                f"--subjects: '{part}' is not cohort=count",
                path="--subjects",
                fix="e.g. --subjects adni=40,ixi=30",
            ) from exc
    return counts


def _knobs(pairs: list[str]) -> dict[str, str]:
    knobs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(
                f"--knob '{pair}' is not name=value", path="--knob", fix="e.g. --knob noise=0.05"
            )
        knobs[name.strip()] = value.strip()
    return knobs


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog=prog_name("python -m braindino.synth"),
        description="Write the synthetic brain-MRI cohort (MNI152 anatomy, real dataset layouts, "
        "ground truth, healthy pretraining pool, README with baseline numbers) into --out.",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (new, empty, or a previous cohort)"
    )
    parser.add_argument(
        "--subjects",
        type=_subjects,
        default=200,
        help="total subjects split over the cohorts (default 200), or cohort=count pairs",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same bytes)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help=f"cohorts ({', '.join(COHORTS)}) or tasks ({', '.join(sorted(task_cohorts()))}); "
        "default all",
    )
    parser.add_argument(
        "--resolution",
        type=float,
        default=2.0,
        choices=(1.0, 2.0),
        help="voxel size in mm (default 2)",
    )
    parser.add_argument(
        "--pool", type=int, default=None, help="pretraining-pool subjects (default 20%%)"
    )
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an effect strength",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the hand-crafted baseline")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the cohort, print where it went."""
    from braindino.synth.generate import generate_cohort

    args = build_parser().parse_args(argv)
    outputs = generate_cohort(
        args.out,
        subjects=args.subjects,
        seed=args.seed,
        tasks=args.tasks,
        resolution=args.resolution,
        pool_subjects=args.pool,
        knobs=_knobs(args.knob),
        workers=args.workers,
        baseline=not args.no_baseline,
        progress=not args.quiet,
    )
    total = sum(c["subjects"] for c in outputs["cohorts"].values())
    print(f"wrote {total} subjects in {len(outputs['cohorts'])} datasets to {outputs['root']}")
    print(f"read {outputs['readme']}")
    return 0


if __name__ == "__main__":
    from braindino.cli import run_cli

    run_cli(main)
