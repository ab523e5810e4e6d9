"""The downstream protocol scripts: run folder contents, label fractions x seeds, warm feature
cache, split hygiene (no leakage, one test evaluation per trained head), regression and survival
metrics recomputed independently from the saved predictions, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index as lifelines_cindex
from sklearn.metrics import mean_absolute_error, roc_auc_score

import braindino.downstream.volume as runner
import braindino.features.cache as feature_cache
from braindino.downstream.cli import main
from braindino.errors import BrainDinoError, ConfigError

ENCODER = "random:vit_micro_patch16_dinov3"
FAST = ["--set", "slices=8", "--preprocess", "spacing=4.0", "--preprocess", "slices.size=32",
        "--epochs", "3", "--bootstrap", "50", "--batch-size", "8", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def adni(make_cohort) -> Path:
    """A 15-subject synthetic ADNI cohort (5 per class) in its native layout."""
    return make_cohort({"adni": 15}) / "ADNI"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


def args(task: str, root: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--task", task, "--encoder", ENCODER, "--data-root", str(root), "--out", str(out),
            "--cache", str(cache), *FAST, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def adni_run(adni, cache, tmp_path_factory):
    """classify.py --task adni, 2 fractions x 2 seeds, recording encoder runs and every
    fit_head / predict call the runner makes."""
    mp = pytest.MonkeyPatch()
    calls = {"encode": 0, "fit": [], "predict": [], "test_sets": []}
    encode, fit, pred, data = (
        feature_cache.encode_volume,
        runner.fit_head,
        runner.predict,
        runner.head_data,
    )

    def count_encode(*a, **k):
        calls["encode"] += 1
        return encode(*a, **k)

    def record_data(samples, rows, targets):
        made = data(samples, rows, targets)
        if rows is record_data.test_rows:
            calls["test_sets"].append(made)
        return made

    def record_fit(head, train, val, **k):
        calls["fit"].append((train, val))
        return fit(head, train, val, **k)

    def record_predict(head, d, *a, **k):
        calls["predict"].append(d)
        return pred(head, d, *a, **k)

    split_rows = runner.split_rows

    def record_rows(manifest, target=None):
        rows = split_rows(manifest, target)
        record_data.test_rows = rows["test"]
        return rows

    mp.setattr(feature_cache, "encode_volume", count_encode)
    mp.setattr(runner, "fit_head", record_fit)
    mp.setattr(runner, "predict", record_predict)
    mp.setattr(runner, "head_data", record_data)
    mp.setattr(runner, "split_rows", record_rows)
    out = tmp_path_factory.mktemp("run") / "adni"
    argv = args("adni", adni, out, cache, "--label-fraction", "0.5,1.0", "--seeds", "0,1")
    assert main("classify", argv) == 0
    mp.undo()
    return out, calls


def test_classify_writes_every_output(adni_run):
    out, _ = adni_run
    for name in ("metrics.json", "report.md", "predictions.csv", "attention.csv", "splits.csv",
                 "config.yaml", "plots/roc_encoder.png", "plots/confusion_encoder.png",
                 "plots/attention_encoder.png", "plots/label_scarcity.png"):  # fmt: skip
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "adni" and metrics["primary_metric"] == "macro_auc"
    results = metrics["results"]
    assert {(r["fraction"], r["seed"]) for r in results} == {
        (0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)
    }  # fmt: skip
    splits = pd.read_csv(out / "splits.csv")
    n_train = int((splits["split"] == "train").sum())
    assert all(r["n_train"] < n_train for r in results if r["fraction"] == 0.5)
    assert all(r["n_train"] == n_train for r in results if r["fraction"] == 1.0)
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    proba = predictions[["proba_CN", "proba_MCI", "proba_AD"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    for r in results:
        auc = r["metrics"]["macro_auc"]
        assert auc["low"] <= auc["value"] <= auc["high"]
        part = predictions[
            (predictions["fraction"] == r["fraction"]) & (predictions["seed"] == r["seed"])
        ]
        truth = part["target"].to_numpy(int)
        p = part[["proba_CN", "proba_MCI", "proba_AD"]].to_numpy()
        expected = np.mean([roc_auc_score(truth == c, p[:, c]) for c in range(3)])
        assert auc["value"] == pytest.approx(expected, abs=1e-9)
    report = (out / "report.md").read_text()
    assert "| encoder | labels | seed |" in report and "plots/roc_encoder.png" in report
    # the report names the head, its pooling and the slices it read (FAST: slices=8)
    assert "- head: `attention` — attention over slices" in report
    assert "`cls` features of 8 slices resampled along z" in report
    assert (metrics["head"], metrics["feature"], metrics["slices"]) == ("attention", "cls", "8")
    assert "name: adni" in (out / "config.yaml").read_text()


def test_attention_weights_sum_to_one_per_subject(adni_run):
    out, _ = adni_run
    attention = pd.read_csv(out / "attention.csv", dtype={"subject": str})
    sums = attention.groupby(["encoder", "fraction", "seed", "subject"])["weight"].sum()
    n_test = int((pd.read_csv(out / "splits.csv")["split"] == "test").sum())
    assert len(sums) == 4 * n_test  # 4 heads x the test subjects
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)
    assert (attention["weight"] >= 0).all()
    assert attention.groupby(["fraction", "seed", "subject"]).size().eq(8).all()  # slices=8


def test_splits_have_no_leakage_and_test_is_evaluated_once_per_head(adni_run):
    out, calls = adni_run
    splits = pd.read_csv(out / "splits.csv", dtype={"subject": str})
    assert splits["subject"].is_unique and len(splits) == 15
    counts = splits.groupby("split").size()
    assert counts["train"] > counts["val"] >= 3 and counts["test"] >= 3  # >= 1 per class
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    test_subjects = set(splits.loc[splits["split"] == "test", "subject"])
    assert set(predictions["subject"]) == test_subjects
    assert (predictions.groupby(["fraction", "seed"]).size() == len(test_subjects)).all()
    heads = 4
    assert len(calls["fit"]) == heads and len(calls["test_sets"]) == heads
    test_ids = {id(d) for d in calls["test_sets"]}
    assert sum(id(d) in test_ids for d in calls["predict"]) == heads
    assert len(calls["predict"]) == heads  # the runner predicts on nothing but the test split
    for train, val in calls["fit"]:
        assert id(train) not in test_ids and id(val) not in test_ids
        assert len(val) == counts["val"]


def test_second_run_on_the_same_encoder_does_not_call_it(
    adni, cache, adni_run, tmp_path, monkeypatch
):
    _, cold = adni_run
    assert cold["encode"] == 15  # the cold run encoded every volume once
    calls = []
    monkeypatch.setattr(feature_cache, "encode_volume", lambda *a, **k: calls.append(a))
    argv = args("adni", adni, tmp_path / "warm", cache, "--label-fraction", "1.0", "--compare")
    assert main("classify", argv) == 0
    assert calls == []  # also the random-init baseline: same weights and settings, same entries
    metrics = json.loads((tmp_path / "warm" / "metrics.json").read_text())
    assert metrics["encoders"] == ["encoder", "random_init"]
    # the paired comparison, recomputed from predictions.csv (sklearn AUC, McNemar by hand)
    (paired,) = metrics["paired"]
    assert (paired["baseline"], paired["fraction"], paired["metric"]) == (
        "random_init",
        1.0,
        "macro_auc",
    )
    predictions = pd.read_csv(tmp_path / "warm" / "predictions.csv", dtype={"subject": str})
    runs = {e: part.sort_values("subject") for e, part in predictions.groupby("encoder")}
    proba = {e: part[["proba_CN", "proba_MCI", "proba_AD"]].to_numpy() for e, part in runs.items()}
    truth = runs["encoder"]["target"].to_numpy(int)
    auc = {
        e: np.mean([roc_auc_score(truth == c, p[:, c]) for c in range(3)]) for e, p in proba.items()
    }
    difference = paired["difference"]
    assert difference["value"] == pytest.approx(auc["encoder"] - auc["random_init"], abs=1e-9)
    assert difference["low"] <= difference["value"] <= difference["high"]
    right = {e: p.argmax(axis=1) == truth for e, p in proba.items()}
    b = int(np.sum(right["encoder"] & ~right["random_init"]))
    c = int(np.sum(~right["encoder"] & right["random_init"]))
    tail = sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c)
    assert paired["mcnemar_p"] == pytest.approx(min(1.0, 2 * tail) if b + c else 1.0)
    assert (
        "## Paired comparison with the baselines" in (tmp_path / "warm" / "report.md").read_text()
    )


def test_fractions_and_seeds_parse_as_repeatable_or_comma_lists():
    from braindino.downstream.cli import parse_options

    one = parse_options("classify", ["--label-fraction", "0.1,1", "--seeds", "0,1", "--seeds", "2"])
    two = parse_options("classify", ["--label-fraction", "0.1", "--label-fraction", "1.0"])
    assert one.label_fractions == two.label_fractions == [0.1, 1.0]
    assert one.seeds == [0, 1, 2] and two.seeds == [0] and two.compare == []
    assert parse_options("classify", ["--compare"]).compare == ["random"]
    with pytest.raises(ConfigError, match="--label-fraction"):
        parse_options("classify", ["--label-fraction", "1.5"])
    with pytest.raises(ConfigError, match="--seeds"):
        parse_options("classify", ["--seeds", "a"])


def _csv_manifest(adni: Path, folder: Path, extra: dict) -> Path:
    images = sorted(adni.rglob("*.nii.gz"))
    frame = pd.DataFrame({"subject": [f"s{i:02d}" for i in range(len(images))], "image": images})
    for key, values in extra.items():
        frame[key] = values[: len(images)]
    path = folder / "manifest.csv"
    frame.to_csv(path, index=False)
    return path


def _run_full_labels(script, task, manifest, out, cache, primary):
    """Run ``script`` with every training label; the one result and the predictions table."""
    assert main(script, args(task, manifest, out, cache, "--label-fraction", "1")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary_metric"] == primary
    (result,) = metrics["results"]
    return result, pd.read_csv(out / "predictions.csv")


def test_regress_reports_mae_matching_the_predictions(adni, cache, tmp_path):
    ages = np.linspace(40, 85, 15)
    manifest = _csv_manifest(adni, tmp_path, {"target": ages})
    out = tmp_path / "age"
    result, predictions = _run_full_labels("regress", "brain_age", manifest, out, cache, "mae")
    expected = mean_absolute_error(predictions["target"], predictions["prediction"])
    assert result["metrics"]["mae"]["value"] == pytest.approx(expected, rel=1e-9)
    assert {"rmse", "r2", "pearson_r"} <= set(result["metrics"])
    assert (out / "plots" / "scatter_encoder.png").is_file()


def test_survival_reports_c_index_matching_lifelines(adni, cache, tmp_path):
    rng = np.random.default_rng(0)
    time = rng.integers(100, 1500, 15).astype(float)
    event = np.array([1, 0, 1] * 5)
    manifest = _csv_manifest(adni, tmp_path, {"time": time, "event": event})
    out = tmp_path / "cox"
    result, predictions = _run_full_labels("survival", "upenn_cox", manifest, out, cache, "c_index")
    expected = lifelines_cindex(predictions["time"], -predictions["risk"], predictions["event"])
    assert result["metrics"]["c_index"]["value"] == pytest.approx(expected, abs=1e-9)
    assert "logrank_p" in result["metrics"]


def test_wrong_script_and_missing_demo_encoder_fail_in_one_line(
    adni, tmp_path, monkeypatch, capsys
):
    with pytest.raises(ConfigError, match=r"regress\.py --task brain_age"):
        main("classify", ["--task", "brain_age", "--encoder", ENCODER, "--quiet"])
    import braindino.downstream.options as options

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(options, "REPO_ROOT", tmp_path)
    with pytest.raises(BrainDinoError, match="make demo"):
        main("classify", ["--task", "adni", "--data-root", str(adni), "--quiet"])
    from braindino.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main("classify", ["--task", "nope", "--encoder", ENCODER]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown task 'nope'" in err and "adni" in err


@pytest.fixture(scope="module")
def oasis(make_cohort) -> Path:
    """A 12-subject synthetic OASIS cohort in its native layout."""
    return make_cohort({"oasis": 12}, seed=1) / "OASIS"


def _cosine_knn(train_x, train_y, test_x, k: int) -> np.ndarray:
    """Majority vote of the k most cosine-similar training rows (ties: smallest label)."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    nearest = np.argsort(-(unit(test_x) @ unit(train_x).T), axis=1, kind="stable")[:, :k]
    votes = train_y[nearest]
    return np.array([np.bincount(v, minlength=2).argmax() for v in votes])


def test_knn_scores_test_subjects_against_training_neighbours_only(
    adni, oasis, cache, tmp_path, monkeypatch
):
    pooled, manifests = [], []  # what the runner pools (train rows, then test rows), its manifest
    real_pooled, real_rows = runner.pooled, runner.split_rows

    def record_pooled(samples, rows):
        pooled.append((rows, real_pooled(samples, rows)))
        return pooled[-1][1]

    monkeypatch.setattr(runner, "pooled", record_pooled)
    monkeypatch.setattr(
        runner, "split_rows", lambda m, t=None: manifests.append(m) or real_rows(m, t)
    )
    out = tmp_path / "knn"
    roots = ["--set", f"data.source_roots.adni={adni}", "--set", f"data.source_roots.oasis={oasis}"]
    assert main("knn", args("knn", adni, out, cache, "--label-fraction", "1", *roots)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (result,) = metrics["results"]
    splits = pd.read_csv(out / "splits.csv", dtype={"subject": str})
    assert set(splits["subject"].str.split("/").str[0]) == {"adni", "oasis"}
    train = splits[splits["split"] == "train"]
    test = splits[splits["split"] == "test"]
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    assert sorted(predictions["subject"]) == sorted(test["subject"])
    ((train_rows, train_x), (test_rows, test_x)), (manifest,) = pooled, manifests
    assert len(train_x) == result["n_train"] == len(train) and len(test_x) == len(test)
    subjects = manifest["subject"].astype(str).to_numpy()
    assert set(subjects[train_rows]) == set(train["subject"])  # neighbours: training subjects only
    assert set(subjects[test_rows]) == set(test["subject"])
    # independent k-NN (numpy cosine similarity + majority vote) on the same pooled features
    label = dict(zip(splits["subject"], splits["stratum"].map({"normal": 0, "impaired": 1})))
    train_y = np.array([label[s] for s in subjects[train_rows]])
    test_y = np.array([label[s] for s in subjects[test_rows]])
    for k in (1, 3, 5):
        expected = np.mean(_cosine_knn(train_x, train_y, test_x, k) == test_y)
        assert result["metrics"][f"knn_accuracy@{k}"]["value"] == pytest.approx(expected)
    for k in (20, 50):  # more neighbours than training subjects: undefined, reported as n/a
        assert k > len(train_x) and result["metrics"][f"knn_accuracy@{k}"]["value"] is None
    assert "n/a" in (out / "report.md").read_text()
