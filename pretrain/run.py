"""Pretrain a brain-MRI ViT with DINOv3-style self-distillation.

    accelerate launch pretrain/run.py --config configs/pretrain/vitb16.yaml data.shards=DIR
    python pretrain/run.py --config tiny data.shards=DIR run.out=runs/tiny   # one CPU process

Any ``key=value`` after the options overrides the merged config (see configs/pretrain/default.yaml).
"""

from __future__ import annotations

import argparse

from braindino.cli import run_cli


def main() -> int:
    """Parse arguments, merge the config, and train."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
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
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()

    from braindino.config import load_config
    from braindino.ssl.trainer import pretrain

    dotlist = list(args.overrides)
    if args.resume is not None:
        dotlist.append(f"run.resume={args.resume}")
    cfg = load_config("pretrain/default", args.config, dotlist)
    status = pretrain(cfg)
    print(f"pretraining {status}: {cfg.run.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
