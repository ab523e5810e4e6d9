"""The downstream sweep grid (one SLURM array element per cell) and the collected table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braindino.downstream.array import Cell, cell_argv, grid
from braindino.downstream.collect import collect, write_table
from braindino.errors import ConfigError, DataError


def test_grid_is_task_major_and_every_cell_has_its_own_folder():
    cells = grid(["adni", "brain_age"], [0.1, 1.0], [0, 1])
    assert len(cells) == 8
    assert cells[0] == Cell("adni", 0.1, 0) and cells[-1] == Cell("brain_age", 1.0, 1)
    assert len({c.folder() for c in cells}) == 8
    argv = cell_argv(cells[3], Path("sweep"), ["--epochs", "3"])
    assert argv == ["--task", "adni", "--seeds", "1", "--out", "sweep/adni/fraction-1_seed-1",
                    "--label-fraction", "1", "--epochs", "3"]  # fmt: skip
    assert grid(["knn"], [], [2]) == [Cell("knn", None, 2)]  # the task's own fractions
    with pytest.raises(ConfigError, match="at least one task"):
        grid([], [1.0], [0])


def _metrics(folder: Path, task: str, primary: str, seeds: list[int]) -> None:
    folder.mkdir(parents=True)
    results = [
        {"encoder": "encoder", "fraction": 1.0, "seed": s, "n_test": 4,
         "metrics": {primary: {"value": 0.5 + s, "low": 0.1, "high": 0.9}, "other": {}}}
        for s in seeds
    ]  # fmt: skip
    metrics = {"task": task, "primary_metric": primary, "results": results}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


def test_collect_makes_one_row_per_result_with_the_primary_metric(tmp_path):
    _metrics(tmp_path / "b" / "s1", "brain_age", "mae", [1])
    _metrics(tmp_path / "a" / "s0", "adni", "macro_auc", [0])
    _metrics(tmp_path / "b" / "s0", "brain_age", "mae", [0])
    table = collect(tmp_path)
    assert list(zip(table.task, table.seed, table.metric, table.value, strict=True)) == [
        ("adni", 0, "macro_auc", 0.5),
        ("brain_age", 0, "mae", 0.5),
        ("brain_age", 1, "mae", 1.5),
    ]
    assert table.run.tolist() == ["a/s0", "b/s0", "b/s1"]
    csv, md = write_table(table, tmp_path)
    assert len(csv.read_text().splitlines()) == 4
    assert "| brain_age | encoder | 1 | 1 | mae | 1.5 |" in md.read_text()


def test_collect_names_the_folder_or_file_that_is_wrong(tmp_path):
    with pytest.raises(DataError, match=r"no metrics\.json"):
        collect(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"x/metrics\.json.*rerun"):
        collect(tmp_path)
