"""Pretrain a brain-MRI ViT with DINOv3-style self-distillation.

    accelerate launch pretrain/run.py --config configs/pretrain/vitb16.yaml data.shards=DIR
    python pretrain/run.py --config tiny data.shards=DIR run.out=runs/tiny   # one CPU process

The command line lives in ``braindino.ssl.cli`` (also ``braindino pretrain``); ``--help`` says
how overrides, resuming and interruption work.
"""

from __future__ import annotations

from braindino.cli import run_cli
from braindino.ssl.cli import pretrain_main

if __name__ == "__main__":
    run_cli(pretrain_main)
