"""Own data through the documented routes (downstream/README.md, "Your own data"), and what a
run reads and leaves out: a generic CSV manifest, --set on labels of a built-in task, a union
task reading the root it is given, left-out subjects reported, splits that cannot support the
metric refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.releases import build_adni, build_oasis1
from fixtures.releases_neuro import ADNI_EXPECTED, OASIS_EXPECTED
from fixtures.volumes import write_nifti

from braindino.downstream.cli import main
from braindino.errors import DataError
from braindino.tasks import load_manifest, load_task

ENCODER = "random:vit_micro_patch16_dinov3"
FAST = ["--set", "slices=4", "--preprocess", "spacing=4.0", "--preprocess", "slices.size=32",
        "--epochs", "2", "--bootstrap", "20", "--batch-size", "8"]  # fmt: skip


def head(seed: int) -> np.ndarray:
    """A small non-constant head-like volume (an ellipsoid with noise)."""
    rng = np.random.default_rng(seed)
    i, j, k = np.indices((28, 32, 24)).astype(float)
    inside = ((i - 14) / 11) ** 2 + ((j - 16) / 13) ** 2 + ((k - 12) / 9) ** 2 < 1
    return (inside * (400 + 40 * seed) + rng.normal(0, 5, inside.shape)).astype(np.float32)


def own_data(root: Path, labels: dict[str, str], splits: dict[str, str] | None = None) -> Path:
    """Volumes in ``root/images`` and the manifest CSV the README's example writes."""
    rows = []
    for n, (subject, label) in enumerate(labels.items()):
        image = write_nifti(root / "images" / f"{subject}_T1w.nii.gz", data=head(n))
        row = {"subject": subject, "image": f"images/{image.name}", "label": label}
        if splits is not None:
            row["split"] = splits[subject]
        rows.append(row)
    path = root / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(task: str, data: Path, out: Path, *extra: str) -> int:
    argv = ["--task", task, "--encoder", ENCODER, "--data-root", str(data), "--out", str(out),
            "--cache", str(out.parent / "features"), *FAST, *extra]  # fmt: skip
    return main("classify", argv)


def test_own_csv_reports_every_left_out_subject(tmp_path, capsys):
    labels = {f"s{n:02d}": ("patient" if n % 2 else "control") for n in range(20)}
    labels["s03"] = labels["s08"] = ""  # no label: left out, and said so
    table = own_data(tmp_path / "mine", labels)
    out = tmp_path / "run"
    assert run("csv_class", table, out) == 0  # progress on, as users run it
    said = capsys.readouterr().err
    assert f"data: {table}" in said and "(18 subjects)" in said
    assert "left out: no_label 2" in said
    excluded = (out / "excluded.csv").read_text().splitlines()
    assert excluded == ["subject,reason", "s03,no_label", "s08,no_label"]
    report = (out / "report.md").read_text()
    assert "left out: no_label 2" in report and str(table) in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["left_out"] == {"no_label": 2}
    assert metrics["data"]["sources"]["csv_class"]["subjects"] == 18


def test_split_without_a_class_in_test_stops_with_one_line(tmp_path):
    labels = {f"s{n:02d}": ("patient" if n < 4 else "control") for n in range(12)}
    splits = {s: "train" for s in labels}
    splits.update({"s00": "val", "s04": "val", "s05": "test", "s06": "test"})  # test: controls only
    table = own_data(tmp_path / "mine", labels, splits)
    with pytest.raises(DataError) as info:
        run("csv_class", table, tmp_path / "run", "--quiet")
    message = str(info.value)
    assert "test split has no subject of class patient" in message
    assert "\n" not in message and "split.seed" in message


def test_set_classes_on_a_built_in_task_leaves_the_other_classes_out(tmp_path):
    root = build_adni(tmp_path)
    task = load_task("adni", ["labels.classes=[CN,AD]"])
    frame = load_manifest(task, root=root)
    wanted = {s: v[0] for s, v in ADNI_EXPECTED.items() if v[0] in ("CN", "AD")}
    assert dict(zip(frame["subject"], frame["label"])) == wanted
    assert frame["target"].tolist() == [float(["CN", "AD"].index(x)) for x in frame["label"]]
    left = {e["subject"]: e["reason"] for e in frame.attrs["excluded"]}
    mci = [s for s, v in ADNI_EXPECTED.items() if v[0] == "MCI"]
    assert mci and all(left[s] == "class_not_in_task" for s in mci)


def test_union_task_reads_the_root_it_is_given(tmp_path):
    build_adni(tmp_path / "adni")
    build_oasis1(tmp_path / "oasis")
    frame = load_manifest(load_task("knn"), root=tmp_path)
    sources = frame.attrs["sources"]
    assert sources["adni"]["root"] == str((tmp_path / "adni").resolve())
    assert sources["oasis"]["root"] == str((tmp_path / "oasis").resolve())
    assert sources["adni"]["subjects"] == len(ADNI_EXPECTED)
    assert sources["oasis"]["subjects"] == len(OASIS_EXPECTED)
    assert set(frame["subject"]) == {f"adni/{s}" for s in ADNI_EXPECTED} | {
        f"oasis/{s}" for s in OASIS_EXPECTED
    }
    assert all(str(p).startswith(str(tmp_path.resolve())) for p in frame["image"])


def test_own_csv_class_task_takes_its_classes_from_a_threshold(tmp_path):
    ages = {f"s{n:02d}": str(50 + 2 * n) for n in range(10)}
    ages["s04"] = ""  # no number: left out
    table = own_data(tmp_path / "mine", ages)
    task = load_task("csv_class", ["labels.classes=[young,old]", "labels.threshold=60"])
    frame = load_manifest(task, root=table).set_index("subject")
    expected = {s: ("old" if float(a) > 60 else "young") for s, a in ages.items() if a}
    assert frame["label"].to_dict() == expected
    assert frame["target"].to_dict() == {s: float(c == "old") for s, c in expected.items()}
    assert frame.attrs["dropped"] == {"no_label": 1}
