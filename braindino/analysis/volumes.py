"""The volumes the maps, retrieval and embedding analyses look at, with what is known about
each (the colour columns of the embedding map): a task's manifest, a folder of volumes, or the
dense probes' synthetic subjects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from braindino.errors import DataError
from braindino.io import Volume

#: manifest columns an embedding map is coloured by, when present with more than one value
COLOUR_COLUMNS = (
    "dataset",
    "source",
    "sequence",
    "modality",
    "label",
    "diagnosis",
    "age",
    "target",
)


@dataclass
class MapVolume:
    """One volume to encode: ``image`` (a path or an in-memory ``Volume``) and ``info``
    (column -> value, e.g. dataset, sequence, diagnosis, age)."""

    subject: str
    image: str | Volume
    info: dict = field(default_factory=dict)


def spread(items: list, count: int) -> list:
    """Up to ``count`` items taken evenly through ``items`` (all when ``count`` covers them)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def task_volumes(
    task: str, data_root: str | None, overrides: list[str], count: int
) -> list[MapVolume]:
    """Up to ``count`` volumes of ``task``'s manifest (its first image per sample), spread
    through the manifest; the manifest's colour columns go into ``info``."""
    from braindino.tasks import load_manifest, load_task

    manifest = load_manifest(load_task(task, overrides or None), root=data_root)
    rows = spread(list(manifest.to_dict("records")), count)
    out = []
    for row in rows:
        info = {c: row[c] for c in COLOUR_COLUMNS if row.get(c) is not None and row[c] == row[c]}
        if "label" in info:
            info.pop("target", None)  # a class task's target is the label's index
        out.append(MapVolume(str(row["subject"]), str(row["image"]), info))
    return out


def folder_volumes(folder: str | Path, count: int) -> list[MapVolume]:
    """Up to ``count`` volume files (or DICOM series) found under ``folder``."""
    from braindino.data.inputs import find_volumes

    paths = find_volumes(folder)
    if not paths:
        raise DataError("no volume files found", path=folder, fix="give a folder of NIfTI/MGZ/...")
    return [
        MapVolume(Path(p).name.split(".")[0], p, {"folder": Path(p).parent.name})
        for p in spread(paths, count)
    ]
