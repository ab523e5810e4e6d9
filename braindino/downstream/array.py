"""A downstream sweep as a job array: one cell per (task, label fraction, seed).

``slurm/downstream.sbatch`` runs cell ``$SLURM_ARRAY_TASK_ID`` of the grid with
``python -m braindino.downstream.array --index I --tasks ... --out ROOT [script args]``; each cell
writes its own run folder ``ROOT/<task>/fraction-<f>_seed-<s>`` and ``downstream/collect.py ROOT``
gathers them into one table. The script (classify, regress, survival, knn) follows from the task's
target. ``--count`` prints the number of cells, i.e. the ``--array=0-(count-1)`` to ask for.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from braindino.downstream.cli import list_values
from braindino.errors import ConfigError


@dataclass(frozen=True)
class Cell:
    """One array element: a task at one label fraction and one seed."""

    task: str
    fraction: float | None
    seed: int

    def folder(self) -> str:
        """The cell's run folder name under the sweep root."""
        fraction = "default" if self.fraction is None else f"{self.fraction:g}"
        return f"{self.task}/fraction-{fraction}_seed-{self.seed}"


def grid(tasks: Sequence[str], fractions: Sequence[float], seeds: Sequence[int]) -> list[Cell]:
    """Every (task, fraction, seed), task-major; no fractions = each task's own default list."""
    if not tasks or not seeds:
        raise ConfigError(
            "the sweep needs at least one task and one seed",
            path="--tasks/--seeds",
            fix="pass e.g. --tasks adni,brain_age --seeds 0,1",
        )
    levels: list[float | None] = list(fractions) or [None]
    return [Cell(t, f, s) for t in tasks for f in levels for s in seeds]


def script_of(task: str, overrides: Sequence[str] = ()) -> str:
    """The downstream script that runs ``task`` (from its target type and head)."""
    from braindino.downstream.options import SCRIPTS
    from braindino.tasks import load_task

    config = load_task(task, list(overrides) or None)
    if str(config.head) == "knn":
        return "knn"
    return next(s for s, targets in SCRIPTS.items() if config.target in targets)


def cell_argv(cell: Cell, root: Path, extra: Sequence[str]) -> list[str]:
    """The downstream script arguments of one cell (``extra`` passed through)."""
    argv = ["--task", cell.task, "--seeds", str(cell.seed), "--out", str(root / cell.folder())]
    if cell.fraction is not None:
        argv += ["--label-fraction", f"{cell.fraction:g}"]
    return argv + list(extra)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m braindino.downstream.array",
        description="Run one cell of a tasks x label fractions x seeds downstream sweep (the "
        "job-array element of slurm/downstream.sbatch). Arguments it does not know go to the "
        "downstream script, e.g. --encoder, --epochs, --set.",
    )
    parser.add_argument("--tasks", action="append", required=True, help="task names, comma list")
    parser.add_argument("--label-fraction", action="append", help="fractions (default: task's)")
    parser.add_argument("--seeds", action="append", help="seeds, comma list (default 0)")
    parser.add_argument("--out", help="sweep root; one run folder per cell below it")
    parser.add_argument("--index", type=int, help="the cell to run (0-based)")
    parser.add_argument("--count", action="store_true", help="print the number of cells and stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one cell (or print the cell count); returns the exit status."""
    args, extra = _parser().parse_known_args(argv)
    cells = grid(
        list_values(args.tasks, str, "--tasks"),
        list_values(args.label_fraction, float, "--label-fraction"),
        list_values(args.seeds, int, "--seeds") or [0],
    )
    if args.count:
        print(len(cells))
        return 0
    if args.index is None or not 0 <= args.index < len(cells) or not args.out:
        raise ConfigError(
            f"need --out and --index in 0..{len(cells) - 1} (the grid has {len(cells)} cells)",
            path="--index",
            fix=f"submit with --array=0-{len(cells) - 1} (SLURM_ARRAY_TASK_ID is the index)",
        )
    from braindino.downstream.cli import main as run_script

    cell = cells[args.index]
    script = script_of(cell.task)
    argv = cell_argv(cell, Path(args.out), extra)
    print(f"cell {args.index}/{len(cells)}: downstream/{script}.py {' '.join(argv)}", flush=True)
    return run_script(script, argv)


if __name__ == "__main__":
    import sys

    from braindino.cli import run_cli

    run_cli(lambda: main(sys.argv[1:]))
