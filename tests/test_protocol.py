"""The one protocol loop every downstream model kind plugs into (``run_protocol``): every
encoder x head x label fraction x seed is trained once on the kept training subjects only, every
encoder sees the main encoder's preprocessing, and an unavailable natural-image baseline is
skipped and reported instead of ending the run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import braindino.downstream.protocol as protocol
from braindino.downstream.options import ProtocolOptions
from braindino.errors import BrainDinoError
from braindino.tasks import load_task

ENCODER = "random:vit_micro_patch16_dinov3"


class RecordingKind:
    """A model kind that trains nothing: it records what the protocol asks of it."""

    stratify = "class"

    def __init__(self, options: ProtocolOptions) -> None:
        self.options = options
        self.calls: list[tuple] = []
        self.prepared: list[tuple[str, dict]] = []

    def manifest(self, task):
        subjects = [f"s{i:02d}" for i in range(30)]
        labels = ["CN", "MCI", "AD"] * 10
        return pd.DataFrame({"subject": subjects, "patient": subjects, "label": labels})

    def bind(self, task, manifest, splits, out: Path) -> None:
        self.manifest_rows, self.out = manifest, out

    def prepare(self, encoder, label, preprocess):
        self.prepared.append((label, preprocess))
        return label

    def heads(self) -> list[str]:
        return ["a", "b"]

    def train_and_test(self, prepared, head, keep, seed, tags) -> dict:
        train = set(self.manifest_rows.loc[self.manifest_rows["split"] == "train", "subject"])
        assert set(keep) <= train  # label fractions draw from the training split only
        self.calls.append((prepared, head, tags["fraction"], seed, len(keep)))
        return {"head": head, "metrics": {}}

    def write_report(self, results, skipped):
        return {"results": results, "skipped": skipped}


def test_every_encoder_head_fraction_and_seed_is_run_once(tmp_path, monkeypatch) -> None:
    real_load = protocol.load_encoder

    def offline(spec: str):
        if spec == protocol.NATURAL_IMAGE:
            raise BrainDinoError("no network", path=spec, fix="download it first")
        return real_load(spec)

    monkeypatch.setattr(protocol, "load_encoder", offline)
    options = ProtocolOptions(
        task="adni",
        encoder=ENCODER,
        out=str(tmp_path / "run"),
        label_fractions=[0.5, 1.0],
        seeds=[0, 1],
        compare=["random", "natural"],
        preprocess={"spacing": 4.0},
        progress=False,
    )
    kind = RecordingKind(options)
    metrics = protocol.run_protocol(kind, load_task("adni"))

    assert list(metrics["skipped"]) == ["natural_image"]
    assert "no network" in metrics["skipped"]["natural_image"]
    labels = [label for label, _ in kind.prepared]
    assert labels == ["encoder", "random_init"]  # prepared once per available encoder
    assert kind.prepared[0][1] == kind.prepared[1][1]  # the same slices for the baseline
    assert kind.prepared[0][1]["spacing"] == 4.0
    runs = [(p, h, f, s) for p, h, f, s, _ in kind.calls]
    expected = [(e, h, f, s) for e in labels for h in "ab" for f in (0.5, 1.0) for s in (0, 1)]
    assert runs == expected
    sizes = {(f, s): n for _, h, f, s, n in kind.calls if h == "a"}
    assert sizes[(0.5, 0)] < sizes[(1.0, 0)]
    assert [r["encoder_spec"] for r in metrics["results"]][:1] == [ENCODER]
    assert (tmp_path / "run" / "splits.csv").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_a_natural_baseline_is_only_skipped_when_it_is_the_natural_one(tmp_path) -> None:
    options = ProtocolOptions(
        task="adni", encoder=str(tmp_path / "missing"), out=str(tmp_path / "run"), progress=False
    )
    with pytest.raises(BrainDinoError):
        protocol.run_protocol(RecordingKind(options), load_task("adni"))


@pytest.mark.parametrize(
    ("task", "script"),
    [("adni", "classify"), ("brain_age", "regress"), ("upenn_cox", "survival"), ("knn", "knn"),
     ("brats2021", "segment")],
)  # fmt: skip
def test_a_job_array_cell_runs_the_script_of_its_task(task: str, script: str) -> None:
    from braindino.downstream.array import script_of

    assert script_of(task) == script


@pytest.mark.parametrize("script", ["classify", "regress", "survival", "knn", "segment"])
def test_a_command_line_without_flags_gives_the_options_defaults(script: str) -> None:
    """The options dataclasses are the one source of the scripts' defaults."""
    from braindino.downstream.cli import EXAMPLES, parse_options
    from braindino.downstream.options import RunOptions, SegmentOptions

    parsed = parse_options(script, [])
    task = EXAMPLES[script]
    expected = SegmentOptions(task=task) if script == "segment" else RunOptions(task, script=script)
    assert parsed == expected
    changed = parse_options(script, ["--epochs", "3", "--batch-size", "2"])
    assert (changed.epochs, changed.batch_size) == (3, 2)
