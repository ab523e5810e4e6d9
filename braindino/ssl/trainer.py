"""The pretraining loop: one code path for 1 CPU process, N CPU processes (gloo) and N GPUs.

The student is DDP-wrapped, or sharded with FSDP2 (``run.fsdp`` or an accelerate FSDP config; see
``braindino.ssl.sharding``) for large models.

Every iteration's randomness is seeded from (seed, iteration, ...): the augmentation and masks of
each group of ``data.augment_group`` consecutive slices of the global batch from its group index
(so W processes with batch b crop and mask exactly like one process with batch W*b when the group
size is the same), drop path from the rank. The sampler position, optimiser and teachers are
checkpointed, so an interrupted and resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from braindino.config import save_config
from braindino.engine.checkpoint import atomic_save, load_checkpoint, save_checkpoint
from braindino.engine.collective import close_process_group, main_decides
from braindino.engine.logger import RunLogger
from braindino.engine.resume import check_resume_config, find_resume
from braindino.engine.run_lock import RunLock
from braindino.engine.signals import install_signal_handlers, signals_blocked
from braindino.errors import BrainDinoError, ConfigError
from braindino.ssl.build import (
    CPU_PROCESSES_TORCH,  # noqa: F401  (tests import it from here)
    RESUME_MAY_CHANGE,
    augment_group_size,
    build_accelerator,
    build_meta_arch,
    build_optimizer,
    build_schedules,
    check_distribution,
    cpu_cores,
    cpu_recipe_warning,
    open_shards,
    wants_sharding,
)
from braindino.ssl.data import (
    augment_groups,
    build_loader,
    crop_size_mixture,
    log_crop_images,
    sampling_weights,
)
from braindino.ssl.gram_teacher import update_gram_teacher
from braindino.ssl.meta_arch import SelfDistillation
from braindino.ssl.param_groups import apply_schedule_values, clip_gradients
from braindino.ssl.periodic_probe import PeriodicProbe, check_probe_config
from braindino.ssl.sharding import (
    load_full_optimizer_state,
    shard_student,
    unsharded,
)
from braindino.ssl.training_state import restore_training_state, training_state


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """The seed of one iteration on one rank (independent of how the run was interrupted)."""
    return (seed * 1_000_003 + iteration * 7_919 + rank * 104_729) % (2**63 - 1)


_check_distribution = check_distribution  # the name tests/test_distributed.py imports
CLIPPED_PARTS = ("backbone", "dino_head", "ibot_head")  # each clipped on its own (DINOv2)


class Trainer:
    """Holds one run's state; :meth:`fit` trains until the schedule ends or a signal arrives.

    The main process holds the run folder's lock (``run.lock``) from the start until :meth:`fit`
    ends (or :meth:`close`). Resuming with a config that differs from the checkpoint's in a key
    outside ``RESUME_MAY_CHANGE`` is refused unless ``allow_config_change``.
    """

    def __init__(self, cfg: DictConfig, allow_config_change: bool = False):
        self.cfg = cfg
        self.allow_config_change = allow_config_change
        self.acc = build_accelerator(cfg)
        _check_distribution(self.acc)
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.run_dir = Path(cfg.run.out)
        self.reader = open_shards(cfg)
        self.batch_size = int(cfg.data.batch_size_per_device)
        self.augment_group = augment_group_size(cfg, self.batch_size)
        self.seed = int(cfg.run.seed)
        self.sharded = wants_sharding(cfg, self.acc)
        if self.sharded and cfg.run.compile:
            raise ConfigError(
                "run.compile is not supported with FSDP sharding",
                path="run.compile",
                fix="set run.compile=false, or train with DDP (run.fsdp=false)",
            )
        if cfg.probe.enabled:  # a probe config mistake fails now, not after training
            check_probe_config(cfg.probe)
        self._notes: list[str] = []  # for log.txt, once it is open
        self.lock = RunLock(self.run_dir)
        main_decides(self._lock, self.acc.is_main_process)
        try:
            self._build()
        except BaseException:
            self.lock.release()
            raise

    def _build(self) -> None:
        cfg = self.cfg
        torch.manual_seed(self.seed)  # identical initial weights on every rank
        self.meta: SelfDistillation = build_meta_arch(cfg, self.acc.device.type)
        path = "fused" if self.meta.fused else "plain"  # what run.fused (auto) chose, for log.txt
        self._notes.append(f"step: the {path} path (run.fused={cfg.run.fused}, {self.acc.device})")
        parameters = sum(p.numel() for p in self.meta.student.parameters())
        self._say(cpu_recipe_warning(cfg, parameters, self.acc.device.type, cpu_cores()))
        self.augment = crop_size_mixture(cfg)  # .for_step(i): iteration i's crop sizes
        self.schedules = build_schedules(cfg, self.world)
        # A sharded student gets its optimiser after sharding (its parameters are replaced).
        self.optimizer = None if self.sharded else build_optimizer(cfg, self.meta)
        self._optimizer_state: dict | None = None
        self.step = self.nonfinite_in_row = self.skipped_steps = self.gram_refreshes = 0
        self._probe: PeriodicProbe | None = None
        self._resume_state: dict | None = None
        sampler_state = self._maybe_resume()
        self.meta.to(self.acc.device)
        if self.sharded:
            shard_student(self.meta.student, self.acc.device)
            self.optimizer = build_optimizer(cfg, self.meta)
            if self._optimizer_state is not None:
                load_full_optimizer_state(self.meta.student, self.optimizer, self._optimizer_state)
                self._optimizer_state = None
            self.student = self.meta.student
        else:
            if cfg.run.compile:  # blocks compiled in place: same entry points, same keys
                self.meta.student.backbone.compile_blocks()
                self.meta.teacher.backbone.compile_blocks()
            self.student, self.optimizer = self.acc.prepare(self.meta.student, self.optimizer)
        self.loader, self.sampler = build_loader(
            self.reader,
            self.batch_size,
            int(cfg.data.num_workers),
            self.seed,
            self.rank,
            self.world,
            sampling_weights(self.reader, cfg.data.weights),
            sampler_state,
            pin_memory=self.acc.device.type == "cuda",
        )
        self.start_step = self.step
        self.log = RunLogger(self.run_dir, enabled=self.acc.is_main_process)
        for note in self._notes:
            self.log.line(note)
        if self.acc.is_main_process:
            save_config(cfg, self.run_dir / "config.yaml")

    # ------------------------------------------------------------------ start-up
    def _lock(self) -> None:
        self.lock.acquire()
        if self.lock.unsupported:
            self._say(f"{self.lock.path}: not locked ({self.lock.unsupported} on this file system)")

    def _say(self, line: str | None) -> None:
        """Print a line on stderr (main process) and keep it for log.txt."""
        if line and self.acc.is_main_process:
            print(line, file=sys.stderr, flush=True)
            self._notes.append(line)

    def close(self) -> None:
        """Close the logs and release the run folder (:meth:`fit` does it when it ends)."""
        if hasattr(self, "log"):
            self.log.close()
        self.lock.release()

    # ------------------------------------------------------------------ checkpoints
    def _choose_checkpoint(self) -> str | None:
        path, state, notes = find_resume(str(self.cfg.run.resume), self.run_dir)
        for note in notes:
            self._say(note)
        self._resume_state = state
        return None if path is None else str(path)

    def _maybe_resume(self) -> dict | None:
        chosen = main_decides(self._choose_checkpoint, self.acc.is_main_process)
        if chosen is None:
            return None
        path = Path(chosen)
        state = self._resume_state if self.acc.is_main_process else load_checkpoint(path)
        self._resume_state = None
        changes = check_resume_config(
            state, self.run_dir, self.cfg, RESUME_MAY_CHANGE, path, self.allow_config_change
        )
        if changes:
            self._say(f"config changed on resume (--allow-config-change): {'; '.join(changes)}")
        return restore_training_state(self, state, path)

    def state_dict(self) -> dict:
        """Everything a resume needs (tensors, numbers, strings and containers only).

        With a sharded student every process must call it (the full tensors are gathered)."""
        return training_state(self)

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (main process), all ranks in step."""
        self.acc.wait_for_everyone()
        path = None
        state = self.state_dict() if self.sharded or self.acc.is_main_process else None
        if self.acc.is_main_process:
            path = save_checkpoint(
                state, self.run_dir, self.step, int(self.cfg.run.keep_checkpoints)
            )
            self.log.line(f"checkpoint {path.name}")
        self.acc.wait_for_everyone()
        return path

    # ------------------------------------------------------------------ one step
    def _batch(self, raw: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        torch.manual_seed(step_seed(self.seed, self.step, self.rank))  # drop path etc.
        # Augmentation group k of the global batch (consecutive slices) is seeded by k, so the
        # crops do not depend on how the global batch is split over processes.
        groups = self.batch_size // self.augment_group
        first = self.rank * groups
        seeds = [step_seed(self.seed, self.step, first + k) for k in range(groups)]
        images, scale, offset = (t.to(self.acc.device, non_blocking=True) for t in raw)
        return augment_groups(self.augment.for_step(self.step), images, scale, offset, seeds)

    def _train_step(self, batch: dict, values: dict) -> dict[str, torch.Tensor] | None:
        apply_schedule_values(
            self.optimizer, values["lr"], values["weight_decay"], values["freeze_last_layer"]
        )
        with self.acc.autocast():
            loss, logs = self.meta.losses(
                batch, values["teacher_temp"], values["gram_weight"], student=self.student
            )
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.world > 1:
            finite = self.acc.reduce(finite, reduction="sum") / self.world
        if float(finite) < 1.0:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.acc.backward(loss)
        if values["freeze_last_layer"]:
            self.meta.student.dino_head.drop_last_layer_grad()
            self.meta.student.ibot_head.drop_last_layer_grad()
        clip = self.cfg.optim.clip_grad
        parts = {name: getattr(self.meta.student, name) for name in CLIPPED_PARTS}
        norms = clip_gradients(parts, None if clip is None else float(clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # the EMA needs the whole student
        with unsharded(self.meta.student) if self.sharded else contextlib.nullcontext():
            self.meta.update_teacher(values["momentum"])
        logs.update({f"grad_norm/{k}": v for k, v in norms.items()})
        return logs

    def _global_mean(self, logs: dict) -> dict[str, torch.Tensor]:
        """The logged values averaged over processes: the losses of the whole global batch."""
        if self.world == 1:
            return logs
        names = sorted(logs)
        values = torch.tensor([float(logs[k]) for k in names], device=self.acc.device)
        values = self.acc.reduce(values, reduction="mean")
        return dict(zip(names, values.cpu(), strict=True))

    def _handle_nonfinite(self) -> None:
        self.nonfinite_in_row += 1
        self.skipped_steps += 1
        self.log.line(f"iteration {self.step}: non-finite loss, step skipped")
        limit = int(self.cfg.run.max_nonfinite_steps)
        if self.nonfinite_in_row >= limit:
            path = self.run_dir / f"diagnostic-{self.step:06d}.pt"
            state = self.state_dict() if self.sharded or self.acc.is_main_process else None
            if self.acc.is_main_process:
                atomic_save(state, path)
            raise BrainDinoError(
                f"loss was non-finite for {limit} consecutive iterations (at {self.step}); "
                f"diagnostic checkpoint written to {path.name}",
                path=self.run_dir,
                fix="lower schedule.base_lr, use drop_path 0.1 and optim.betas=[0.9,0.99], "
                "or check the data with python -m braindino.check",
            )

    # ------------------------------------------------------------------ loop
    def fit(self) -> str:
        """Train to the end of the schedule; returns ``"done"``, or ``"interrupted"`` when a signal
        (SIGTERM, SIGUSR1, a first SIGINT) made it checkpoint and stop. Releases the run folder."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> str:
        cfg = self.cfg
        total = self.schedules.total_iters
        if self.step >= total:
            self.log.line("schedule already complete")
            return "done"
        self.log.line(f"training iterations {self.step}..{total - 1} on {self.world} process(es)")
        stop = install_signal_handlers(announce=self.acc.is_main_process)
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not (self.acc.is_main_process and cfg.run.progress),
            desc="pretrain",
            unit="it",
        )
        with signals_blocked():  # workers start with them blocked, then ignore them
            data = iter(self.loader)
        tick, seen = time.perf_counter(), 0
        status, device = "done", self.acc.device
        checkpoint_every, probe_every = int(cfg.run.checkpoint_every), int(cfg.probe.every)
        probed = bool(probe_every) and self.step % probe_every == 0  # a finished run resumed
        try:
            while self.step < total:
                values = self.schedules.at(self.step)
                self.gram_refreshes, line = update_gram_teacher(
                    self.meta, cfg, self.step, self.gram_refreshes, values["gram_weight"], device
                )
                if line:
                    self.log.line(line)
                batch = self._batch(next(data))
                logs = self._train_step(batch, values)
                if logs is None:
                    self._handle_nonfinite()
                else:
                    self.nonfinite_in_row = 0
                seen += self.batch_size * self.world
                self.step += 1
                bar.update(1)
                if logs is not None and self.step % int(cfg.run.log_every) == 0:
                    logs = self._global_mean(logs)
                    elapsed = time.perf_counter() - tick
                    logs.update(_schedule_logs(values, seen / max(elapsed, 1e-9)))
                    self.log.scalars(logs, self.step)
                    bar.set_postfix(loss=f"{float(logs['loss/total']):.3f}")
                    tick, seen = time.perf_counter(), 0
                every = int(cfg.run.image_every)
                if every and self.step % every == 0 and self.acc.is_main_process:
                    log_crop_images(self.log, batch, self.step)
                saved = self.step % checkpoint_every == 0 or self.step == total
                if saved:
                    self.save()
                probed = cfg.probe.enabled and probe_every and self.step % probe_every == 0
                if probed:
                    self.probe()
                if stop.should_exit():
                    names = "+".join(signal.Signals(n).name for n in stop.received)
                    self.log.line(f"signal {names}: checkpointing at {self.step}")
                    if not saved:
                        self.save()
                    status = "interrupted"
                    break
        finally:
            bar.close()
            stop.restore()
        if status == "done" and cfg.probe.enabled and not probed:
            self.probe()
        return status

    def probe(self) -> dict | None:
        """Frozen-feature probe (``probe.classifier``: k-NN or logistic regression) of the EMA
        teacher on the synthetic cohort's probe tasks and the ``probe.labelled`` tasks (main
        process)."""
        if not self.acc.is_main_process:
            return None
        if self._probe is None:
            self._probe = PeriodicProbe(self.cfg.probe, int(self.cfg.model.img_size))
        results = self._probe(self.meta.teacher.backbone)
        self.log.scalars({f"probe/{k}": v for k, v in results.items()}, self.step)
        self.log.line(f"probe at {self.step}: {results}")
        return results


def _schedule_logs(values: dict, images_per_s: float) -> dict[str, float]:
    return {
        "schedule/lr": values["lr"],
        "schedule/weight_decay": values["weight_decay"],
        "schedule/teacher_momentum": values["momentum"],
        "schedule/teacher_temp": values["teacher_temp"],
        "schedule/gram_weight": values["gram_weight"],
        "speed/images_per_s": images_per_s,
    }


def pretrain(cfg: DictConfig, allow_config_change: bool = False) -> str:
    """Run (or resume) the pretraining described by a merged config: ``"done"`` or
    ``"interrupted"`` (see :meth:`Trainer.fit`). ``allow_config_change`` resumes even when the
    config differs from the checkpoint's (the change is recorded in log.txt). The process group is
    torn down before returning (:func:`close_process_group`)."""
    try:
        return Trainer(cfg, allow_config_change=allow_config_change).fit()
    finally:
        close_process_group()
