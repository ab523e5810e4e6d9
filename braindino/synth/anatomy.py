"""Real anatomy the synthetic cohort is built on: the MNI152 (ICBM 2009) template from nilearn.

Everything is read at run time from nilearn's installed files (never committed): the T1
template, its brain mask and grey/white-matter probability maps. CSF is the mask minus GM and WM.
From these, a few derived maps are computed once per process and shared by every subject:
ventricles and a signed distance to them, how close each voxel is to CSF, the distance outside
the brain (for the skull shell), and soft regions of interest in MNI millimetres (hippocampi,
temporal lobes, corpus callosum, glioma and stroke territories).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from braindino.errors import ConfigError

RESOLUTIONS = (1.0, 2.0)


@dataclass(frozen=True)
class Anatomy:
    """Template-space maps (all float32 arrays of ``shape`` unless noted), on ``affine``."""

    affine: np.ndarray
    spacing: float
    template_t1: np.ndarray
    brain: np.ndarray  # 0/1 brain mask
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray  # bool
    ventricle_distance: np.ndarray  # signed mm: negative inside the ventricles
    near_csf: np.ndarray  # 0..1, how much CSF (or outside) surrounds a voxel
    outside_distance: np.ndarray  # mm outside the brain mask (0 inside)
    shell_zone: np.ndarray  # flat indices of voxels 0-20 mm outside the brain (skull shell)
    depth: np.ndarray  # mm inside the brain mask (0 outside)
    texture: np.ndarray  # template T1 detail not explained by the tissue maps, zero mean
    hippocampus: np.ndarray  # soft ROI weights 0..1
    temporal: np.ndarray
    corpus_callosum: np.ndarray
    glioma_sites: np.ndarray  # (n, 3) voxel indices where a glioma may be centred
    stroke_sites: np.ndarray  # (n, 3) voxel indices in the middle-cerebral-artery territory

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (X, Y, Z), RAS+ order."""
        return tuple(int(s) for s in self.brain.shape)  # type: ignore[return-value]

    def world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MNI millimetre coordinates (x, y, z) of every voxel, each broadcastable to ``shape``."""
        return world_axes(self.affine, self.shape)


def world_axes(affine: np.ndarray, shape: tuple[int, int, int]):
    """MNI mm of each voxel as three open-grid arrays (the template affine is axis-aligned)."""
    axes = []
    for dim in range(3):
        idx = np.arange(shape[dim], dtype=np.float32)
        coord = affine[dim, dim] * idx + affine[dim, 3]
        view = [1, 1, 1]
        view[dim] = shape[dim]
        axes.append(coord.astype(np.float32).reshape(view))
    return tuple(axes)


def _soft_box(coord: np.ndarray, low: float, high: float, edge: float) -> np.ndarray:
    """1 inside [low, high] mm, falling smoothly to 0 over ``edge`` mm outside it."""
    return (1.0 / (1.0 + np.exp(-(coord - low) / edge))) * (
        1.0 / (1.0 + np.exp((coord - high) / edge))
    )


def _load_nilearn(resolution: float) -> tuple[np.ndarray, ...]:
    from nilearn import datasets

    res = int(resolution)
    images = (
        datasets.load_mni152_template(resolution=res),
        datasets.load_mni152_brain_mask(resolution=res),
        datasets.load_mni152_gm_template(resolution=res),
        datasets.load_mni152_wm_template(resolution=res),
    )
    arrays = tuple(np.asarray(img.get_fdata(dtype=np.float32)) for img in images)
    return (*arrays, np.asarray(images[0].affine, dtype=np.float64))


def _ventricles(csf: np.ndarray, depth: np.ndarray, x, y, z, spacing: float) -> np.ndarray:
    """The lateral and third ventricles: deep central CSF, its large connected components."""
    central = (np.abs(x) < 30) & (y > -46) & (y < 32) & (z > -12) & (z < 36)
    fissure = (np.abs(x) < 4) & ((z > 14) | (y < -30))  # interhemispheric fissure and cisterns
    candidate = central & ~fissure & (csf > 0.4) & (depth > 10)
    labels, n = ndi.label(candidate)
    if n == 0:
        return candidate
    sizes = ndi.sum(candidate, labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes * spacing**3 >= 400.0) + 1  # components of at least 0.4 ml
    return np.isin(labels, keep)


def _sites(mask: np.ndarray, stride: int) -> np.ndarray:
    idx = np.argwhere(mask)
    return idx[:: max(1, stride)].astype(np.int32)


def check_resolution(resolution: float) -> float:
    """``resolution`` as a float, or a ConfigError when the template has no such grid."""
    if float(resolution) not in RESOLUTIONS:
        raise ConfigError(
            f"resolution {resolution} mm is not available",
            path="resolution",
            fix="use 2 (fast, default) or 1 (the template's native grid)",
        )
    return float(resolution)


@functools.lru_cache(maxsize=2)
def load_anatomy(resolution: float = 2.0) -> Anatomy:
    """The template anatomy at 1 or 2 mm (cached per process; about 1 s at 2 mm)."""
    check_resolution(resolution)
    t1, mask, gm, wm, affine = _load_nilearn(resolution)
    spacing = float(abs(affine[0, 0]))
    brain = (mask > 0.5).astype(np.float32)
    gm = np.clip(gm, 0, 1) * brain
    wm = np.clip(wm, 0, 1) * brain
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(brain - gm - wm, 0.0, 1.0)

    x, y, z = world_axes(affine, brain.shape)
    inside = brain > 0
    depth = (ndi.distance_transform_edt(inside) * spacing).astype(np.float32)
    outside_distance = (ndi.distance_transform_edt(~inside) * spacing).astype(np.float32)
    ventricles = _ventricles(csf, depth, x, y, z, spacing)
    ventricle_distance = (
        ndi.distance_transform_edt(~ventricles) - ndi.distance_transform_edt(ventricles)
    ) * spacing
    near_csf = np.clip(ndi.gaussian_filter(csf + (1.0 - brain), sigma=2.0 / spacing), 0.0, 1.0)

    # template detail the three tissue maps do not explain (deep nuclei, cerebellar folia)
    design = np.stack([gm[inside], wm[inside], csf[inside]], axis=1)
    coef, *_ = np.linalg.lstsq(design, t1[inside], rcond=None)
    texture = np.zeros_like(t1)
    texture[inside] = t1[inside] - design @ coef
    texture /= max(float(coef[1]), 1e-6)  # in units of the WM intensity

    # hippocampi: oblique ellipsoids, head antero-inferior, tail postero-superior
    hippo = np.zeros(brain.shape, dtype=np.float32)
    zc = -14.0 - 0.6 * (y + 24.0)
    for side in (-1.0, 1.0):
        r2 = ((x - side * 28.0) / 6.0) ** 2 + ((y + 24.0) / 15.0) ** 2 + ((z - zc) / 6.0) ** 2
        hippo = np.maximum(hippo, np.exp(-0.5 * r2))
    hippocampus = (hippo * gm).astype(np.float32)
    temporal = (
        _soft_box(np.abs(x), 34.0, 80.0, 3.0)
        * _soft_box(y, -70.0, 18.0, 4.0)
        * _soft_box(z, -48.0, 4.0, 4.0)
    ).astype(np.float32) * brain
    callosal = _soft_box(np.abs(x), -20.0, 9.0, 1.5) * _soft_box(y, -44.0, 38.0, 2.0)
    callosal = callosal * _soft_box(z, 2.0, 34.0, 2.0) * (ventricle_distance < 14.0)
    corpus_callosum = (callosal * wm).astype(np.float32)

    glioma_ok = (wm > 0.6) & (depth > 18) & (z > -18) & ~ventricles & (ventricle_distance > 4)
    stroke_ok = (
        inside
        & (np.abs(x) > 16)
        & (np.abs(x) < 56)
        & (y > -60)
        & (y < 30)
        & (z > -8)
        & (z < 48)
        & (depth > 4)
        & (ventricle_distance > 6)
    )
    stride = 7 if spacing < 1.5 else 1
    return Anatomy(
        affine=affine,
        spacing=spacing,
        template_t1=t1,
        brain=brain,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        ventricles=ventricles,
        ventricle_distance=ventricle_distance.astype(np.float32),
        near_csf=near_csf.astype(np.float32),
        outside_distance=outside_distance,
        shell_zone=np.flatnonzero((outside_distance > 0) & (outside_distance < 20.0)),
        depth=depth,
        texture=texture.astype(np.float32),
        hippocampus=hippocampus,
        temporal=temporal.astype(np.float32),
        corpus_callosum=corpus_callosum,
        glioma_sites=_sites(glioma_ok, stride),
        stroke_sites=_sites(stroke_ok, stride),
    )
