"""One synthetic subject, end to end: factors -> tissue -> lesions -> warp -> contrasts.

Everything is drawn from one random generator seeded by (seed, cohort code, subject index), so
a subject is the same whatever else is generated, in whatever order or process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.cohort_specs import CohortSpec
from braindino.synth.contrast import (
    add_rician_noise,
    bias_field,
    render,
    shell_maps,
    subject_intensities,
)
from braindino.synth.deform import random_warp, warp
from braindino.synth.factors import neuro_effects, sample_factors
from braindino.synth.knobs import SynthKnobs
from braindino.synth.stroke import LESION, add_stroke, sample_stroke, stroke_record
from braindino.synth.tissue import subject_tissue, tissue_classes, tissue_volumes_ml
from braindino.synth.tumour import (
    ENHANCING,
    NECROTIC_CORE,
    OEDEMA,
    add_glioma,
    glioma_record,
    sample_glioma,
    survival,
)

IDH_MUTANT_FRACTION = {"brats2021": 0.2, "brats2023": 0.2, "upenn": 0.03}


@dataclass
class SubjectData:
    """A subject's images (float32, scanner units, subject grid), labels and ground truth.

    ``segmentation``: uint8, glioma 1 necrotic/non-enhancing core, 2 oedema, 3 enhancing
    (BraTS 2023 numbering); stroke 1 lesion; ``None`` for cohorts without lesions.
    ``tissue``: uint8 dominant tissue per voxel (``synth.tissue.TISSUE_CLASSES``: 0 other, 1 CSF,
    2 GM, 3 WM) on the subject grid, when asked for (``synthesize_subject(tissue=True)``).
    """

    images: dict[str, np.ndarray]
    segmentation: np.ndarray | None
    affine: np.ndarray
    truth: dict
    tissue: np.ndarray | None = None


def subject_rng(seed: int, code: int, index: int) -> np.random.Generator:
    """The generator of subject ``index`` of cohort ``code`` under ``seed``."""
    return np.random.default_rng([int(seed), int(code), int(index)])


def synthesize_subject(
    anat: Anatomy,
    spec: CohortSpec,
    index: int,
    seed: int,
    knobs: SynthKnobs,
    healthy: bool = False,
    code: int | None = None,
    modalities: tuple[str, ...] | None = None,
    tissue: bool = False,
) -> SubjectData:
    """Generate subject ``index`` of cohort ``spec`` (``healthy``: no pathology, pool subject;
    ``tissue``: also its tissue label map, which draws nothing from the generator, so the
    images are the same either way)."""
    rng = subject_rng(seed, spec.code if code is None else code, index)
    factors = sample_factors(rng, spec, knobs, healthy=healthy)
    labels = anat.brain.astype(np.uint8)
    glioma = stroke = None
    if not healthy and spec.pathology == "glioma":
        fraction = IDH_MUTANT_FRACTION.get(spec.name, knobs.ucsf_idh_mutant_fraction)
        glioma, factors.age = sample_glioma(rng, anat, fraction, knobs)
        neuro_effects(rng, factors, knobs)
    if not healthy and spec.pathology == "stroke":
        stroke = sample_stroke(rng, anat, knobs)
    maps = subject_tissue(rng, anat, factors)
    template_volumes = tissue_volumes_ml(maps, anat.spacing)
    pushes = ()
    if glioma is not None:
        pushes = (add_glioma(rng, anat, maps, labels, glioma),)
    if stroke is not None:
        add_stroke(rng, anat, maps, labels, stroke)
    if spec.skull:
        maps.update(shell_maps(anat, rng))
    coords, scale = random_warp(rng, anat, knobs, pushes)
    needs_labels = not spec.skull or glioma is not None or stroke is not None
    subject_labels = warp(labels, coords, order=0) if needs_labels else None

    texture_gain = float(rng.uniform(0.6, 1.0))
    noise = knobs.noise * float(rng.uniform(0.6, 1.4))
    enhancement = glioma.enhancement if glioma is not None else 0.0
    mismatch = bool(glioma.mismatch) if glioma is not None else False
    images: dict[str, np.ndarray] = {}
    for sequence in modalities or spec.modalities:
        values = subject_intensities(rng, sequence, knobs, enhancement, mismatch)
        image = warp(render(anat, maps, values, sequence, texture_gain), coords, order=1)
        image *= bias_field(rng, anat, knobs)
        image = add_rician_noise(rng, image, noise * values["wm"])
        if not spec.skull:
            image *= subject_labels > 0
        image *= np.float32(rng.uniform(500.0, 1500.0) / max(values["wm"], values["csf"], 0.3))
        images[sequence] = image

    voxel_ml = anat.spacing**3 / 1000.0
    truth = asdict(factors)
    truth["head_scale"] = round(scale, 4)
    for key, value in template_volumes.items():
        truth[key] = round(value * scale**3, 2)
    truth["brain_ml"] = round(float(anat.brain.sum()) * voxel_ml * scale**3, 2)
    segmentation = None
    if glioma is not None:
        segmentation = np.zeros(anat.shape, dtype=np.uint8)
        for source, target in ((NECROTIC_CORE, 1), (OEDEMA, 2), (ENHANCING, 3)):
            segmentation[subject_labels == source] = target
        volumes = {
            f"{name}_ml": float((segmentation == label).sum()) * voxel_ml
            for label, name in enumerate(("ncr", "ed", "et"), start=1)
        }
        survival(rng, glioma, factors.age, volumes["ncr_ml"] + volumes["et_ml"], knobs)
        truth.update(glioma_record(glioma))
        truth.update({k: round(v, 2) for k, v in volumes.items()})
    if stroke is not None:
        segmentation = (subject_labels == LESION).astype(np.uint8)
        truth.update(stroke_record(stroke))
        truth["lesion_ml"] = round(float(segmentation.sum()) * voxel_ml, 2)
    tissue_map = warp(tissue_classes(maps), coords, order=0) if tissue else None
    return SubjectData(images, segmentation, anat.affine.copy(), truth, tissue_map)
