"""One case as training data: its co-registered modalities on the encoder's axial slice grid
(``[n, M, S, S]`` robust z-scores), its label map on the same slices (class indices), and the
geometry that maps slice predictions back to the source image.

The first modality goes through ``preprocess_volume`` exactly as in pretraining and fixes the
slice grid (crop, kept slices, zoom); the others are sampled onto that grid
(``volume_to_slices``) and z-scored with their own robust statistics. Prepared cases are stored
as ``.npy`` files (memory-mapped on reading) in a folder keyed by the input files and settings,
so a rerun, another head or another seed does not preprocess again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from braindino.downstream.segmentation.regions import LabelScheme
from braindino.errors import DataError
from braindino.features.identity import file_fingerprint
from braindino.io import Volume, read_volume
from braindino.preprocess import (
    SliceGeometry,
    intensity_stats,
    preprocess_volume,
    volume_to_slices,
)
from braindino.preprocess.settings import resolve_settings

STORE_VERSION = 1


@dataclass
class CaseSlices:
    """A prepared case: ``images`` float16 ``[n, M, S, S]``, ``labels`` uint8 ``[n, S, S]``
    (class indices; ``None`` without a mask), ``z`` (resampled slice indices) and ``geometry``."""

    subject: str
    images: np.ndarray
    labels: np.ndarray | None
    z: np.ndarray
    geometry: SliceGeometry

    @property
    def foreground(self) -> np.ndarray:
        """Per slice: whether it holds any labelled (non-background) pixel."""
        if self.labels is None:
            return np.zeros(len(self.z), bool)
        return self.labels.reshape(len(self.z), -1).max(axis=1) > 0


def check_same_grid(reference: Volume, other: Volume) -> None:
    """Raise DataError unless ``other`` lies on ``reference``'s voxel grid (co-registered)."""
    if other.shape != reference.shape or not np.allclose(
        other.affine, reference.affine, atol=1e-3 * max(reference.spacing)
    ):
        raise DataError(
            f"not on the grid of {reference.path} (shape {other.shape} vs {reference.shape}, "
            "or a different affine)",
            path=other.path,
            fix="resample every modality and the label map onto the first image's grid",
        )


def read_mask(path: str | Path, reference: Volume) -> Volume:
    """A label map read like the images (canonical RAS), checked against the reference grid."""
    mask = read_volume(path, check=False)
    check_same_grid(reference, mask)
    return mask


def prepare_case(
    subject: str,
    images: list[str],
    mask: str | None,
    scheme: LabelScheme,
    preprocess: DictConfig | dict,
    store: Path | None = None,
) -> CaseSlices:
    """Read and preprocess one case (see the module docstring); with a ``store`` folder, the
    case stored there (memory-mapped), prepared and saved there first if missing."""
    if store is not None:
        folder = Path(store) / case_key(images, mask, scheme, preprocess)
        if not (folder / "case.json").is_file():
            _save_case(prepare_case(subject, images, mask, scheme, preprocess), folder)
        meta = json.loads((folder / "case.json").read_text(encoding="utf-8"))
        labels_path = folder / "labels.npy"
        return CaseSlices(
            subject=subject,
            images=np.load(folder / "images.npy", mmap_mode="r"),
            labels=np.load(labels_path, mmap_mode="r") if labels_path.is_file() else None,
            z=np.asarray(meta["z"], np.int64),
            geometry=_geometry_from(meta["geometry"]),
        )
    settings = resolve_settings(preprocess)
    volumes = [read_volume(p) for p in images]
    reference = volumes[0]
    for other in volumes[1:]:
        check_same_grid(reference, other)
    stack = preprocess_volume(reference, preprocess)
    geometry, z = stack.geometry, stack.z
    channels = [
        stack.slices.astype(np.float32) * np.float32(stack.scale) + np.float32(stack.offset)
    ]
    if len(volumes) > 1:
        inside = volume_to_slices(np.ones(reference.shape, np.uint8), z, geometry, 0) > 0
        for other in volumes[1:]:
            stats = intensity_stats(
                other.data,
                settings.lower_percentile,
                settings.upper_percentile,
                settings.max_samples,
                path=other.path,
            )
            sampled = stats.apply(volume_to_slices(other.data, z, geometry, order=1))
            sampled[~inside] = np.float32(stats.z_low)
            channels.append(sampled)
    labels = None
    if mask is not None:
        classes = scheme.to_classes(read_mask(mask, reference).data, path=str(mask))
        labels = volume_to_slices(classes, z, geometry, order=0)
    return CaseSlices(subject, np.stack(channels, axis=1).astype(np.float16), labels, z, geometry)


# ------------------------------------------------------------------------------ on-disk store
def _save_case(case: CaseSlices, folder: Path) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "images.npy", case.images)
    if case.labels is not None:
        np.save(tmp / "labels.npy", case.labels)
    meta = {"subject": case.subject, "z": case.z.tolist(), "geometry": asdict(case.geometry)}
    text = json.dumps(meta, default=lambda array: np.asarray(array).tolist())  # the affines
    (tmp / "case.json").write_text(text, encoding="utf-8")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process stored it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _geometry_from(data: dict) -> SliceGeometry:
    fields = {key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}
    for key in ("source_affine", "resampled_affine"):
        fields[key] = np.asarray(data[key], np.float64)
    return SliceGeometry(**fields)


def case_key(
    images: list[str], mask: str | None, scheme: LabelScheme, preprocess: DictConfig | dict
) -> str:
    """Hex key of a prepared case: its files (path, size, time), the scheme and preprocessing."""
    settings = (
        OmegaConf.to_container(preprocess, resolve=True)
        if isinstance(preprocess, DictConfig)
        else preprocess
    )
    parts = {
        "version": STORE_VERSION,
        "files": [file_fingerprint(p) for p in images],
        "mask": file_fingerprint(mask) if mask else None,
        "scheme": [list(scheme.values)],
        "preprocess": settings,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
