"""Turn NIfTI/DICOM datasets into preprocessed slice shards for pretraining.

    python pretrain/prepare.py --out OUT INPUT...                 # folders, globs, CSV manifests
    python pretrain/prepare.py --out OUT --config configs/data/example.yaml [key=value ...]
    python pretrain/prepare.py --dry-run INPUT...                 # check the volumes, write nothing

Writes OUT/shards/*.u8, OUT/index/*, OUT/report.json, OUT/config.yaml and OUT/prepare.json. A
killed run resumes where it stopped when started again with the same arguments; an OUT holding
shards of other inputs or settings is refused (use a new OUT, or --overwrite). Label maps, skull-on
duplicates and bundled templates are left out (by name, and label maps also by content) and listed
in report.json with the reason.
"""

if __name__ == "__main__":
    from braindino.cli import run_cli
    from braindino.data.cli import main

    run_cli(main)
