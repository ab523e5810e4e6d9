"""Export a pretraining run's EMA-teacher backbone: model.safetensors (timm keys) + config.json.

    python pretrain/export.py runs/stage2 exports/braindino_vitb16

The command line lives in ``braindino.ssl.cli`` (also ``braindino export``).
"""

from __future__ import annotations

from braindino.cli import run_cli
from braindino.ssl.cli import export_main

if __name__ == "__main__":
    run_cli(export_main)
