"""``generate_cohort``: write the whole synthetic cohort (all layouts, truth, pool, README).

Subjects are independent jobs (seeded by seed, cohort and index), run in worker processes and
written by the worker, so the bytes on disk do not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from braindino.errors import ConfigError, DataError
from braindino.synth.anatomy import check_resolution, load_anatomy
from braindino.synth.cohort_specs import COHORTS, POOL_CODE, POOL_STYLES, resolve_cohorts
from braindino.synth.knobs import SynthKnobs
from braindino.synth.layouts import WrittenSubject, layout_for, write_tables
from braindino.synth.nifti import image_to_int16, save_nifti
from braindino.synth.subject import synthesize_subject
from braindino.synth.tables import write_csv

CONFIG_NAME = "cohort.json"
POOL_DIR = "pretrain_pool"
POOL_MANIFEST = "pretrain_pool.csv"
GENERATOR_VERSION = 1


def plan_counts(subjects: int | dict[str, int], cohorts: list[str]) -> dict[str, int]:
    """Subjects per cohort: an int is split by the cohorts' weights; a dict gives them directly."""
    if isinstance(subjects, dict):
        counts = {}
        for name, n in subjects.items():
            if name not in COHORTS:
                raise ConfigError(
                    f"unknown cohort '{name}' in subjects",
                    path="subjects",
                    fix=f"use cohort names: {', '.join(COHORTS)}",
                )
            if int(n) < 0:
                raise ConfigError(f"negative count for '{name}'", path="subjects", fix="use >= 0")
            counts[name] = int(n)
        return {name: counts.get(name, 0) for name in cohorts}
    total = int(subjects)
    if total < len(cohorts):
        raise ConfigError(
            f"{total} subjects cannot cover {len(cohorts)} cohorts",
            path="subjects",
            fix=f"give at least {len(cohorts)} subjects, or fewer tasks",
        )
    weights = {name: COHORTS[name].weight for name in cohorts}
    scale = total / sum(weights.values())
    counts = {name: max(1, int(w * scale)) for name, w in weights.items()}
    by_remainder = sorted(
        cohorts, key=lambda n: weights[n] * scale - int(weights[n] * scale), reverse=True
    )
    i = 0
    while sum(counts.values()) < total:
        counts[by_remainder[i % len(cohorts)]] += 1
        i += 1
    while sum(counts.values()) > total:
        largest = max(counts, key=lambda n: counts[n])
        counts[largest] -= 1
    return counts


def _task_job(job: tuple) -> tuple[str, int, WrittenSubject, dict]:
    cohort, index, seed, resolution, knobs, root = job
    anat = load_anatomy(resolution)
    spec = COHORTS[cohort]
    data = synthesize_subject(anat, spec, index, seed, knobs)
    written = layout_for(cohort).write_subject(Path(root) / spec.folder, index, data)
    return cohort, index, written, data.truth


def _pool_job(job: tuple) -> tuple[str, int, list[dict], dict]:
    _, index, seed, resolution, knobs, root = job
    anat = load_anatomy(resolution)
    style, modalities = POOL_STYLES[index % len(POOL_STYLES)]
    spec = COHORTS[style]
    data = synthesize_subject(
        anat, spec, index, seed, knobs, healthy=True, code=POOL_CODE, modalities=modalities
    )
    subject = f"pool{index:04d}"
    rows = []
    for modality, image in data.images.items():
        rel = f"{POOL_DIR}/{spec.folder}/{subject}_{modality}.nii.gz"
        save_nifti(image_to_int16(image), data.affine, Path(root) / rel, spec.storage)
        rows.append(
            {"image": rel, "subject": subject, "dataset": spec.folder, "modality": modality}
        )
    truth = {"subject": subject, "dataset": spec.folder, **data.truth}
    return "pool", index, rows, truth


def _run(job: tuple):
    return _pool_job(job) if job[0] == "pool" else _task_job(job)


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``; clear a previous cohort there; refuse a folder holding other things."""
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder", path=out, fix="give a folder path")
    if out.is_dir() and any(out.iterdir()):
        config = out / CONFIG_NAME
        if not config.is_file():
            raise DataError(
                "folder is not empty and holds no synthetic cohort",
                path=out,
                fix="give a new or empty folder (a previous cohort there is replaced)",
            )
        try:
            previous = json.loads(config.read_text(encoding="utf-8"))["outputs"]
        except (ValueError, KeyError) as exc:
            raise DataError(
                f"unreadable {CONFIG_NAME}", path=config, fix="delete the folder and rerun"
            ) from exc
        for name in previous:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                continue  # only plain entries directly inside ``out`` are ever removed
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check_args(seed: Any, resolution: float, workers: int | None) -> tuple[int, float, int]:
    try:
        seed = int(seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"seed must be an integer, got {seed!r}", path="seed", fix="e.g. 0"
        ) from exc
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}", path="seed", fix="e.g. 0")
    resolution = check_resolution(resolution)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(2, cpus) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", path="workers", fix="e.g. 2")
    return seed, resolution, workers


def generate_cohort(
    out_dir: str | Path,
    subjects: int | dict[str, int] = 200,
    seed: int = 0,
    tasks: Iterable[str] | str | None = None,
    resolution: float = 2.0,
    pool_subjects: int | None = None,
    knobs: dict[str, float] | SynthKnobs | None = None,
    workers: int | None = None,
    baseline: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the synthetic cohort into ``out_dir`` and return the paths of what was written.

    ``subjects``: total (split over the cohorts by weight) or ``{cohort: n}``; ``tasks``: cohort
    or task names (default: all); ``pool_subjects``: healthy pretraining-pool subjects (default
    20 % of the cohort); ``knobs``: effect strengths (see ``SynthKnobs``); ``baseline``: run the
    hand-crafted baseline and put its numbers in the README. Same arguments -> same bytes.
    """
    seed, resolution, workers = _check_args(seed, resolution, workers)
    chosen = resolve_cohorts(tasks)
    if isinstance(subjects, dict):
        outside = sorted(set(subjects) - set(chosen)) if tasks is not None else []
        if outside:
            raise ConfigError(
                f"subjects names cohorts outside the chosen tasks: {', '.join(outside)}",
                path="subjects",
                fix="add them to tasks, or leave tasks unset",
            )
    counts = {c: n for c, n in plan_counts(subjects, chosen).items() if n > 0}
    chosen = [c for c in chosen if c in counts]
    total = sum(counts.values())
    if total == 0:
        raise ConfigError("no subjects requested", path="subjects", fix="ask for at least one")
    if pool_subjects is None:
        pool_subjects = max(len(chosen), round(0.2 * total))
    if int(pool_subjects) < 0:
        raise ConfigError("pool_subjects must be >= 0", path="pool_subjects", fix="e.g. 40")
    knob_values = SynthKnobs.from_overrides(knobs)
    out = Path(out_dir)
    _prepare_out_dir(out)
    config = {
        "generator": "braindino.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "resolution_mm": resolution,
        "subjects": counts,
        "pool_subjects": int(pool_subjects),
        "knobs": knob_values.as_dict(),
        "outputs": sorted(
            {COHORTS[c].folder for c in chosen}
            | {POOL_DIR, POOL_MANIFEST, "README.md", "baseline.json"}
        ),
    }
    # written first, so an interrupted run can be rerun into the same folder
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    load_anatomy(resolution)  # once in the parent: forked workers share it

    jobs = [
        (c, i, seed, resolution, knob_values, str(out)) for c in chosen for i in range(counts[c])
    ]
    jobs += [
        ("pool", i, seed, resolution, knob_values, str(out)) for i in range(int(pool_subjects))
    ]
    # the four-contrast subjects first, so the workers finish together
    ordered = sorted(jobs, key=lambda j: -len(COHORTS[j[0]].modalities) if j[0] != "pool" else -3)
    results = _execute(ordered, workers, progress)

    outputs: dict[str, Any] = {"root": str(out), "cohorts": {}}
    for cohort in chosen:
        outputs["cohorts"][cohort] = _finish_cohort(out, cohort, results)
    outputs.update(_finish_pool(out, results))
    outputs["config"] = str(out / CONFIG_NAME)
    scores = None
    if baseline:
        from braindino.synth.baseline import run_baseline, save_baseline

        scores = run_baseline(out, progress=progress)
        outputs["baseline"] = str(save_baseline(out, scores))
    from braindino.synth.readme import write_readme

    outputs["readme"] = str(write_readme(out, config, scores))
    return outputs


def _execute(jobs: list[tuple], workers: int, progress: bool) -> dict[tuple[str, int], tuple]:
    from tqdm import tqdm

    results: dict[tuple[str, int], tuple] = {}
    bar = tqdm(total=len(jobs), desc="synthetic cohort", unit="subject", disable=not progress)
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            res = _run(job)
            results[(res[0], res[1])] = res
            bar.update()
    else:
        # fork shares the loaded anatomy with the workers; spawn (no fork) reloads it per worker
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for res in pool.map(_run, jobs, chunksize=1):
                results[(res[0], res[1])] = res
                bar.update()
    bar.close()
    return results


def _finish_cohort(out: Path, cohort: str, results: dict) -> dict[str, Any]:
    spec = COHORTS[cohort]
    root = out / spec.folder
    done = sorted((k[1], v) for k, v in results.items() if k[0] == cohort)
    written = [v[2] for _, v in done]
    tables = write_tables(root, written)
    truth_rows = []
    for _, (_, _, w, truth) in done:
        files = {f"file_{role}": rel for role, rel in w.files.items()}
        truth_rows.append({"subject": w.subject, **files, **truth})
    truth_path = write_csv(root / "truth.csv", truth_rows) if truth_rows else None
    return {
        "root": str(root),
        "subjects": len(done),
        "truth": str(truth_path) if truth_path else None,
        "tables": [str(p) for p in tables],
    }


def _finish_pool(out: Path, results: dict) -> dict[str, Any]:
    done = sorted((k[1], v) for k, v in results.items() if k[0] == "pool")
    rows = [row for _, v in done for row in v[2]]
    manifest = write_csv(
        out / POOL_MANIFEST, rows, columns=["image", "subject", "dataset", "modality"]
    )
    truth = [v[3] for _, v in done]
    pool_truth = write_csv(out / POOL_DIR / "truth.csv", truth) if truth else None
    return {
        "pool_manifest": str(manifest),
        "pool_dir": str(out / POOL_DIR),
        "pool_truth": str(pool_truth) if pool_truth else None,
    }
