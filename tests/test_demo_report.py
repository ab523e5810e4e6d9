"""The ``make demo`` report (braindino.demo_report): evidence rows from the frozen probes, the
dense probe and a ``classify --compare`` run, checked against scikit-learn and hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from braindino.demo_report import (
    EvidenceRow,
    classification_rows,
    dense_rows,
    probe_rows,
    write_demo_report,
)
from braindino.models import load_encoder, random_like
from braindino.ssl.probe import ProbeSet


@pytest.fixture(scope="module")
def probe_set(make_cohort):
    cohort = make_cohort({"adni": 24, "oasis": 12}, seed=2)
    return ProbeSet(cohort, ["brain_age", "diagnosis"], 64, 2, pooling="cls+patch", blocks=2)


def _binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p at 1/2, summed by hand: every outcome as unlikely as k."""
    probability = [math.comb(n, i) / 2**n for i in range(n + 1)]
    return min(1.0, sum(p for p in probability if p <= probability[k] * (1 + 1e-9)))


def test_probe_rows_score_out_of_fold_predictions_and_pair_them(probe_set):
    encoder = load_encoder("random:vit_micro_patch16_dinov3")
    twin = random_like(encoder, seed=7)
    rows = probe_rows(probe_set, encoder, twin, bootstrap=200)
    assert [r.task.split(" ")[0] for r in rows] == ["brain", "diagnosis"]
    mine, theirs = probe_set.predictions(encoder), probe_set.predictions(twin)
    scalar = probe_set.evaluate(encoder, classifier="logreg")
    for row, task in zip(rows, ("brain_age", "diagnosis")):
        labels, predicted, _ = mine[task]
        other = theirs[task][1]
        assert scalar[task] == pytest.approx(balanced_accuracy_score(labels, predicted))
        assert row.encoder[0] == pytest.approx(balanced_accuracy_score(labels, predicted))
        assert row.twin[0] == pytest.approx(balanced_accuracy_score(labels, other))
        assert row.difference[0] == pytest.approx(row.encoder[0] - row.twin[0])
        assert row.difference[1] <= row.difference[0] <= row.difference[2]
        right, right_twin = predicted == labels, other == labels
        only_mine, only_twin = int(np.sum(right & ~right_twin)), int(np.sum(~right & right_twin))
        expected = (
            1.0
            if only_mine + only_twin == 0
            else _binomial_two_sided(only_mine, only_mine + only_twin)
        )
        assert row.test == f"McNemar p = {expected:.3g}"


def test_verdict_reads_the_paired_interval():
    def row(low, high):
        return EvidenceRow("t", "m", (0.5, 0.4, 0.6), (0.6, 0.5, 0.7), (0.1, low, high))

    assert row(0.01, 0.2).verdict() == "pretrained better"
    assert row(-0.2, -0.01).verdict() == "random twin better"
    assert row(-0.05, 0.2).verdict() == "no clear difference"
    assert row(math.nan, 0.2).verdict() == "undefined"


def _ci(value, low, high):
    return {"value": value, "low": low, "high": high}


def test_classification_rows_take_the_full_label_fraction_per_seed():
    results = [
        {"encoder": e, "fraction": f, "seed": s, "metrics": {"macro_auc": _ci(v, v - 0.1, v + 0.1)}}
        for e, base in (("encoder", 0.7), ("random_init", 0.6))
        for f in (0.25, 1.0)
        for s, v in ((0, base + f / 10), (1, base + f / 10 + 0.01))
    ]
    paired = [
        {"baseline": "random_init", "fraction": f, "seed": s, "metric": "macro_auc",
         "difference": _ci(0.1, -0.02, 0.2), "mcnemar_p": 0.5, "delong_p": None, "n_test": 17}
        for f in (0.25, 1.0)
        for s in (0, 1)
    ]  # fmt: skip
    metrics = {"task": "adni", "head": "attention", "primary_metric": "macro_auc"}
    rows = classification_rows({**metrics, "results": results, "paired": paired})
    assert [r.task for r in rows] == [
        "adni classification (attention head), seed 0",
        "adni classification (attention head), seed 1",
    ]
    assert rows[1].encoder[0] == pytest.approx(0.81) and rows[1].twin[0] == pytest.approx(0.71)
    assert rows[0].test == "McNemar p = 0.5" and rows[0].measure == "macro_auc on 17 test subjects"
    assert classification_rows({**metrics, "results": [], "paired": []}) == []


def test_dense_rows_and_the_report_lead_with_the_evidence(tmp_path):
    record = {
        "probe": "tissue",
        "scale": 1,
        "classes": ["background", "CSF", "GM", "WM"],
        "grid": [8, 8],
        "test_subjects": ["a", "b"],
        "position_baseline": _ci(0.3, 0.2, 0.4),
    }
    analysis = {
        "dense_probes": [
            {**record, "encoder": "encoder", "balanced_accuracy": _ci(0.9, 0.85, 0.95)},
            {
                **record,
                "encoder": "random_init",
                "balanced_accuracy": _ci(0.8, 0.75, 0.85),
                "encoder_minus_this": _ci(0.1, 0.05, 0.15),
            },
            {**record, "scale": 2, "encoder": "encoder", "balanced_accuracy": _ci(0, 0, 0)},
        ]
    }
    rows = dense_rows(analysis)
    assert len(rows) == 1 and rows[0].verdict() == "pretrained better"
    assert rows[0].encoder == (0.9, 0.85, 0.95) and "position alone: 0.300" in rows[0].measure
    flat = EvidenceRow("diagnosis", "m", (0.5, 0.4, 0.6), (0.5, 0.4, 0.6), (0.0, -0.1, 0.1))
    path = write_demo_report(
        tmp_path / "report.md", [*rows, flat], "setting", [("PCA", "analyze/plots/pca.png")]
    )
    text = path.read_text()
    assert text.index("## Evidence") < text.index("## Pictures") < text.index("![PCA]")
    assert "| 0.800 [0.750, 0.850] | 0.900 [0.850, 0.950] | 0.100 [0.050, 0.150] |" in text
    assert "**no clear difference**: diagnosis." in text


def test_demo_trains_at_its_configured_slice_size_in_both_stages(tmp_path):
    from braindino.demo import pretrain_config

    configs = [pretrain_config(tmp_path, tmp_path / "shards", tmp_path, s, 2) for s in (1, 2)]
    for cfg in configs:
        size = int(cfg.model.img_size)
        assert int(cfg.augment.global_crops.size) == size  # the shards' slice size
        assert int(cfg.augment.local_crops.size) % 16 == 0 and size % 16 == 0
    assert configs[1].model.init_from == str(tmp_path / "runs" / "stage1")
