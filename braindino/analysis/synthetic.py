"""Labelled cases from the synthetic cohort, generated in memory: healthy subjects with their
tissue truth (``synth.tissue.TISSUE_CLASSES``) and glioma subjects with their tumour
sub-regions (1 necrotic core, 2 oedema, 3 enhancing)."""

from __future__ import annotations

import numpy as np

from braindino.errors import ConfigError
from braindino.io import Volume
from braindino.synth.anatomy import load_anatomy
from braindino.synth.cohort_specs import COHORTS
from braindino.synth.knobs import SynthKnobs
from braindino.synth.subject import synthesize_subject
from braindino.synth.tissue import TISSUE_CLASSES

TUMOUR_CLASSES = ("no tumour", "necrotic core", "oedema", "enhancing")
#: probe -> (synthetic cohort, class names)
PROBES = {"tissue": ("ixi", TISSUE_CLASSES), "tumour": ("brats2021", TUMOUR_CLASSES)}
ANALYSIS_CODE = 200  # seeds analysis subjects apart from the cohort's and the pretraining pool's


def synthetic_volumes(
    probe: str, subjects: int, modality: str, seed: int = 0, resolution: float = 2.0
) -> list[tuple[str, Volume, Volume]]:
    """``subjects`` synthetic ``(subject, image, label map)`` triples for ``probe`` (``tissue``:
    IXI-like healthy heads with skull, labels = dominant tissue; ``tumour``: BraTS-like
    skull-stripped glioma cases, labels = sub-region), on the RAS template grid."""
    if probe not in PROBES:
        raise ConfigError(
            f"unknown dense probe {probe!r}", path="--probe", fix=f"use {' or '.join(PROBES)}"
        )
    cohort, _ = PROBES[probe]
    spec = COHORTS[cohort]
    if modality not in spec.modalities:
        raise ConfigError(
            f"the {probe} probe's {cohort}-like subjects have no {modality}",
            path=f"--{probe}-modality",
            fix=f"use one of {', '.join(spec.modalities)}",
        )
    anat = load_anatomy(resolution)
    out = []
    for index in range(subjects):
        data = synthesize_subject(
            anat,
            spec,
            index,
            seed,
            SynthKnobs(),
            code=ANALYSIS_CODE,
            modalities=(modality,),
            healthy=probe == "tissue",
            tissue=probe == "tissue",
        )
        labels = data.tissue if probe == "tissue" else data.segmentation
        name = f"{probe}{index:03d}"
        image = Volume(data.images[modality], data.affine.copy(), path=f"{name}_{modality}")
        out.append((name, image, Volume(np.asarray(labels), data.affine.copy(), path=name)))
    return out
