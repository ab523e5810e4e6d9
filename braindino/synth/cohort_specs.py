"""What each synthetic cohort contains: contrasts, skull, pathology, and the tasks it serves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from braindino.errors import ConfigError

SEQUENCES = ("T1", "T1c", "T2", "FLAIR")


@dataclass(frozen=True)
class CohortSpec:
    """One cohort: ``name`` is the ``--tasks`` key, ``code`` a stable id that seeds its subjects."""

    name: str
    code: int
    folder: str  # top folder under DIR
    modalities: tuple[str, ...]
    skull: bool  # False: skull-stripped (zero background), as the real release
    pathology: str  # none | dementia | neurodev | glioma | stroke
    weight: int  # share of --subjects N
    tasks: tuple[str, ...]
    storage: str  # axis codes the files are stored in (readers must reorient to RAS)


COHORTS: dict[str, CohortSpec] = {
    spec.name: spec
    for spec in (
        CohortSpec("adni", 1, "ADNI", ("T1",), True, "dementia", 45, ("adni", "knn"), "PSR"),
        CohortSpec("oasis", 2, "OASIS", ("T1",), True, "dementia", 30, ("oasis", "knn"), "LAS"),
        CohortSpec("abide", 3, "ABIDE", ("T1",), True, "neurodev", 30, ("abide",), "RPI"),
        CohortSpec("ixi", 4, "IXI", ("T1", "T2"), True, "none", 35, ("brain_age",), "PIR"),
        CohortSpec(
            "brats2021",
            5,
            "BraTS2021",
            SEQUENCES,
            False,
            "glioma",
            15,
            ("brats_seg", "brats_sequence"),
            "LPS",
        ),
        CohortSpec(
            "brats2023", 6, "BraTS2023", SEQUENCES, False, "glioma", 5, ("brats_seg",), "LPS"
        ),
        CohortSpec(
            "upenn",
            7,
            "UPENN-GBM",
            SEQUENCES,
            False,
            "glioma",
            15,
            ("upenn_survival_cls", "upenn_cox"),
            "LPS",
        ),
        CohortSpec("ucsf", 8, "UCSF-PDGM", SEQUENCES, False, "glioma", 15, ("ucsf_idh",), "LPS"),
        CohortSpec("atlas", 9, "ATLAS_2", ("T1",), True, "stroke", 20, ("atlas_stroke",), "RAS"),
    )
}

POOL_CODE = 100  # seeds the healthy pretraining-pool subjects
# the pool cycles through these styles: (cohort whose look it copies, its modalities)
POOL_STYLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ixi", ("T1", "T2")),
    ("brats2021", SEQUENCES),
    ("adni", ("T1",)),
    ("ucsf", SEQUENCES),
    ("abide", ("T1",)),
    ("upenn", SEQUENCES),
    ("oasis", ("T1",)),
    ("atlas", ("T1",)),
    ("brats2023", SEQUENCES),
)


def task_cohorts() -> dict[str, tuple[str, ...]]:
    """Task name (BrainDINO's registry) -> the cohorts that serve it."""
    out: dict[str, list[str]] = {}
    for spec in COHORTS.values():
        for task in spec.tasks:
            out.setdefault(task, []).append(spec.name)
    return {task: tuple(names) for task, names in out.items()}


def resolve_cohorts(tasks: Iterable[str] | str | None) -> list[str]:
    """Cohort names for a mix of cohort and task names (``None``/``"all"``: every cohort)."""
    if tasks is None:
        return list(COHORTS)
    if isinstance(tasks, str):
        tasks = [t for t in tasks.replace(",", " ").split() if t]
    names: list[str] = []
    by_task = task_cohorts()
    for item in tasks:
        key = item.strip().lower()
        if key == "all":
            return list(COHORTS)
        if key in COHORTS:
            found: tuple[str, ...] = (key,)
        elif key in by_task:
            found = by_task[key]
        else:
            known = ", ".join(dict.fromkeys([*COHORTS, *sorted(by_task)]))
            raise ConfigError(
                f"unknown task or cohort '{item}'",
                path="tasks",
                fix=f"choose from: {known}, all",
            )
        names += [n for n in found if n not in names]
    if not names:
        raise ConfigError("no tasks given", path="tasks", fix="name at least one task, or 'all'")
    return [n for n in COHORTS if n in names]  # stable order
