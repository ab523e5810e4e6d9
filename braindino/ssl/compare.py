"""Does pretraining help? Train, then probe the EMA teacher against random initialisations.

One comparison serves ``bench/pretrain_probe_bench.py`` (longer runs, recorded in
``bench/RESULTS.md``) and the CI evidence test (``tests/evidence``): the same architecture is
built at random initialisation under each of ``random_seeds``, the config is trained with the
real ``Trainer``, and every encoder is scored by the same frozen-feature probes. The verdict
compares the pretrained teacher with the *best* random initialisation of each task, so one lucky
or unlucky draw of random weights cannot decide it. The run's teacher-target entropy history is
read back from its TensorBoard log for the collapse check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from braindino.ssl.probe import ProbeSet

Scores = dict[str, dict[str, float]]  # classifier (or probe) -> task -> score


@dataclass
class Comparison:
    """Probe scores of the pretrained teacher and of each random initialisation, with monitors.

    ``entropy``: (iteration, teacher-target entropy / log K) at every logged iteration.
    """

    pretrained: Scores
    random_init: dict[int, Scores]
    iterations: int
    train_seconds: float
    entropy: list[tuple[int, float]] = field(default_factory=list)
    monitors: dict[str, float] = field(default_factory=dict)

    def best_random(self, classifier: str, task: str) -> float:
        """The best score any random initialisation reached on ``task``."""
        return max(scores[classifier][task] for scores in self.random_init.values())

    def gains(self, classifier: str) -> dict[str, float]:
        """Per task: pretrained score minus the best random-initialisation score."""
        return {
            task: score - self.best_random(classifier, task)
            for task, score in self.pretrained[classifier].items()
        }

    def as_dict(self) -> dict:
        """JSON-ready summary (scores rounded to 3 decimals)."""

        def rounded(scores: Scores) -> Scores:
            return {c: {t: round(v, 3) for t, v in s.items()} for c, s in scores.items()}

        return {
            "iterations": self.iterations,
            "train_seconds": round(self.train_seconds),
            "random_init": {str(seed): rounded(s) for seed, s in self.random_init.items()},
            "pretrained": rounded(self.pretrained),
            "gains": rounded({c: self.gains(c) for c in self.pretrained}),
            "entropy_range": entropy_range(self.entropy),
            "monitors": self.monitors,
        }


def score_encoder(
    probes: ProbeSet, backbone: torch.nn.Module, classifiers: Sequence[str], k: int = 10
) -> Scores:
    """Every probe task's balanced accuracy under each classifier (``knn``, ``logreg``)."""
    return {name: probes.evaluate(backbone, k, classifier=name) for name in classifiers}


def _scalar_events(run_dir: str | Path):
    """The run's TensorBoard log, every scalar kept."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0}).Reload()


def teacher_entropy_history(run_dir: str | Path) -> list[tuple[int, float]]:
    """(iteration, teacher-target entropy / log K) for every logged step of a run."""
    events = _scalar_events(run_dir)
    entropy = events.Scalars("monitor/teacher_entropy")
    log_k = events.Scalars("monitor/teacher_entropy_max")
    return [(e.step, e.value / m.value) for e, m in zip(entropy, log_k, strict=True)]


def last_scalars(run_dir: str | Path, tags: Sequence[str]) -> dict[str, float]:
    """The last logged value of each TensorBoard scalar ``tag`` of a run."""
    events = _scalar_events(run_dir)
    return {tag: round(events.Scalars(tag)[-1].value, 3) for tag in tags}


def entropy_range(history: list[tuple[int, float]]) -> list[float]:
    """[lowest, highest] teacher entropy / log K over a run (NaN, NaN when nothing logged)."""
    values = [v for _, v in history]
    return [round(min(values), 3), round(max(values), 3)] if values else [math.nan, math.nan]


def random_init_backbone(cfg: DictConfig, seed: int) -> torch.nn.Module:
    """The teacher backbone of ``cfg``'s architecture as built after ``torch.manual_seed(seed)``."""
    from braindino.ssl.build import build_meta_arch

    torch.manual_seed(seed)
    return build_meta_arch(cfg).teacher.backbone


def compare_with_random_init(
    cfg: DictConfig,
    probes: ProbeSet,
    random_seeds: Sequence[int] = (12345, 1),
    classifiers: Sequence[str] = ("logreg", "knn"),
    k: int = 10,
) -> Comparison:
    """Probe ``cfg``'s architecture at random init (one build per seed), train ``cfg`` to the
    end of its schedule, probe the EMA teacher, and return both with the run's monitors."""
    return pretrain_and_compare(
        cfg, lambda backbone, _: score_encoder(probes, backbone, classifiers, k), random_seeds
    )


def pretrain_and_compare(
    cfg: DictConfig,
    score: Callable[[torch.nn.Module, str], Scores],
    random_seeds: Sequence[int] = (12345, 1),
) -> Comparison:
    """The comparison of :func:`compare_with_random_init` under any frozen-encoder ``score``
    (e.g. a dense probe): ``score(backbone, name)`` returns ``{probe: {task: score}}`` for the
    backbone ``name`` (``"random <seed>"`` for each random build, then ``"pretrained"`` for the
    EMA teacher once ``cfg`` is trained to the end of its schedule)."""
    from braindino.ssl.trainer import Trainer

    random_init = {
        seed: score(random_init_backbone(cfg, seed), f"random {seed}") for seed in random_seeds
    }
    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    seconds = time.perf_counter() - start
    pretrained = score(trainer.meta.teacher.backbone, "pretrained")
    run_dir = Path(str(cfg.run.out))
    monitors = last_scalars(
        run_dir,
        ["loss/dino_global", "loss/ibot", "monitor/feature_std", "monitor/effective_rank"],
    )
    return Comparison(
        pretrained=pretrained,
        random_init=random_init,
        iterations=trainer.step,
        train_seconds=seconds,
        entropy=teacher_entropy_history(run_dir),
        monitors=monitors,
    )
