"""The embedded default cohort: synthetic brain MRI on real anatomy, in real dataset layouts.

``generate_cohort(out_dir, subjects=200, seed=0, tasks=None, resolution=2.0)`` (or
``python -m braindino.synth --out DIR``) writes ADNI-, OASIS-, ABIDE-, IXI-, BraTS 2021/2023-,
UPENN-GBM-, UCSF-PDGM- and ATLAS-like datasets whose targets are caused by image content, a
``truth.csv`` per dataset, a healthy pretraining pool and a README with baseline numbers.
"""

from __future__ import annotations

from braindino.synth.cohort_specs import COHORTS, resolve_cohorts, task_cohorts
from braindino.synth.generate import generate_cohort
from braindino.synth.knobs import SynthKnobs

__all__ = ["COHORTS", "SynthKnobs", "generate_cohort", "resolve_cohorts", "task_cohorts"]
