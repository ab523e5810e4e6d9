"""Evidence that pretraining gives patch tokens tissue information a random ViT lacks (protocol 7).

Run by ``make evidence`` (``BRAINDINO_EVIDENCE=1``; about 3 minutes on 2 cores); a plain
``pytest`` reports it as skipped.

Protocol 7 of ``bench/RESULTS.md``, fixed (and committed) before the run that confirmed it, on a
cohort seed no earlier run had seen (8; development on seeds 6 and 7 with
``bench/dense_evidence_dev.py``): ``configs/pretrain/tiny.yaml`` trains unchanged (240
iterations) on a 60-subject healthy pool; 60 synthetic IXI-like T1 heads (seeded 8, never
pretrained on), 6 evenly spread axial slices each, every slice padded by 2 patches and placed at
a random whole-patch offset; per patch token the majority tissue (background / CSF / GM / WM); a
standardised, class-balanced logistic regression with C = 0.01 trained on half the subjects,
balanced accuracy on the other half. Claim: the pretrained teacher beats the better of two
random initialisations by at least ``MARGIN``; the position-only baseline stays more than
``POSITION_GAP`` below the teacher (the probe is not solved by grid position); the teacher-target
entropy stays within ``ENTROPY_BAND`` of log K (no collapse).
"""

from __future__ import annotations

import json
import os

import pytest

from braindino.analysis import paired_probe_difference
from braindino.analysis.dense_scorer import DenseScorer, tissue_cases
from braindino.config import load_config
from braindino.demo import pool_shards
from braindino.ssl.compare import entropy_range, pretrain_and_compare, random_init_backbone

pytestmark = pytest.mark.skipif(
    os.environ.get("BRAINDINO_EVIDENCE") != "1",
    reason="pretraining evidence (about 3 minutes): run `make evidence`",
)

SEED = 8
TISSUE_SUBJECTS = 60
SLICES = 6
PROBE_C = 0.01
MARGIN = 0.015
POSITION_GAP = 0.2
ENTROPY_BAND = (0.1, 0.95)
RANDOM_SEEDS = (12345, 1)


def test_pretrained_patch_tokens_beat_random_init_on_the_dense_tissue_probe(tmp_path):
    shards = pool_shards(tmp_path, SEED)
    cfg = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        [f"data.shards={shards}", f"run.out={tmp_path / 'run'}", "run.progress=false"],
    )
    cases = tissue_cases(random_init_backbone(cfg, 0), TISSUE_SUBJECTS, SEED, SLICES)
    scorer = DenseScorer(cases, seed=SEED, c=PROBE_C, train_fraction=0.5)
    result = pretrain_and_compare(cfg, scorer, RANDOM_SEEDS)
    pretrained = scorer.results["pretrained"]
    paired = paired_probe_difference(pretrained, scorer.best_random(), seed=SEED)
    summary = json.dumps(
        {**result.as_dict(), "pretrained_probe": pretrained.as_dict(), "paired_95": paired}
    )
    print(f"\ndense tissue evidence (protocol 7): {summary}")

    assert result.iterations == 240
    assert len(pretrained.test_subjects) == TISSUE_SUBJECTS // 2
    low, high = entropy_range(result.entropy)
    assert ENTROPY_BAND[0] < low and high < ENTROPY_BAND[1], summary
    gain = result.gains("dense")["tissue"]
    assert gain >= MARGIN, (
        f"pretrained does not beat the best random init by {MARGIN} on the tissue probe: {summary}"
    )
    assert pretrained.balanced_accuracy[0] - pretrained.position_baseline[0] > POSITION_GAP
