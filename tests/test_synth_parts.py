"""Parts of the synthetic-cohort generator: knobs, planning, fields, NIfTI files, outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from braindino.errors import ConfigError, DataError
from braindino.synth import SynthKnobs, resolve_cohorts
from braindino.synth.fields import smooth_field
from braindino.synth.generate import plan_counts
from braindino.synth.nifti import save_nifti
from braindino.synth.tumour import Glioma, survival


def test_tasks_map_to_cohorts_and_typos_fail():
    assert resolve_cohorts(["brain_age", "adni"]) == ["adni", "ixi"]
    assert resolve_cohorts("upenn_cox,brats_seg") == ["brats2021", "brats2023", "upenn"]
    assert len(resolve_cohorts(None)) == 9
    with pytest.raises(ConfigError, match="unknown task or cohort 'brain-age'"):
        resolve_cohorts(["brain-age"])


def test_subject_counts_add_up_and_follow_weights():
    counts = plan_counts(200, resolve_cohorts(None))
    assert sum(counts.values()) == 200 and min(counts.values()) >= 1
    assert counts["adni"] > counts["brats2023"]
    assert plan_counts({"ixi": 4}, ["adni", "ixi"]) == {"adni": 0, "ixi": 4}
    with pytest.raises(ConfigError, match="unknown cohort 'ixii'"):
        plan_counts({"ixii": 4}, ["ixi"])


def test_knob_overrides_are_checked():
    knobs = SynthKnobs.from_overrides({"noise": "0.05", "hippocampal_atrophy": 0})
    assert knobs.noise == 0.05 and knobs.hippocampal_atrophy == 0.0
    assert set(SynthKnobs.docs()) == set(knobs.as_dict())
    with pytest.raises(ConfigError, match="must be a number"):
        SynthKnobs.from_overrides({"noise": "loud"})
    with pytest.raises(ConfigError, match="must not be negative"):
        SynthKnobs.from_overrides({"bias": -1})


def test_smooth_field_is_standardised_and_smooth():
    rng = np.random.default_rng(0)
    field = smooth_field(rng, (40, 44, 36), 2.0, 20.0, channels=2)
    assert field.shape == (2, 40, 44, 36) and field.dtype == np.float32
    assert np.allclose(field.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    assert np.allclose(field.std(axis=(1, 2, 3)), 1, atol=1e-3)
    neighbour = np.corrcoef(field[0, :-1].ravel(), field[0, 1:].ravel())[0, 1]
    far = np.corrcoef(field[0, :-20].ravel(), field[0, 20:].ravel())[0, 1]
    assert neighbour > 0.95 and abs(far) < 0.6  # correlated over ~20 mm, not beyond
    assert not np.allclose(field[0], field[1])


def test_nifti_writer_is_byte_stable_and_orientation_exact(tmp_path):
    import nibabel as nib

    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-4, -5, -6)
    a = save_nifti(data, affine, tmp_path / "a" / "x.nii.gz", storage="LPS")
    b = save_nifti(data, affine, tmp_path / "b" / "x.nii.gz", storage="LPS")
    assert a.read_bytes() == b.read_bytes()
    img = nib.load(a)
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    # stored flipped in x and y: voxel (i, j, k) of the file is RAS voxel (3-i, 4-j, k)
    stored = np.asarray(img.dataobj)
    assert stored[0, 0, 0] == data[3, 4, 0] and stored.dtype == np.int16
    assert np.allclose(img.affine @ [0, 0, 0, 1], affine @ [3, 4, 0, 1])  # same place in the world


def test_survival_depends_on_age_size_enhancement_and_idh():
    """Simulated outcomes, refitted with lifelines' Cox model, recover the intended signs."""
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(1)
    knobs = SynthKnobs()
    rows = []
    for _ in range(600):
        mutant = int(rng.random() < 0.3)
        g = Glioma(mutant, "ring" if rng.random() < 0.6 else "none", 1.0, 0, (0, 0, 0), 15, 5, 8)
        age = float(rng.uniform(30, 85))
        core_ml = float(np.exp(rng.uniform(np.log(2), np.log(80))))
        survival(rng, g, age, core_ml, knobs)
        assert g.observed_days <= g.survival_days
        assert g.event == int(g.observed_days == g.survival_days)
        ring = int(g.pattern == "ring")
        covariates = {"age": age, "log_core": np.log(core_ml), "ring": ring, "idh": mutant}
        rows.append(covariates | {"time": g.observed_days, "event": g.event})
    frame = pd.DataFrame(rows)
    assert 0.4 < frame["event"].mean() < 0.95  # some censoring, mostly deaths
    coef = CoxPHFitter().fit(frame, "time", "event").params_
    assert coef["age"] > 0 and coef["log_core"] > 0 and coef["ring"] > 0 and coef["idh"] < 0


def test_cli_writes_a_tiny_cohort_and_rejects_bad_arguments(tmp_path, capsys):
    from braindino.synth.__main__ import main
    from braindino.synth.baseline import run_baseline

    out = str(tmp_path / "c")
    assert main(["--out", out, "--subjects", "atlas=1", "--pool", "0", "--quiet"]) == 0
    assert "wrote 1 subjects" in capsys.readouterr().out
    assert "skipped" in (tmp_path / "c" / "README.md").read_text(
        encoding="utf-8"
    )  # too few for a baseline
    with pytest.raises(ConfigError, match="--subjects"):
        main(["--out", str(tmp_path / "d"), "--subjects", "adni=many"])
    with pytest.raises(ConfigError, match="--knob"):
        main(["--out", str(tmp_path / "d"), "--knob", "noise"])
    with pytest.raises(DataError, match=r"cohort\.json missing"):
        run_baseline(tmp_path)
