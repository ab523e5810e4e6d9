"""Hand-crafted image statistics for the baseline: measured from the images alone.

No registration and no ground truth: volumes are read in RAS, intensities normalised by a robust
white-matter reference, and dark (CSF-like) or bright voxels counted in fixed MNI boxes. This is
deliberately simple — the bar an encoder has to clear.
"""

from __future__ import annotations

import numpy as np

from braindino.io import Volume
from braindino.synth.anatomy import world_axes

BRAIN_CENTRE_MM = (0.0, -18.0, 12.0)
BRAIN_AXES_MM = (55.0, 72.0, 45.0)  # an ellipsoid lying inside every brain
DARK = 0.42  # T1 intensity (relative to white matter) below which a voxel counts as CSF-like


def world_grid(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNI mm of each voxel of an axis-aligned RAS volume, as open grids."""
    return world_axes(volume.affine, volume.shape)


def box(x, y, z, xr, yr, zr, mirror: bool = True) -> np.ndarray:
    """Voxels within the mm ranges (``x`` mirrored across the midline when ``mirror``)."""
    xs = np.abs(x) if mirror else x
    return (xs >= xr[0]) & (xs <= xr[1]) & (y >= yr[0]) & (y <= yr[1]) & (z >= zr[0]) & (z <= zr[1])


def brain_ellipsoid(x, y, z, scale: float = 1.0) -> np.ndarray:
    """The fixed ellipsoid inside the brain (optionally scaled)."""
    c, a = BRAIN_CENTRE_MM, BRAIN_AXES_MM
    r2 = ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2
    return r2 <= scale**2


def t1_features(volume: Volume) -> dict[str, float]:
    """CSF-like (dark) volume fractions in regions that atrophy with age and disease (T1)."""
    x, y, z = world_grid(volume)
    data = volume.data
    inside = brain_ellipsoid(x, y, z)
    reference = float(np.percentile(data[inside], 97))
    dark = data < DARK * max(reference, 1e-6)
    bright = data > 0.8 * reference
    regions = {
        "ventricles": box(x, y, z, (0, 28), (-45, 30), (-4, 30)),
        "hippocampi": box(x, y, z, (18, 38), (-40, -8), (-28, -2)),
        "temporal": box(x, y, z, (38, 62), (-60, 10), (-40, 0)),
        "cortex": inside & ~brain_ellipsoid(x, y, z, 0.8),
        "brain": inside,
    }
    regions["outer"] = brain_ellipsoid(x, y, z, 1.22) & ~inside
    feats = {f"dark_{name}": float(dark[mask].mean()) for name, mask in regions.items()}
    rel = data / max(reference, 1e-6)
    for name in ("hippocampi", "temporal"):
        feats[f"mean_{name}"] = float(rel[regions[name]].mean())
    callosum = box(x, y, z, (0, 6), (-30, 25), (14, 30))
    feats["bright_callosum"] = float(bright[callosum].mean())
    return feats


def robust_scale(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Image divided by the median of the masked voxels."""
    median = float(np.median(data[mask])) if mask.any() else 1.0
    return data / max(median, 1e-6)


def tumour_features(images: dict[str, np.ndarray]) -> dict[str, float]:
    """Hyperintense (FLAIR, T2), enhancing (T1c) and dark-core fractions of a stripped brain."""
    brain = images["T1"] > 0
    rel = {k: robust_scale(v, brain) for k, v in images.items()}
    n = max(int(brain.sum()), 1)
    flair_hyper = brain & (rel["FLAIR"] > 1.4)
    t2_hyper = brain & (rel["T2"] > 1.4) & (rel["FLAIR"] > 0.9)  # bright on T2, not CSF
    enhancing = brain & (rel["T1c"] > 1.7)
    dark_core = brain & (rel["T1c"] < 0.75) & (rel["FLAIR"] > 0.9)
    return {
        "flair_hyper": flair_hyper.sum() / n,
        "t2_hyper": t2_hyper.sum() / n,
        "enhancing": enhancing.sum() / n,
        "dark_core": dark_core.sum() / n,
        "mismatch": (t2_hyper & ~flair_hyper).sum() / n,
        "enhancing_share": enhancing.sum() / max(flair_hyper.sum(), 1),
    }


def sequence_features(data: np.ndarray) -> dict[str, float]:
    """Shape of the intensity histogram of the non-zero voxels, relative to its median."""
    values = data[data > 0]
    rel = values / max(float(np.median(values)), 1e-6)
    q = np.percentile(rel, [5, 25, 75, 95, 99])
    centred = rel - rel.mean()
    skew = float((centred**3).mean() / max(float(rel.std()) ** 3, 1e-9))
    return {"p05": q[0], "p25": q[1], "p75": q[2], "p95": q[3], "p99": q[4], "skew": skew}


def lesion_features(t1: Volume, mask: np.ndarray) -> dict[str, float]:
    """Lesion T1 intensity (relative to white matter), darkness and volume."""
    x, y, z = world_grid(t1)
    reference = float(np.percentile(t1.data[brain_ellipsoid(x, y, z)], 97))
    lesion = mask > 0.5
    rel = t1.data[lesion] / max(reference, 1e-6) if lesion.any() else np.array([1.0])
    voxel_ml = float(np.prod(t1.spacing)) / 1000.0
    return {
        "lesion_mean": float(rel.mean()),
        "lesion_p10": float(np.percentile(rel, 10)),
        "lesion_dark": float((rel < DARK).mean()),
        "lesion_log_ml": float(np.log1p(lesion.sum() * voxel_ml)),
    }


def threshold_segmentation(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Whole tumour, tumour core and enhancing tumour by fixed intensity thresholds."""
    brain = images["T1"] > 0
    flair = robust_scale(images["FLAIR"], brain)
    t1c = robust_scale(images["T1c"], brain)
    whole = brain & (flair > 1.4)
    enhancing = whole & (t1c > 1.7)
    core = enhancing | (whole & (t1c < 0.75))
    return {"wt": whole, "tc": core, "et": enhancing}
