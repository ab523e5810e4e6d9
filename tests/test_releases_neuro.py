"""Task loaders on fixtures laid out like the real neuro releases (ADNI, IXI, OASIS-1,
ATLAS v2.0, ABIDE I), and reading OASIS's orientation-less Analyze images.

Fixture builders and the hand-written expected values: tests/fixtures/releases_neuro.py.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures import releases_neuro as release
from fixtures.releases_neuro import (
    ABIDE_EXPECTED,
    ABIDE_NO_T1,
    ADNI_EXPECTED,
    ADNI_NO_IMAGE,
    ATLAS_DAYS,
    IDA_EXPECTED,
    IDA_TABLE,
    IXI_CONFLICT,
    IXI_EXPECTED,
    IXI_FIRST_AGE,
    OASIS_EXPECTED,
    OASIS_NO_IMAGE,
    OASIS_NO_LABEL,
    OASIS_ORIENTATION,
)

from braindino.errors import DataError
from braindino.tasks import load_manifest, load_task

_IMAGE_ID = re.compile(r"_(I\d+)\.nii$")


def excluded_subjects(frame) -> dict[str, str]:
    """``frame.attrs['excluded']`` as subject -> reason; every reason is counted in dropped."""
    dropped = frame.attrs["dropped"]
    for entry in frame.attrs["excluded"]:
        assert set(entry) >= {"subject", "reason"}, entry
        assert dropped.get(entry["reason"], 0) >= 1, (entry, dropped)
    return {entry["subject"]: entry["reason"] for entry in frame.attrs["excluded"]}


def image_ids(frame) -> dict[str, tuple[str, str]]:
    """subject -> (label, I-number of its image file)."""
    out = {}
    for row in frame.to_dict("records"):
        match = _IMAGE_ID.search(Path(row["image"]).name)
        assert match, row["image"]
        out[row["subject"]] = (row["label"], match.group(1))
    return out


# ------------------------------------------------------------------ ADNI


@pytest.mark.parametrize("table", ["ADNIMERGE_15Nov2023.csv", "ADNIMERGE.csv"])
def test_adni_baseline_image_and_label_from_adnimerge(tmp_path, table):
    root = release.build_adni(tmp_path, table=table)
    frame = load_manifest(load_task("adni"), root=root)
    assert image_ids(frame) == ADNI_EXPECTED


def test_adni_images_sit_in_the_download_tree(tmp_path):
    root = release.build_adni(tmp_path)
    frame = load_manifest(load_task("adni"), root=root)
    row = frame[frame["subject"] == "002_S_0295"].iloc[0]
    assert row["image"] == str(
        root / "ADNI/002_S_0295/MP-RAGE/2006-04-18_08_20_30.0/S13408/"
        "ADNI_002_S_0295_MR_MP-RAGE_br_raw_20060418193713091_2_S13408_I45108.nii"
    )


def test_adni_subject_without_download_is_reported(tmp_path):
    root = release.build_adni(tmp_path)
    frame = load_manifest(load_task("adni"), root=root)
    assert ADNI_NO_IMAGE not in set(frame["subject"])
    assert ADNI_NO_IMAGE in excluded_subjects(frame)


def test_adni_ida_collection_csv(tmp_path):
    root = release.build_ida(tmp_path, table=IDA_TABLE)
    frame = load_manifest(load_task("adni"), root=root)
    assert image_ids(frame) == IDA_EXPECTED


# ------------------------------------------------------------------ IXI


@pytest.fixture(params=["xls", "csv"])
def ixi(request, tmp_path) -> Path:
    if request.param == "xls":
        pytest.importorskip("xlwt", reason="writing the IXI.xls fixture needs xlwt")
    return release.build_ixi(tmp_path, fmt=request.param)


def test_ixi_ages_with_duplicate_rows(ixi):
    frame = load_manifest(load_task("brain_age"), root=ixi)
    ages = dict(zip(frame["subject"], frame["value"]))
    assert set(ages) == set(IXI_EXPECTED)
    for subject, age in IXI_EXPECTED.items():
        assert ages[subject] == pytest.approx(age, abs=1e-6)
    row = frame[frame["subject"] == "IXI002"].iloc[0]
    assert row["image"] == str(ixi / "IXI-T1/IXI002-Guys-0828-T1.nii.gz")
    assert row["target"] == pytest.approx(IXI_EXPECTED["IXI002"], abs=1e-6)


def test_ixi_conflicting_duplicates_are_excluded(ixi):
    frame = load_manifest(load_task("brain_age"), root=ixi)
    assert IXI_CONFLICT not in set(frame["subject"])
    excluded = excluded_subjects(frame)
    conflict = [s for s, reason in excluded.items() if reason == "conflicting_duplicate"]
    assert [re.sub(r"\D", "", s).lstrip("0") for s in conflict] == ["219"]
    assert frame.attrs["dropped"]["conflicting_duplicate"] >= 1


def test_ixi_duplicates_first_keeps_the_first_row(ixi):
    frame = load_manifest(load_task("brain_age", ["data.duplicates=first"]), root=ixi)
    ages = dict(zip(frame["subject"], frame["value"]))
    assert ages[IXI_CONFLICT] == pytest.approx(IXI_FIRST_AGE, abs=1e-6)
    assert ages["IXI012"] == pytest.approx(IXI_EXPECTED["IXI012"], abs=1e-6)


# ------------------------------------------------------------------ OASIS-1


@pytest.fixture(scope="module")
def oasis(tmp_path_factory) -> Path:
    return release.build_oasis1(tmp_path_factory.mktemp("oasis"))


def test_oasis_raw_names_carry_the_published_voxel_axes():
    from braindino.io.analyze import convention_for

    assert convention_for("disc1/OAS1_0001_MR1/RAW/OAS1_0001_MR1_mpr-1_anon.hdr") == "ASL"
    assert OASIS_ORIENTATION == "ASL"
    assert convention_for("sub-01_T1w.hdr") is None


@pytest.mark.parametrize("given", [None, OASIS_ORIENTATION])
def test_oasis_analyze_slices_axially(oasis, given):
    from braindino import read_volume

    path = oasis / "disc1/OAS1_0001_MR1/RAW/OAS1_0001_MR1_mpr-1_anon.hdr"
    vol = read_volume(path, orientation=given)  # None: the OASIS-1 convention by file name
    data = vol.data
    # file (back-front 10, bottom-top 12, right-left 8) -> RAS (8, 10, 12)
    assert vol.shape == (8, 10, 12)
    assert vol.spacing == pytest.approx((1.25, 1.0, 1.0))
    superior = np.argwhere(data == 1000)
    left = np.argwhere(data == 500)
    anterior = np.argwhere(data == 300)
    assert superior.tolist() == [[3, 5, 11]]  # top of the head: high end of the last axis
    assert left.tolist() == [[0, 5, 6]]  # left: low end of axis 0 (axis 0 runs to the Right)
    assert anterior.tolist() == [[3, 9, 6]]  # front: high end of axis 1
    axial = data[:, :, 11]  # an axial slice: R-L x A-P
    assert axial.shape == (8, 10) and axial.max() == 1000 and data[:, :, 0].max() < 300


def test_analyze_of_unknown_convention_is_refused(oasis, tmp_path):
    import shutil

    from braindino import read_volume
    from braindino.errors import VolumeError

    raw = oasis / "disc1/OAS1_0001_MR1/RAW"
    for suffix in (".hdr", ".img"):
        shutil.copy(raw / f"OAS1_0001_MR1_mpr-1_anon{suffix}", tmp_path / f"scan{suffix}")
    with pytest.raises(VolumeError) as info:
        read_volume(tmp_path / "scan.hdr")
    message = str(info.value)
    assert "orientation" in message.lower() and "scan.hdr" in message
    assert "\n" not in message and "Fix:" in message
    assert read_volume(tmp_path / "scan.hdr", orientation="asl").shape == (8, 10, 12)


def test_oasis_manifest_raw_mpr1_with_cdr_labels(oasis):
    frame = load_manifest(load_task("oasis"), root=oasis)
    assert dict(zip(frame["subject"], frame["label"])) == OASIS_EXPECTED
    for row in frame.to_dict("records"):
        name = Path(row["image"]).name
        assert name == f"{row['subject']}_mpr-1_anon.hdr"
        assert Path(row["image"]).parent.name == "RAW"
    assert (
        frame[frame["subject"] == "OAS1_0042_MR1"].iloc[0]["image"].startswith(str(oasis / "disc2"))
    )
    excluded = excluded_subjects(frame)
    assert excluded[OASIS_NO_LABEL] == "no_label"
    assert excluded[OASIS_NO_IMAGE] == "no_image"
    assert frame.attrs["dropped"]["no_label"] == 1


# ------------------------------------------------------------------ ATLAS v2.0


def test_atlas_stroke_public_release_has_no_time_since_stroke(tmp_path):
    root = release.build_atlas2(tmp_path / "ATLAS_2")
    with pytest.raises(DataError) as info:
        load_manifest(load_task("atlas_stroke"), root=root)
    message = str(info.value)
    assert "\n" not in message
    assert "stroke" in message.lower() and "days" in message.lower()
    assert "data.table=" in message


def test_atlas_stroke_with_a_user_table(tmp_path):
    root = release.build_atlas2(tmp_path / "ATLAS_2", days_table="days_since_stroke.csv")
    frame = load_manifest(load_task("atlas_stroke", ["data.table=days_since_stroke.csv"]), root)
    assert dict(zip(frame["subject"], frame["value"])) == ATLAS_DAYS
    for row in frame.to_dict("records"):
        assert row["target"] == pytest.approx(math.log1p(ATLAS_DAYS[row["subject"]]))
        assert Path(row["image"]).name == (
            f"{row['subject']}_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz"
        )


# ------------------------------------------------------------------ ABIDE I


def test_abide_bids_release(tmp_path):
    root = release.build_abide1(tmp_path)
    frame = load_manifest(load_task("abide"), root=root)
    labels = {
        re.sub(r"\D", "", s).zfill(7): lab for s, lab in zip(frame["subject"], frame["label"])
    }
    assert labels == ABIDE_EXPECTED
    for row in frame.to_dict("records"):
        assert Path(row["image"]).name.endswith("_T1w.nii.gz")
        assert Path(row["image"]).parent.name == "anat"
    assert ABIDE_NO_T1 not in labels


def test_prepare_reads_analyze_with_the_dataset_orientation(tmp_path):
    """A data config's ``orientation`` reaches the reader: an Analyze dataset of no known
    convention prepares with it, and is refused (reported, not sliced along a guess) without."""
    import contextlib
    import json

    from fixtures.volumes import write_analyze

    from braindino.config import load_config
    from braindino.data.prepare import collect_inputs, prepare_shards

    folder = tmp_path / "mine"
    i, j, k = np.indices((40, 44, 36))
    head = ((i - 20) / 16) ** 2 + ((j - 22) / 18) ** 2 + ((k - 18) / 14) ** 2 < 1
    noise = np.random.default_rng(0).integers(0, 40, head.shape)
    write_analyze(folder / "scan.hdr", head * (300 + 3 * i) + noise, (1.0, 1.0, 1.25))

    def run(out: Path, extra: list[str]) -> dict:
        cfg = load_config("data/default", [], [f"datasets.mine.root={folder}", *extra])
        with contextlib.suppress(DataError):  # none prepared: the report says why
            prepare_shards(collect_inputs(cfg), out, cfg, progress_bar=False)
        return json.loads((out / "report.json").read_text())

    assert run(tmp_path / "with", ["datasets.mine.orientation=ASL"])["volumes_ok"] == 1
    refused = run(tmp_path / "without", [])
    assert refused["volumes_ok"] == 0
    assert "orientation" in refused["volumes_skipped"][0]["reason"]
