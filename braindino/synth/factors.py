"""A subject's generative factors (age, sex, diagnosis, neurodevelopment) and their effect sizes.

``sample_factors`` draws who the subject is for a given cohort; the numbers that reach the image
(ventricle-wall shift, atrophy fractions, WMH load, callosal thinning) are derived here from those
factors, the knobs and individual variation, so the targets are caused by image content but are
never a deterministic function of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from braindino.synth.cohort_specs import CohortSpec
from braindino.synth.knobs import SynthKnobs

CDR_SEVERITY = {0.0: 0.0, 0.5: None, 1.0: 1.0, 2.0: 1.4}  # None: MCI severity knob


@dataclass
class SubjectFactors:
    """Who the subject is and the size of each neuro effect in their image."""

    age: float
    sex: str  # "M" / "F"
    diagnosis: str = ""  # CN / MCI / AD (dementia cohorts)
    cdr: float | None = None  # OASIS Clinical Dementia Rating
    autism: int | None = None  # ABIDE: 1 autism, 0 control
    severity: float = 0.0  # dementia severity actually expressed (0 none, 1 typical AD)
    ventricle_shift_mm: float = 0.0
    cortical_atrophy: float = 0.0
    temporal_atrophy: float = 0.0
    hippocampal_loss: float = 0.0
    callosal_loss: float = 0.0
    wmh_load: float = 0.0


def _clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def _age(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    return round(_clip(rng.normal(mean, sd), low, high), 1)


def _demographics(rng: np.random.Generator, spec: CohortSpec, healthy: bool) -> SubjectFactors:
    """Age, sex and diagnosis drawn as in the real cohort (with its age confounds)."""
    sex = "M" if rng.random() < 0.5 else "F"
    if healthy or spec.pathology == "none":
        return SubjectFactors(age=round(float(rng.uniform(20.0, 90.0)), 1), sex=sex)
    if spec.name == "adni":
        dx = str(rng.choice(["CN", "MCI", "AD"], p=[0.35, 0.35, 0.30]))
        mean = {"CN": 73.0, "MCI": 72.5, "AD": 75.5}[dx]
        return SubjectFactors(age=_age(rng, mean, 6.5, 55.0, 91.0), sex=sex, diagnosis=dx)
    if spec.name == "oasis":
        cdr = float(rng.choice([0.0, 0.5, 1.0, 2.0], p=[0.55, 0.28, 0.14, 0.03]))
        mean = 72.0 if cdr == 0 else 76.0
        dx = "CN" if cdr == 0 else ("MCI" if cdr == 0.5 else "AD")
        return SubjectFactors(age=_age(rng, mean, 8.0, 55.0, 96.0), sex=sex, diagnosis=dx, cdr=cdr)
    if spec.pathology == "neurodev":
        autism = int(rng.random() < 0.48)
        sex = "M" if rng.random() < (0.87 if autism else 0.80) else "F"
        age = round(_clip(float(np.exp(rng.normal(np.log(15.0), 0.35))), 7.0, 45.0), 1)
        return SubjectFactors(age=age, sex=sex, autism=autism)
    if spec.pathology == "stroke":
        return SubjectFactors(age=_age(rng, 62.0, 12.0, 30.0, 90.0), sex=sex)
    return SubjectFactors(age=0.0, sex=sex)  # glioma: the tumour module sets the age (IDH)


def neuro_effects(rng: np.random.Generator, factors: SubjectFactors, knobs: SynthKnobs) -> None:
    """Fill in the effect sizes from age, diagnosis and autism (in place)."""
    f = factors
    adult_years = max(f.age - 20.0, 0.0)
    if f.diagnosis in ("MCI", "AD") or (f.cdr is not None and f.cdr > 0):
        if f.cdr is not None:
            mean = CDR_SEVERITY[f.cdr]
            mean = knobs.mci_severity if mean is None else mean
        else:
            mean = knobs.mci_severity if f.diagnosis == "MCI" else 1.0
        f.severity = round(_clip(rng.normal(mean, knobs.severity_sd), 0.0, 2.0), 3)
    elif f.diagnosis == "CN":
        f.severity = round(_clip(rng.normal(0.0, knobs.severity_sd * 0.4), 0.0, 2.0), 3)
    shift = knobs.ventricle_age_mm * (adult_years / 60.0) ** 2
    shift += knobs.dementia_ventricle_mm * f.severity + rng.normal(0.0, knobs.ventricle_sd_mm)
    f.ventricle_shift_mm = round(_clip(shift, -1.6, 9.0), 3)
    atrophy = knobs.cortical_atrophy_per_decade * adult_years / 10.0
    f.cortical_atrophy = round(_clip(atrophy + rng.normal(0.0, knobs.atrophy_sd), 0.0, 0.6), 4)
    f.temporal_atrophy = round(knobs.temporal_atrophy * f.severity, 4)
    ageing_hippo = 0.04 * max(f.age - 50.0, 0.0) / 10.0
    hippo = knobs.hippocampal_atrophy * f.severity + ageing_hippo + rng.normal(0.0, 0.05)
    f.hippocampal_loss = round(_clip(hippo, 0.0, 0.9), 4)
    onset = 1.0 / (1.0 + np.exp(-(f.age - 62.0) / 6.0))
    f.wmh_load = round(_clip(knobs.wmh_load * 0.4 * onset * rng.lognormal(0.0, 0.5), 0.0, 1.0), 4)
    if f.autism is not None:
        thin = 0.12 + knobs.callosal_thinning * f.autism + rng.normal(0.0, knobs.callosal_sd)
        f.callosal_loss = round(_clip(thin, 0.0, 0.8), 4)


def sample_factors(
    rng: np.random.Generator, spec: CohortSpec, knobs: SynthKnobs, healthy: bool = False
) -> SubjectFactors:
    """Demographics for a subject of ``spec`` (``healthy``: a pretraining-pool subject)."""
    factors = _demographics(rng, spec, healthy)
    if factors.age > 0:
        neuro_effects(rng, factors, knobs)
    return factors
