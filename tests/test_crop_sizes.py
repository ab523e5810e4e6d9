"""The high-resolution stage (configs/pretrain/highres.yaml): crop sizes drawn per step from a
mixture, identical in every worker and process, one size per batch, and a run that resumes."""

from __future__ import annotations

import os
import signal
from collections import Counter

import numpy as np
import pytest
import torch
from test_pretrain import _overrides, _weights, shards  # noqa: F401  (the shard folder fixture)
from torch.utils.data import DataLoader, Dataset

from braindino.config import load_config
from braindino.data.crop_sizes import CropSizeMixture, draw_entry
from braindino.errors import ConfigError
from braindino.ssl.data import augment_groups
from braindino.ssl.trainer import Trainer, pretrain

WEIGHTS = [0.3, 0.3, 0.3, 0.05, 0.05]
# two triples small enough for the micro model on 64 px slices
TINY_SIZES = "[{global: 48, local: 16, gram: 64, weight: 1}, {global: 64, local: 32, weight: 1}]"


def test_the_draw_follows_the_mixture_and_depends_only_on_seed_and_step():
    steps = 20_000
    draws = [draw_entry(step, seed=7, weights=WEIGHTS) for step in range(steps)]
    counts = Counter(draws)
    for index, weight in enumerate(WEIGHTS):  # 4 binomial standard deviations at most
        tolerance = 4 * np.sqrt(weight * (1 - weight) / steps)
        assert abs(counts[index] / steps - weight) < tolerance, (index, counts[index])
    assert draws == [draw_entry(step, seed=7, weights=WEIGHTS) for step in range(steps)]
    other = [draw_entry(step, seed=8, weights=WEIGHTS) for step in range(steps)]
    assert np.mean(np.array(other) != np.array(draws)) > 0.5  # another seed, another stream
    assert {draw_entry(s, 0, [1.0, 0.0, 1.0]) for s in range(500)} == {0, 2}  # weight 0: never


class _DrawPerStep(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, step: int) -> tuple[int, int, int]:
        info = torch.utils.data.get_worker_info()
        return step, draw_entry(step, 3, WEIGHTS), -1 if info is None else info.id


def test_two_dataloader_workers_draw_what_the_main_process_draws():
    loader = DataLoader(_DrawPerStep(), batch_size=None, num_workers=2)
    seen = list(loader)
    assert {worker for _, _, worker in seen} == {0, 1}
    for step, drawn, _ in seen:
        assert drawn == draw_entry(step, 3, WEIGHTS)


def test_each_batch_is_cut_at_its_steps_one_size_triple():
    entries = [
        {"global": 48, "local": 16, "gram": 64, "weight": 1},
        {"global": 64, "local": 32, "gram": None, "weight": 1},
    ]
    augment = {"local_crops": {"number": 2}}
    mixture = CropSizeMixture(augment, entries, seed=0, gram_ratio=2, gram=True)
    images = torch.randint(0, 255, (4, 64, 64), dtype=torch.uint8)
    scale, offset = torch.full((4,), 0.02), torch.zeros(4)
    used = set()
    for step in range(12):
        index = mixture.index(step)
        used.add(index)
        g, local, gram = [(48, 16, 64), (64, 32, 128)][index]  # null gram: 2 x the global
        batch = augment_groups(mixture.for_step(step), images, scale, offset, seeds=[step, 99])
        assert batch["global_crops"].shape == (8, 1, g, g)
        assert batch["local_crops"].shape == (8, 1, local, local)
        assert batch["gram_crops"].shape == (8, 1, gram, gram)
        assert batch["masks"].shape == (8, (g // 16) ** 2)
    assert used == {0, 1}
    no_gram = CropSizeMixture(augment, entries, seed=0, gram_ratio=2, gram=False)
    assert "gram_crops" not in no_gram.for_step(0)(images, scale, offset)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"global": 64}, "'global' and 'local'"),
        ({"global": 64, "local": 32, "size": 1}, "unknown key"),
        ({"global": 64, "local": 32, "weight": 0}, "positive number"),
        ({"global": 64, "local": 32, "gram": 100}, "multiple of the patch size"),
    ],
)
def test_a_bad_mixture_entry_is_one_config_error(entry, message):
    with pytest.raises(ConfigError, match=message):
        CropSizeMixture({}, [entry], gram=True)


def _highres_cfg(folder, out, *extra):
    return load_config(
        "pretrain/default",
        ["pretrain/tiny", "pretrain/highres"],
        _overrides(folder, out, f"highres.crop_sizes={TINY_SIZES}", *extra),
    )


def test_highres_steps_run_at_the_drawn_sizes_and_resume_exactly(shards, tmp_path, monkeypatch):  # noqa: F811
    cfg = _highres_cfg(shards, tmp_path / "full")
    assert float(cfg.schedule.gram_weight) == 1.5 and int(cfg.gram.refresh_every) == 0
    original = Trainer._train_step
    sizes: dict[int, tuple[int, int]] = {}

    def record(self, batch, values):
        sizes[self.step] = (batch["global_crops"].shape[-1], batch["gram_crops"].shape[-1])
        return original(self, batch, values)

    monkeypatch.setattr(Trainer, "_train_step", record)
    assert pretrain(cfg) == "done"
    expected = {s: [(48, 64), (64, 128)][draw_entry(s, 0, [1, 1])] for s in range(6)}
    assert sizes == expected and len(set(sizes.values())) == 2

    part = tmp_path / "part"

    def stop_at_3(self, batch, values):
        out = original(self, batch, values)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        return out

    monkeypatch.setattr(Trainer, "_train_step", stop_at_3)
    assert pretrain(_highres_cfg(shards, part)) == "interrupted"
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert pretrain(_highres_cfg(shards, part)) == "done"
    a, b = _weights(tmp_path / "full"), _weights(part)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
