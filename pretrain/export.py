"""Export a pretraining run's EMA-teacher backbone: model.safetensors (timm keys) + config.json.

    python pretrain/export.py runs/stage2 exports/braindino_vitb16

Load it with ``braindino.load_encoder(OUT)``, or with timm:
``timm.create_model(<timm_name>, pretrained=True,
pretrained_cfg_overlay=dict(file=OUT/model.safetensors), **timm_kwargs)`` with the names that
config.json records.
"""

from __future__ import annotations

import argparse

from braindino.cli import run_cli


def main() -> int:
    """Parse arguments and export."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", help="run folder (its latest checkpoint) or a checkpoint file")
    parser.add_argument("out", help="output folder")
    args = parser.parse_args()
    from braindino.ssl.export import export_run

    out = export_run(args.run, args.out)
    print(f"exported encoder to {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
