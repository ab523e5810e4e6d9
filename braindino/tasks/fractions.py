"""Label scarcity: fixed-seed stratified subsets of the training subjects (1 %, 10 %, 100 % ...).

Within each stratum the training subjects are sorted, shuffled by the seed, and the first
``max(1, round(n * fraction))`` kept, so every stratum (every class) keeps at least one subject
and, for one seed, a smaller fraction's subset lies inside a larger one's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from braindino.errors import ConfigError


def label_fraction_subjects(splits: pd.DataFrame, fraction: float, seed: int = 0) -> list[str]:
    """The training subjects kept at ``fraction`` of the labels (sorted).

    ``splits``: a table with ``subject``, ``split`` and ``stratum`` (``make_splits``' output).
    """
    if not 0 < float(fraction) <= 1:
        raise ConfigError(
            f"label fraction {fraction} is not in (0, 1]",
            path="label_fraction",
            fix="use e.g. 0.01, 0.1 or 1.0",
        )
    train = splits[splits["split"] == "train"]
    strata = train["stratum"] if "stratum" in train.columns else pd.Series("all", train.index)
    rng = np.random.default_rng(seed)
    kept: list[str] = []
    for stratum in sorted(strata.astype(str).unique()):
        subjects = np.array(sorted(train.loc[strata.astype(str) == stratum, "subject"].astype(str)))
        order = subjects[rng.permutation(len(subjects))]
        count = max(1, round(len(subjects) * float(fraction)))
        kept += order[:count].tolist()
    return sorted(kept)
