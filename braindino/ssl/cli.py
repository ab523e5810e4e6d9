"""The pretraining command lines: ``pretrain`` (``pretrain/run.py``, ``braindino pretrain``) and
``export`` (``pretrain/export.py``, ``braindino export``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from braindino.cli import prog_name

PRETRAIN_HELP = """Pretrain a brain-MRI ViT with DINOv3-style self-distillation.

    accelerate launch pretrain/run.py --config configs/pretrain/vitb16.yaml data.shards=DIR
    python pretrain/run.py --config tiny data.shards=DIR run.out=runs/tiny   # one CPU process

Any ``key=value`` overrides the merged config (see configs/pretrain/default.yaml); options and
overrides may come in any order. A run folder is used by one trainer at a time and resumes
automatically. SIGTERM, SIGUSR1 or Ctrl-C make the run checkpoint and exit with status 75 (run
the same command to continue); Ctrl-C twice stops at once, without a checkpoint (status 130).
"""

EXPORT_HELP = """Export a pretraining run's EMA-teacher backbone: model.safetensors (timm keys) and
config.json.

    braindino export runs/stage2 exports/braindino_vitb16

Load it with ``braindino.load_encoder(OUT)``, or with timm:
``timm.create_model(<timm_name>, pretrained=True,
pretrained_cfg_overlay=dict(file=OUT/model.safetensors), **timm_kwargs)`` with the names that
config.json records.
"""


def _parser(script: str, description: str) -> argparse.ArgumentParser:
    formatter = argparse.RawTextHelpFormatter
    return argparse.ArgumentParser(
        prog=prog_name(script), description=description, formatter_class=formatter
    )


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """Parse the pretraining arguments, merge the config, and train (75: interrupted, resumable)."""
    parser = _parser("pretrain/run.py", PRETRAIN_HELP)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="override YAML (repeatable), e.g. configs/pretrain/vitb16.yaml",
    )
    parser.add_argument(
        "--resume",
        default=None,
        help="auto | never | a checkpoint or run folder (default: run.resume)",
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume although the config differs from the checkpoint's\n"
        "(recorded in log.txt); without it that is refused, naming the keys",
    )
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_intermixed_args(argv)

    from braindino.config import load_config
    from braindino.engine.signals import EXIT_INTERRUPTED
    from braindino.ssl.trainer import pretrain

    dotlist = list(args.overrides)
    if args.resume is not None:
        dotlist.append(f"run.resume={args.resume}")
    cfg = load_config("pretrain/default", args.config, dotlist)
    status = pretrain(cfg, allow_config_change=args.allow_config_change)
    if status == "interrupted":
        print(f"pretraining interrupted, checkpointed: {cfg.run.out} (run again to continue)")
        return EXIT_INTERRUPTED
    print(f"pretraining {status}: {cfg.run.out}")
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    """Parse the export arguments and write the encoder folder."""
    parser = _parser("python pretrain/export.py", EXPORT_HELP)
    parser.add_argument("run", help="run folder (its latest checkpoint) or a checkpoint file")
    parser.add_argument("out", help="output folder")
    args = parser.parse_args(argv)
    from braindino.ssl.export import export_run

    out = export_run(args.run, args.out)
    print(f"exported encoder to {out}")
    return 0
