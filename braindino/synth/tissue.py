"""A subject's tissue maps in template space: the template's GM/WM/CSF changed by their factors.

Atrophy turns tissue into CSF where it happens in life: ventricle walls move outwards, CSF-facing
cortex thins (more in the temporal lobes with dementia), the hippocampi shrink, the corpus
callosum thins (the neurodevelopmental effect), and white-matter hyperintensities replace part of
the white matter around the ventricles and in deep blobs.
"""

from __future__ import annotations

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.factors import SubjectFactors
from braindino.synth.fields import smooth_field
from braindino.synth.shapes import sigmoid

TissueMaps = dict[str, np.ndarray]

#: tissue class index -> name, as ``tissue_classes`` numbers them
TISSUE_CLASSES = ("background", "CSF", "GM", "WM")


def _to_csf(maps: TissueMaps, source: str, amount: np.ndarray) -> None:
    amount = np.minimum(amount, maps[source])
    maps[source] -= amount
    maps["csf"] += amount


def _ventricles(anat: Anatomy, maps: TissueMaps, shift_mm: float) -> None:
    """Move the ventricle walls by ``shift_mm`` (outwards if positive)."""
    edge = 0.5 * anat.spacing
    target = sigmoid((shift_mm - anat.ventricle_distance) / edge)
    if shift_mm >= 0:
        grow = np.clip(target - maps["csf"], 0.0, 1.0) * anat.brain
        tissue = maps["gm"] + maps["wm"]
        share = np.divide(maps["gm"], tissue, out=np.zeros_like(tissue), where=tissue > 1e-6)
        take = np.minimum(grow, tissue)
        maps["gm"] -= take * share
        maps["wm"] -= take * (1.0 - share)
        maps["csf"] += take
    else:
        shrink = np.clip(maps["csf"] - target, 0.0, 1.0) * (
            anat.ventricle_distance < 2 * anat.spacing
        )
        maps["csf"] -= shrink
        maps["wm"] += shrink


def _wmh(rng: np.random.Generator, anat: Anatomy, maps: TissueMaps, load: float) -> None:
    """Periventricular caps and deep blobs of white-matter hyperintensity."""
    band = 1.5 + 3.0 * load
    dist = anat.ventricle_distance
    peri = load * np.exp(-np.maximum(dist, 0.0) / band) * (dist > 0) * (dist < 4.0 * band)
    blobs = smooth_field(rng, anat.shape, anat.spacing, 8.0)[0]
    deep = np.clip(blobs - (2.6 - 1.2 * load), 0.0, 1.0) * (anat.depth > 8.0)
    fraction = np.clip(peri + deep, 0.0, 0.9).astype(np.float32) * maps["wm"]
    maps["wm"] -= fraction
    maps["wmh"] = fraction


def replace_tissue(maps: TissueMaps, box, removed: np.ndarray, parts: TissueMaps) -> None:
    """Take ``removed`` (0..1 on ``box``) out of GM, WM, CSF and WMH and add the lesion
    ``parts`` (class -> fraction on ``box``; a class map is made on first use), in place."""
    for name in ("gm", "wm", "csf", "wmh"):
        maps[name][box] *= 1.0 - removed
    for name, part in parts.items():
        maps.setdefault(name, np.zeros_like(maps["gm"]))[box] += part


def subject_tissue(rng: np.random.Generator, anat: Anatomy, f: SubjectFactors) -> TissueMaps:
    """GM, WM, CSF and WMH fractions for subject ``f`` on the template grid (float32)."""
    maps: TissueMaps = {"gm": anat.gm.copy(), "wm": anat.wm.copy(), "csf": anat.csf.copy()}
    if f.ventricle_shift_mm != 0:
        _ventricles(anat, maps, f.ventricle_shift_mm)
    cortical = f.cortical_atrophy + f.temporal_atrophy * anat.temporal
    if np.any(cortical > 0):
        _to_csf(maps, "gm", maps["gm"] * np.clip(2.0 * cortical * anat.near_csf, 0.0, 0.9))
    if f.hippocampal_loss > 0:
        _to_csf(maps, "gm", anat.hippocampus * np.float32(f.hippocampal_loss))
    if f.callosal_loss > 0:
        _to_csf(maps, "wm", anat.corpus_callosum * np.float32(f.callosal_loss))
    if f.wmh_load > 0.02:
        _wmh(rng, anat, maps, f.wmh_load)
    else:
        maps["wmh"] = np.zeros_like(maps["wm"])
    return maps


def tissue_volumes_ml(maps: TissueMaps, spacing: float, scale: float = 1.0) -> dict[str, float]:
    """Volume (ml) of each map, times the head-size scale cubed (subject space)."""
    voxel_ml = (spacing * scale) ** 3 / 1000.0
    return {f"{name}_ml": round(float(m.sum()) * voxel_ml, 2) for name, m in maps.items()}


def tissue_classes(maps: TissueMaps) -> np.ndarray:
    """The dominant tissue of each voxel as uint8 ``TISSUE_CLASSES`` indices: 1 CSF, 2 GM,
    3 WM (white-matter hyperintensities count as WM), 0 where everything else (outside the
    brain, skull and scalp, lesions) holds the larger share."""
    csf, gm = maps["csf"], maps["gm"]
    wm = maps["wm"] + maps.get("wmh", 0.0)
    other = np.clip(1.0 - csf - gm - wm, 0.0, None)
    return np.argmax(np.stack([other, csf, gm, wm]), axis=0).astype(np.uint8)
