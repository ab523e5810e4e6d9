"""Dense-probe volumes from a segmentation task's manifest (a BraTS release as downloaded, or
its synthetic stand-in): one modality per case and its label map as the task's class indices."""

from __future__ import annotations

from braindino.errors import ConfigError
from braindino.io import Volume, read_volume


def segmentation_volumes(
    task: str, data_root: str | None, overrides: list[str], count: int, modality: str
) -> tuple[list[tuple[str, str, Volume]], tuple[str, ...]]:
    """Up to ``count`` ``(subject, image path, class map)`` cases of segmentation ``task``
    (spread through its manifest), the image being the ``modality`` role (e.g. ``FLAIR``) and
    the class map the mask through the task's label scheme (0 background, ``i`` its i-th label);
    and the class names (``"no tumour"`` first)."""
    from braindino.analysis.volumes import spread
    from braindino.downstream.segmentation.regions import LabelScheme
    from braindino.tasks import load_task
    from braindino.tasks.segmentation import segmentation_manifest

    config = load_task(task, overrides or None)
    manifest = segmentation_manifest(config, data_root)
    roles = list(manifest.attrs["roles"])
    if modality not in roles:
        raise ConfigError(
            f"task {config.name} has no {modality} image",
            path="--tumour-modality",
            fix=f"use one of {', '.join(roles)}",
        )
    column = "image" if roles.index(modality) == 0 else f"image{roles.index(modality) + 1}"
    scheme = LabelScheme.from_task(config)
    out = []
    for row in spread(list(manifest.to_dict("records")), count):
        mask = read_volume(row["mask"], check=False)
        classes = scheme.to_classes(mask.data, path=str(row["mask"]))
        out.append((str(row["subject"]), str(row[column]), mask.with_data(classes)))
    return out, ("no tumour", *scheme.names)
