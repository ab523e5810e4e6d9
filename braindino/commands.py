"""The ``braindino`` command: every tool of the project under one name, for an installed package.

    braindino prepare --out shards/ /data/IXI          # = python pretrain/prepare.py ...
    braindino classify --task adni                       # = python downstream/classify.py ...
    braindino COMMAND --help

Each subcommand runs the same command line as its script in the checkout (``pretrain/``,
``downstream/``, ``python -m braindino.X``); ``accelerate launch pretrain/run.py`` and the SLURM
scripts keep using the scripts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

#: name -> (module, function, extra positional arguments, one line of help)
COMMANDS: dict[str, tuple[str, str, tuple, str]] = {
    "check": ("braindino.check", "main", (), "per volume: orientation, spacing, shape, problems"),
    "synth": ("braindino.synth.__main__", "main", (), "write the synthetic cohort"),
    "prepare": ("braindino.data.cli", "main", (), "volumes -> slice shards for pretraining"),
    "pretrain": ("braindino.ssl.cli", "pretrain_main", (), "DINOv3-style pretraining"),
    "export": ("braindino.ssl.cli", "export_main", (), "a run's teacher backbone -> encoder"),
    "classify": ("braindino.downstream.cli", "main", ("classify",), "classification tasks"),
    "regress": ("braindino.downstream.cli", "main", ("regress",), "regression tasks"),
    "survival": ("braindino.downstream.cli", "main", ("survival",), "survival tasks (Cox)"),
    "knn": ("braindino.downstream.cli", "main", ("knn",), "k-NN evaluation"),
    "segment": ("braindino.downstream.cli", "main", ("segment",), "segmentation tasks"),
    "analyze": ("braindino.analysis.cli", "main", (), "representation analyses, dense probes"),
    "collect": ("braindino.downstream.collect", "collect_main", (), "join a sweep's runs"),
    "demo": ("braindino.demo", "main", (), "the whole pipeline on the synthetic cohort"),
}


def usage() -> str:
    """The command list ``braindino`` prints without a (known) subcommand."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {entry[3]}" for name, entry in COMMANDS.items()]
    return "usage: braindino COMMAND [ARGS...] (braindino COMMAND --help)\n\n" + "\n".join(lines)


def command(name: str) -> Callable[[], int | None]:
    """The function running subcommand ``name`` on ``sys.argv[1:]``."""
    module, function, extra, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), function)
    return lambda: target(*extra)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``braindino`` console script."""
    from braindino.cli import run_cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        known = not args or args[0] in ("-h", "--help")
        print(usage() if known else f"unknown command '{args[0]}'\n{usage()}", file=sys.stderr)
        sys.exit(0 if known else 2)
    name, rest = args[0], args[1:]
    sys.argv = [f"braindino {name}", *rest]  # argparse names the subcommand in its usage line
    run_cli(command(name))


if __name__ == "__main__":
    main()
