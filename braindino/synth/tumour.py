"""Diffuse glioma: an irregular tumour with necrosis, enhancing rim and oedema, plus outcome.

The tumour is drawn in template space inside a local box: an irregular ellipsoid (radius
modulated by a smooth random field) holds the tumour core — necrosis surrounded by an enhancing
rim for a typical IDH-wild-type glioblastoma, mostly non-enhancing tumour for IDH-mutant gliomas
(often with the T2-FLAIR mismatch sign) — and oedema spreads further along white matter. IDH
status changes age, location, enhancement, necrosis and oedema; overall survival follows a
log-normal model of age, tumour size, enhancement and IDH, with random censoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.deform import Push
from braindino.synth.fields import smooth_field
from braindino.synth.knobs import SynthKnobs
from braindino.synth.shapes import irregular_distance, local_box, soft_inside
from braindino.synth.tissue import TissueMaps, replace_tissue

# internal label values on the template grid (0 outside the brain, 1 brain)
NECROTIC_CORE, OEDEMA, ENHANCING = 2, 3, 4


@dataclass
class Glioma:
    """One glioma's generative parameters and outcome."""

    idh_mutant: int
    pattern: str  # ring | patchy | none  (enhancement pattern on T1c)
    enhancement: float  # T1c enhancement amplitude (0 none .. ~1.2 strong)
    mismatch: int  # T2-FLAIR mismatch sign (IDH-mutant)
    centre_mm: tuple[float, float, float]
    core_radius_mm: float
    necrosis_radius_mm: float
    oedema_margin_mm: float
    survival_days: float = 0.0  # true overall survival
    observed_days: float = 0.0  # min(survival, follow-up)
    event: int = 0  # 1 death observed, 0 censored
    risk: float = 0.0  # the linear predictor of the survival model (higher: shorter)


def sample_glioma(
    rng: np.random.Generator, anat: Anatomy, idh_mutant_fraction: float, knobs: SynthKnobs
) -> tuple[Glioma, float]:
    """Draw a glioma and the patient's age (IDH-mutant patients are younger)."""
    mutant = int(rng.random() < idh_mutant_fraction)
    age = float(np.clip(rng.normal(42.0, 12.0) if mutant else rng.normal(62.0, 11.0), 18.0, 89.0))
    if mutant:
        pattern = str(rng.choice(["none", "patchy", "ring"], p=[0.62, 0.30, 0.08]))
    else:
        pattern = str(rng.choice(["ring", "patchy", "none"], p=[0.84, 0.11, 0.05]))
    strength = {"ring": rng.uniform(0.75, 1.25), "patchy": rng.uniform(0.35, 0.9), "none": 0.0}
    sites = anat.glioma_sites
    if mutant:  # frontal and insular preference
        frontal = sites[:, 1] * anat.affine[1, 1] + anat.affine[1, 3] > -10
        if frontal.any() and rng.random() < 0.7:
            sites = sites[frontal]
    voxel = sites[rng.integers(len(sites))]
    centre = tuple(float(anat.affine[i, i] * voxel[i] + anat.affine[i, 3]) for i in range(3))
    core = float(rng.uniform(9.0, 24.0) if mutant else rng.uniform(8.0, 21.0))
    necrosis = 0.0
    if pattern == "ring" or (pattern == "patchy" and rng.random() < 0.5):
        necrosis = core * float(rng.uniform(0.3, 0.72))
    margin = float(rng.uniform(2.0, 8.0) if mutant else rng.uniform(4.0, 15.0)) * knobs.oedema_scale
    glioma = Glioma(
        idh_mutant=mutant,
        pattern=pattern,
        enhancement=round(float(strength[pattern]) * knobs.enhancement, 3),
        mismatch=int(mutant and rng.random() < 0.55),
        centre_mm=tuple(round(c, 1) for c in centre),
        core_radius_mm=round(core, 2),
        necrosis_radius_mm=round(necrosis, 2),
        oedema_margin_mm=round(margin, 2),
    )
    return glioma, round(age, 1)


def _same_hemisphere(anat: Anatomy, box, centre_x_mm: float) -> np.ndarray:
    """Soft 0..1 weight, small across the midline from the tumour (oedema rarely crosses)."""
    idx = np.arange(box[0].start, box[0].stop, dtype=np.float32)
    x = anat.affine[0, 0] * idx + anat.affine[0, 3]
    side = 1.0 if centre_x_mm >= 0 else -1.0
    weight = 1.0 / (1.0 + np.exp(-np.clip(side * x + 2.0, -30, 30) / 2.0))
    return weight.astype(np.float32).reshape(-1, 1, 1)


def add_glioma(
    rng: np.random.Generator, anat: Anatomy, maps: TissueMaps, labels: np.ndarray, g: Glioma
) -> Push:
    """Paint the glioma into the tissue maps and the label map (in place); returns its push."""
    reach = g.core_radius_mm * 1.3 + g.oedema_margin_mm + 8.0
    box = local_box(anat, g.centre_mm, reach)
    brain = anat.brain[box]
    wm, gm = anat.wm[box], anat.gm[box]
    dist_core = irregular_distance(rng, anat, box, g.centre_mm, 0.16)
    dist_oedema = irregular_distance(rng, anat, box, g.centre_mm, 0.25)
    core = soft_inside(dist_core, g.core_radius_mm) * brain
    necrosis = (
        soft_inside(dist_core, g.necrosis_radius_mm) * core if g.necrosis_radius_mm else 0 * core
    )
    rim = core - necrosis
    if g.pattern == "ring":
        enhancing, solid = rim, 0.0 * rim
    elif g.pattern == "patchy":
        patches = (smooth_field(rng, rim.shape, anat.spacing, 6.0)[0] > 0.2).astype(np.float32)
        enhancing, solid = rim * patches, rim * (1.0 - patches)
    else:
        enhancing, solid = 0.0 * rim, rim
    white = wm / np.maximum(wm + gm, 1e-3)
    reach_oedema = g.core_radius_mm + g.oedema_margin_mm * (0.35 + 0.65 * white)
    oedema = np.clip(soft_inside(dist_oedema, reach_oedema, 1.5) * brain - core, 0.0, 1.0)
    oedema *= _same_hemisphere(anat, box, g.centre_mm[0])

    tumour = np.clip(core + oedema, 0.0, 1.0)
    parts = {"necrosis": necrosis, "core": solid, "enhancing": enhancing, "oedema": oedema}
    replace_tissue(maps, box, tumour, parts)

    local = labels[box]
    local[oedema >= 0.5] = OEDEMA
    local[(core >= 0.5) & (solid + necrosis >= enhancing)] = NECROTIC_CORE
    local[(core >= 0.5) & (enhancing > solid + necrosis)] = ENHANCING
    return Push(g.centre_mm, g.core_radius_mm, 0.12)


def survival(rng: np.random.Generator, g: Glioma, age: float, core_ml: float, knobs: SynthKnobs):
    """Overall survival (days), the observed time and event, from age, size, enhancement, IDH."""
    z_age = (age - 60.0) / 12.0
    z_size = (np.log(max(core_ml, 0.5)) - np.log(25.0)) / 0.8
    risk = 0.35 * z_age + 0.35 * z_size + 0.35 * (g.pattern == "ring") - 0.8 * g.idh_mutant
    log_days = np.log(knobs.survival_median_days) - risk + rng.normal(0.0, knobs.survival_noise)
    days = float(np.clip(np.exp(log_days), 15.0, 6000.0))
    followup = float(rng.uniform(150.0, max(knobs.followup_max_days, 151.0)))
    g.survival_days = round(days)
    g.observed_days = round(min(days, followup))
    g.event = int(days <= followup)
    g.risk = round(float(risk), 4)


def glioma_record(g: Glioma) -> dict:
    """Flat truth-table fields for a glioma."""
    rec = asdict(g)
    cx, cy, cz = rec.pop("centre_mm")
    rec.update(centre_x_mm=cx, centre_y_mm=cy, centre_z_mm=cz)
    return {
        f"glioma_{k}" if k not in ("survival_days", "observed_days", "event") else k: v
        for k, v in rec.items()
    }
