"""Ischaemic stroke lesion whose look depends on the days since the stroke.

An irregular lesion in the middle-cerebral-artery territory replaces tissue. Early on it is
swollen injured tissue (T1 hypointense, T2/FLAIR bright); over weeks to months it cavitates into
CSF-like fluid (T1 and FLAIR dark) with a bright gliotic rim on FLAIR, and shrinks. The speed of
this varies between people, so days-since-stroke is learnable from the lesion's look but noisy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.knobs import SynthKnobs
from braindino.synth.shapes import irregular_distance, local_box, soft_inside
from braindino.synth.tissue import TissueMaps, replace_tissue

LESION = 5  # internal label value on the template grid


@dataclass
class Stroke:
    """One stroke lesion's generative parameters."""

    days_since_stroke: float
    cavitation: float  # 0 fresh injury .. 1 fully cavitated
    hemisphere: str  # L / R
    centre_mm: tuple[float, float, float]
    radius_mm: float  # after shrinkage


def sample_stroke(rng: np.random.Generator, anat: Anatomy, knobs: SynthKnobs) -> Stroke:
    """Draw lesion site, size, age and cavitation."""
    days = float(np.exp(rng.uniform(np.log(7.0), np.log(2500.0))))
    speed = rng.normal(0.0, knobs.cavitation_sd)
    cav = 1.0 / (1.0 + np.exp(-((np.log(days) - np.log(knobs.cavitation_days)) / 0.6 + speed)))
    volume_ml = float(np.clip(np.exp(rng.normal(np.log(12.0), 0.9)), 0.8, 150.0))
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    radius *= 1.0 - knobs.stroke_shrinkage * cav
    sites = anat.stroke_sites
    voxel = sites[rng.integers(len(sites))]
    centre = tuple(float(anat.affine[i, i] * voxel[i] + anat.affine[i, 3]) for i in range(3))
    return Stroke(
        days_since_stroke=round(days, 1),
        cavitation=round(float(cav), 4),
        hemisphere="R" if centre[0] > 0 else "L",
        centre_mm=tuple(round(c, 1) for c in centre),
        radius_mm=round(float(radius), 2),
    )


def add_stroke(
    rng: np.random.Generator, anat: Anatomy, maps: TissueMaps, labels: np.ndarray, s: Stroke
) -> None:
    """Paint the lesion into the tissue maps and the label map (in place)."""
    box = local_box(anat, s.centre_mm, s.radius_mm * 1.6 + 6.0)
    dist = irregular_distance(rng, anat, box, s.centre_mm, 0.3)
    tissue = maps["gm"][box] + maps["wm"][box] + maps["wmh"][box]
    lesion = soft_inside(dist, s.radius_mm) * anat.brain[box] * np.clip(tissue * 1.5, 0.0, 1.0)
    rim = 1.0 - soft_inside(dist, s.radius_mm - 3.0)
    parts = {
        "cavity": lesion * s.cavitation * (1.0 - rim),
        "gliosis": lesion * s.cavitation * rim,
        "injury": lesion * (1.0 - s.cavitation),
    }
    replace_tissue(maps, box, lesion, parts)
    labels[box][lesion >= 0.5] = LESION


def stroke_record(s: Stroke) -> dict:
    """Flat truth-table fields for a stroke."""
    rec = asdict(s)
    cx, cy, cz = rec.pop("centre_mm")
    rec.update(stroke_centre_x_mm=cx, stroke_centre_y_mm=cy, stroke_centre_z_mm=cz)
    rec["stroke_radius_mm"] = rec.pop("radius_mm")
    return rec
