"""The synthetic cohort as default data: generated once, on first use, into a cache folder.

The folder is ``$BRAINDINO_CACHE/cohort`` (default ``~/.cache/braindino/cohort``); it holds every
synthetic dataset in its native layout, so tasks read it through the same adapters as real data.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from braindino.errors import ConfigError, DataError

# The size make demo uses: about 85 ADNI-like subjects, so the demo's test split holds ~17 of them
# (160 left 7, too few for its numbers to mean anything); about 4 minutes on 2 cores.
DEFAULT_SUBJECTS = 400
COHORT_FOLDER = "cohort"


def cache_dir() -> Path:
    """BrainDINO's cache folder: ``$BRAINDINO_CACHE`` or ``~/.cache/braindino``."""
    env = os.environ.get("BRAINDINO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "braindino"


def default_cohort_dir() -> Path:
    """Where the default synthetic cohort lives (it may not exist yet)."""
    return cache_dir() / COHORT_FOLDER


def ensure_cohort(
    cohort: Path | None = None,
    subjects: int | dict[str, int] = DEFAULT_SUBJECTS,
    seed: int = 0,
    **generate_options: Any,
) -> Path:
    """The synthetic cohort folder, generated (every dataset) when it is not there yet.

    ``subjects``, ``seed`` and ``generate_options`` go to ``braindino.synth.generate_cohort``
    when it has to be made (default folder: ``default_cohort_dir()``). Generation writes into a
    temporary sibling folder and renames it into place, so an interrupted or concurrent first use
    never leaves a half-written cohort behind.
    """
    cohort = Path(cohort) if cohort is not None else default_cohort_dir()
    if (cohort / "cohort.json").is_file() and (cohort / "README.md").is_file():  # complete
        return cohort
    if cohort.exists() and any(cohort.iterdir()):
        raise DataError(
            "folder exists but holds no complete synthetic cohort",
            path=cohort,
            fix="delete it to have it regenerated, or point data.root at real data",
        )
    from braindino.synth.generate import generate_cohort

    print(
        f"generating the synthetic cohort (first use; {subjects} subjects) into {cohort}",
        file=sys.stderr,
        flush=True,
    )
    cohort.parent.mkdir(parents=True, exist_ok=True)
    tmp = cohort.with_name(f".{cohort.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    options = {"baseline": False, **generate_options}
    try:
        generate_cohort(tmp, subjects=subjects, seed=seed, **options)
    except BaseException:  # a full disk, a kill: do not leave a half cohort filling the disk
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if cohort.exists():
        cohort.rmdir()  # empty (checked above)
    try:
        os.replace(tmp, cohort)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return cohort


def synthetic_root(name: str, cohort: Path | None = None) -> Path:
    """The folder of one synthetic dataset (``adni``, ``ixi`` ...); the cohort is made if needed."""
    from braindino.synth.cohort_specs import COHORTS

    if name not in COHORTS:
        raise ConfigError(
            f"data.synthetic '{name}' is not a synthetic cohort",
            path="task config",
            fix=f"use one of: {', '.join(COHORTS)}",
        )
    root = ensure_cohort(cohort)
    folder = root / COHORTS[name].folder
    if not folder.is_dir():
        made = json.loads((root / "cohort.json").read_text(encoding="utf-8")).get("subjects", {})
        raise DataError(
            f"the synthetic cohort has no {COHORTS[name].folder} folder (it holds {sorted(made)})",
            path=root,
            fix="delete the folder to regenerate every dataset, or give data.root",
        )
    return folder
