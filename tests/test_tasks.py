"""Task registry, adapters on the synthetic cohort's native layouts, splits, label fractions."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from braindino.errors import ConfigError, DataError
from braindino.tasks import (
    available_tasks,
    ensure_cohort,
    ensure_splits,
    label_fraction_subjects,
    load_manifest,
    load_task,
    make_splits,
    with_splits,
)

COUNTS = {
    "adni": 4,
    "oasis": 3,
    "abide": 2,
    "ixi": 2,
    "brats2021": 2,
    "brats2023": 1,
    "upenn": 3,
    "ucsf": 3,
    "atlas": 2,
}
EXPECTED_TASKS = {
    "adni",
    "oasis",
    "abide",
    "brats_sequence",
    "ucsf_idh",
    "upenn_survival_cls",
    "upenn_cox",
    "brain_age",
    "atlas_stroke",
    "knn",
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A small synthetic cohort made through the first-use path into a cache folder."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINDINO_CACHE", str(cache))
    root = ensure_cohort(subjects=COUNTS, pool_subjects=0, progress=False)
    yield root
    mp.undo()


def truth(cohort: Path, folder: str) -> pd.DataFrame:
    return pd.read_csv(cohort / folder / "truth.csv", dtype={"subject": str}).set_index("subject")


# ------------------------------------------------------------------------------------ registry
def test_every_task_is_registered_and_loads():
    assert set(available_tasks()) >= EXPECTED_TASKS
    for name in EXPECTED_TASKS:
        cfg = load_task(name)
        assert cfg.name == name
        assert cfg.target in ("class", "regression", "survival")
        assert cfg.data.adapter and cfg.metric and cfg.head


def test_task_overrides_and_strict_keys():
    cfg = load_task("adni", ["split.seed=3", "data.label_column=Group"])
    assert cfg.split.seed == 3 and cfg.data.label_column == "Group"
    assert load_task("adni", {"split.seed": 5}).split.seed == 5
    with pytest.raises(ConfigError, match=r"split\.sed.*split\.seed"):
        load_task("adni", ["split.sed=1"])
    with pytest.raises(ConfigError, match=r"unknown task 'adnii'.*adni"):
        load_task("adnii")
    with pytest.raises(ConfigError, match="target"):
        load_task("adni", ["target=ordinal"])


# ------------------------------------------------------------------------------------ adapters
def test_adapters_read_neuro_layouts_with_true_labels(cohort, monkeypatch):
    monkeypatch.setenv("BRAINDINO_CACHE", str(cohort.parent))
    adni, t = load_manifest("adni"), truth(cohort, "ADNI")
    assert sorted(adni["subject"]) == sorted(t.index)
    assert all(adni["label"] == t.loc[adni["subject"], "diagnosis"].to_numpy())
    assert all(adni["target"] == [["CN", "MCI", "AD"].index(x) for x in adni["label"]])
    assert all(
        adni["image"] == [str(cohort / "ADNI" / t.loc[s, "file_T1"]) for s in adni["subject"]]
    )

    oasis, t = load_manifest("oasis"), truth(cohort, "OASIS")
    impaired = t.loc[oasis["subject"], "cdr"].to_numpy() > 0
    assert list(oasis["label"]) == ["impaired" if i else "normal" for i in impaired]

    abide, t = load_manifest("abide"), truth(cohort, "ABIDE")
    autism = t.loc[abide["subject"], "autism"].to_numpy() == 1
    assert list(abide["label"]) == ["autism" if a else "control" for a in autism]

    age, t = load_manifest("brain_age"), truth(cohort, "IXI")
    assert sorted(age["subject"]) == sorted(t.index)
    np.testing.assert_allclose(age["target"], t.loc[age["subject"], "age"], atol=0.051)

    stroke, t = load_manifest("atlas_stroke"), truth(cohort, "ATLAS_2")
    days = t.loc[stroke["subject"], "days_since_stroke"].to_numpy()
    np.testing.assert_allclose(stroke["value"], days, atol=0.051)
    np.testing.assert_allclose(stroke["target"], [math.log1p(d) for d in stroke["value"]])


def test_adapters_read_tumour_layouts_with_true_labels(cohort, monkeypatch):
    monkeypatch.setenv("BRAINDINO_CACHE", str(cohort.parent))
    seq, t = load_manifest("brats_sequence"), truth(cohort, "BraTS2021")
    assert len(seq) == 4 * len(t)
    for _, row in seq.iterrows():
        assert row["image"] == str(
            cohort / "BraTS2021" / t.loc[row["subject"], f"file_{row['label']}"]
        )
    seq23 = load_manifest("brats_sequence", root=cohort / "BraTS2023")
    t23 = truth(cohort, "BraTS2023")
    for _, row in seq23.iterrows():
        assert row["image"] == str(
            cohort / "BraTS2023" / t23.loc[row["subject"], f"file_{row['label']}"]
        )
    assert sorted(seq23["label"]) == sorted(["T1", "T1c", "T2", "FLAIR"] * len(t23))

    idh, t = load_manifest("ucsf_idh"), truth(cohort, "UCSF-PDGM")
    assert sorted(idh["subject"]) == sorted(t.index)  # metadata ids have 3 digits, folders 4
    mutant = t.loc[idh["subject"], "glioma_idh_mutant"].to_numpy() == 1
    assert list(idh["label"]) == ["mutant" if m else "wildtype" for m in mutant]
    assert all(idh["image"].str.endswith("_T1c.nii.gz")) and all(
        idh["image2"].str.endswith("_FLAIR.nii.gz")
    )

    cox, t = load_manifest("upenn_cox"), truth(cohort, "UPENN-GBM")
    np.testing.assert_array_equal(cox["time"], t.loc[cox["subject"], "observed_days"])
    np.testing.assert_array_equal(cox["event"], t.loc[cox["subject"], "event"])

    cls = load_manifest("upenn_survival_cls")
    known = t[(t["event"] == 1) | (t["observed_days"] > 365)]
    assert sorted(cls["subject"]) == sorted(known.index)  # censored before day 365: no label
    long = known.loc[cls["subject"], "observed_days"].to_numpy() > 365
    assert list(cls["label"]) == ["long" if x else "short" for x in long]


def test_union_task_joins_sources(cohort, monkeypatch):
    monkeypatch.setenv("BRAINDINO_CACHE", str(cohort.parent))
    knn = load_manifest("knn")
    adni, oasis = load_manifest("adni"), load_manifest("oasis")
    assert len(knn) == len(adni) + len(oasis)
    assert set(knn["dataset"]) == {"adni", "oasis"}
    by_subject = dict(zip(knn["subject"], knn["label"]))
    for s, label in zip(adni["subject"], adni["label"]):
        assert by_subject[f"adni/{s}"] == ("normal" if label == "CN" else "impaired")


def _copy_dataset(cohort: Path, folder: str, dest: Path) -> Path:
    shutil.copytree(cohort / folder, dest / folder)
    return dest / folder


def test_missing_column_error_names_column_file_and_columns(cohort, tmp_path):
    root = _copy_dataset(cohort, "ABIDE", tmp_path)
    table = root / "Phenotypic_V1_0b_preprocessed1.csv"
    frame = pd.read_csv(table).rename(columns={"DX_GROUP": "DIAGNOSIS"})
    frame.to_csv(table, index=False)
    with pytest.raises(DataError) as err:
        load_manifest("abide", root=root)
    text = str(err.value)
    assert "'DX_GROUP'" in text and str(table) in text and "DIAGNOSIS" in text
    assert "data.label_column" in text and "\n" not in text
    # the same table works once the task is told the column's name
    ok = load_manifest(load_task("abide", ["data.label_column=DIAGNOSIS"]), root=root)
    assert len(ok) == len(frame)


def test_unknown_label_value_is_an_error(cohort, tmp_path):
    root = _copy_dataset(cohort, "ADNI", tmp_path)
    table = root / "ADNIMERGE.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "DX"] = "Probable AD"
    frame.to_csv(table, index=False)
    with pytest.raises(DataError, match=r"unknown label value.*'Probable AD'.*'DX'.*labels\.map"):
        load_manifest("adni", root=root)
    fixed = load_manifest(load_task("adni", {"labels.map.Probable AD": "AD"}), root=root)
    assert fixed.set_index("subject").loc[frame.loc[0, "PTID"], "label"] == "AD"


def test_missing_labels_and_images_are_dropped_and_counted(cohort, tmp_path):
    root = _copy_dataset(cohort, "OASIS", tmp_path)
    table = root / "oasis_cross-sectional.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "CDR"] = None  # young OASIS subjects have no CDR
    frame.to_csv(table, index=False)
    first_image = next(root.rglob(f"{frame.loc[1, 'ID']}_mpr-1_anon.nii.gz"))
    first_image.unlink()
    manifest = load_manifest("oasis", root=root)
    assert set(manifest["subject"]) == set(frame["ID"][2:])
    assert manifest.attrs["dropped"] == {"no_label": 1, "no_image": 1}


def test_generic_csv_manifest(cohort, tmp_path):
    ixi = cohort / "IXI"
    t = truth(cohort, "IXI")
    rows = [
        {
            "subject": s,
            "image": str(ixi / t.loc[s, "file_T1"]),
            "image2": str(ixi / t.loc[s, "file_T2"]),
            "target": t.loc[s, "age"],
            "split": "test" if i == 0 else "train",
        }
        for i, s in enumerate(t.index)
    ]
    csv = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    manifest = load_manifest("brain_age", root=csv)  # a CSV file: the generic manifest
    assert list(manifest["subject"]) == list(t.index)
    np.testing.assert_allclose(manifest["target"], t["age"])
    assert list(manifest["split"]) == [r["split"] for r in rows]
    assert all(manifest["image2"].str.endswith("-T2.nii.gz"))

    surv = tmp_path / "surv.csv"
    frame = pd.DataFrame(rows).drop(columns=["target", "split"])
    frame["time"], frame["event"] = [100, 800], [1, 0]
    frame.to_csv(surv, index=False)
    cox = load_manifest("upenn_cox", root=surv)
    assert list(cox["time"]) == [100, 800] and list(cox["event"]) == [1, 0]

    rows[1]["image"] = str(tmp_path / "nowhere.nii.gz")
    pd.DataFrame(rows).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"image file not found.*nowhere"):
        load_manifest("brain_age", root=csv)


# ------------------------------------------------------------------------------------ splits
def toy_manifest(n_subjects: int = 200, seed: int = 0, samples: int = 2) -> pd.DataFrame:
    """Subjects with 3 imbalanced classes (60/30/10 %), each with several samples."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["a", "b", "c"], size=n_subjects, p=[0.6, 0.3, 0.1])
    rows = [
        {"subject": f"s{i:04d}", "label": lab, "target": float("abc".index(lab))}
        for i, lab in enumerate(labels)
        for _ in range(samples)
    ]
    return pd.DataFrame(rows)


def test_splits_are_subject_level_stratified_and_reproducible(tmp_path):
    manifest = toy_manifest()
    splits = make_splits(manifest, "class", (0.6, 0.2, 0.2), seed=7)
    assert splits["subject"].is_unique and set(splits["subject"]) == set(manifest["subject"])
    joined = with_splits(manifest, splits)
    assert (joined.groupby("subject")["split"].nunique() == 1).all()  # no subject in two splits
    share = splits["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.6) < 0.03 and abs(share["test"] - 0.2) < 0.03
    per_subject = manifest.groupby("subject")["label"].first()
    overall = per_subject.value_counts(normalize=True)
    for name in ("train", "val", "test"):
        members = splits.loc[splits["split"] == name, "subject"]
        frac = per_subject.loc[members].value_counts(normalize=True)
        for label in "abc":
            assert abs(frac.get(label, 0) - overall[label]) < 0.05, (name, label)
    again = make_splits(manifest.sample(frac=1, random_state=1), "class", (0.6, 0.2, 0.2), seed=7)
    pd.testing.assert_frame_equal(splits, again)  # row order of the manifest does not matter
    other = make_splits(manifest, "class", (0.6, 0.2, 0.2), seed=8)
    assert not splits["split"].equals(other["split"])

    path = tmp_path / "splits.csv"
    saved = ensure_splits(manifest, path, "class", seed=7)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert list(ensure_splits(manifest, path, "class", seed=7)["split"]) == list(saved["split"])
    with pytest.raises(DataError, match="do not match"):
        ensure_splits(manifest.iloc[:-4], path, "class", seed=7)


def test_regression_and_survival_splits_are_stratified():
    rng = np.random.default_rng(0)
    reg = pd.DataFrame(
        {"subject": [f"s{i}" for i in range(100)], "target": rng.normal(50, 15, 100)}
    )
    splits = make_splits(reg, "regression", seed=0, bins=4)
    for name in ("train", "val", "test"):
        assert splits.loc[splits["split"] == name, "stratum"].nunique() == 4
    surv = pd.DataFrame(
        {"subject": [f"s{i}" for i in range(50)], "event": [i % 5 == 0 for i in range(50)]}
    )
    splits = make_splits(surv, "survival", seed=0)
    events = dict(zip(surv["subject"], surv["event"]))
    for name in ("train", "val", "test"):
        assert any(events[s] for s in splits.loc[splits["split"] == name, "subject"])


def test_user_split_column_is_respected():
    manifest = toy_manifest(100)
    test_subjects = {f"s{i:04d}" for i in range(0, 100, 4)}
    manifest["split"] = ["test" if s in test_subjects else "train" for s in manifest["subject"]]
    splits = make_splits(manifest, "class", (0.6, 0.2, 0.2), seed=0)
    assert set(splits.loc[splits["split"] == "test", "subject"]) == test_subjects
    val = splits.loc[splits["split"] == "val", "subject"]
    assert 15 <= len(val) <= 35 and not set(val) & test_subjects  # carved from train only
    manifest.loc[2, "split"] = "test"  # one of s0001's two samples now says test, the other train
    with pytest.raises(DataError, match="several splits"):
        make_splits(manifest, "class")


def test_label_fractions_keep_every_class_and_are_nested():
    manifest = toy_manifest(300)
    splits = make_splits(manifest, "class", seed=0)
    train = set(splits.loc[splits["split"] == "train", "subject"])
    labels = manifest.groupby("subject")["label"].first()
    subsets = {f: label_fraction_subjects(splits, f, seed=3) for f in (0.01, 0.1, 1.0)}
    assert set(subsets[1.0]) == train
    assert set(labels.loc[subsets[0.01]]) == {"a", "b", "c"}  # at least one per class
    assert set(subsets[0.01]) <= set(subsets[0.1]) <= train
    assert abs(len(subsets[0.1]) - 0.1 * len(train)) <= 3
    assert subsets[0.1] == label_fraction_subjects(splits, 0.1, seed=3)
    assert subsets[0.1] != label_fraction_subjects(splits, 0.1, seed=4)
    with pytest.raises(ConfigError):
        label_fraction_subjects(splits, 0.0)


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("data.patient=(UPENN", "data.patient '(UPENN' is not a valid regular expression"),
        ("data.patient=UPENN-GBM", "data.patient has no (?P<patient>...) group"),
        ("data.images.T1c=x.nii", "data.images.T1c has no (?P<subject>...) group"),
    ],
)
def test_a_bad_pattern_fails_when_the_task_loads(override, said):
    with pytest.raises(ConfigError) as info:
        load_task("upenn_cox", [override])
    assert said in str(info.value) and "Fix:" in str(info.value)
