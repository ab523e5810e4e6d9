"""Two gloo CPU processes with batch b train like one process with batch 2b.

Both runs use the same augmentation group size, KoLeo weight 0 (KoLeo's nearest neighbour is
taken within each process's batch, as in DINOv2, so it differs between b and 2b) and no drop path
(drawn per process). Then the global batch holds the same slices with the same crops and masks,
Sinkhorn–Knopp balances the teacher targets over both processes, the mean of the per-process
losses is the loss of the whole batch, and the gradients all-reduced by DDP are its gradients.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_pretrain import _cfg, shards  # noqa: F401  (the module's shard folder fixture)

from braindino.engine.collective import close_process_group
from braindino.losses import sinkhorn_knopp
from braindino.ssl.trainer import CPU_PROCESSES_TORCH

B = 4  # per-process batch of the 2-process run
STEPS = 4
EXTRA = (
    "loss.koleo=0.0",
    "data.augment_group=2",
    "schedule.epochs=2",
    "schedule.iters_per_epoch=2",
    "run.checkpoint_every=100",
)


def _skip_unless_cpu_processes_work() -> None:
    if torch.__version__ < CPU_PROCESSES_TORCH:
        pytest.skip(
            f"several CPU processes need torch >= {CPU_PROCESSES_TORCH} (the trainer refuses)"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_and_record(shard_dir: str, out: str, batch: int) -> dict:
    """Train STEPS iterations, recording every step's batch, teacher targets and loss terms."""
    from braindino.ssl.trainer import Trainer

    cfg = _cfg(Path(shard_dir), Path(out) / "run", f"data.batch_size_per_device={batch}", *EXTRA)
    trainer = Trainer(cfg)
    steps: list[dict] = []
    meta = trainer.meta
    targets, losses = meta._teacher_targets, meta.losses

    def record_targets(global_crops, masks, temperature):
        made = targets(global_crops, masks, temperature)
        steps.append({"crops": global_crops.clone(), "masks": masks.clone()})
        steps[-1].update(temperature=temperature, logits=made["cls_logits"], dino=made["dino"])
        return made

    def record_losses(batch_dict, *args, **kwargs):
        total, logs = losses(batch_dict, *args, **kwargs)
        steps[-1]["local"] = batch_dict["local_crops"].clone()
        steps[-1]["losses"] = {k: float(v) for k, v in logs.items() if k.startswith("loss/")}
        return total, logs

    meta._teacher_targets, meta.losses = record_targets, record_losses
    initial = {k: v.clone() for k, v in meta.student.state_dict().items()}
    assert trainer.fit() == "done"
    return {
        "steps": steps,
        "teacher": meta.teacher.state_dict(),
        "student": meta.student.state_dict(),
        "initial_student": initial,
    }


def _join(rank: int, port: int) -> None:
    """Environment of process ``rank`` of 2, as torchrun sets it."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
    )
    torch.set_num_threads(1)


def _worker(rank: int, port: int, shard_dir: str, out: str) -> None:
    _join(rank, port)
    try:
        record = _train_and_record(shard_dir, f"{out}/two", B)
        torch.save(record, Path(out) / f"rank{rank}.pt")
    finally:
        close_process_group()  # as pretrain() does, or gloo may abort at exit


def _global_rows(parts: list[torch.Tensor], crops: int) -> torch.Tensor:
    """Join per-rank crop-major rows (crop c of slice i: row c*b + i) into the global layout."""
    shaped = [p.reshape(crops, p.shape[0] // crops, *p.shape[1:]) for p in parts]
    joined = torch.cat(shaped, 1)
    return joined.reshape(-1, *joined.shape[2:])


@pytest.fixture(scope="module")
def runs(shards, tmp_path_factory):  # noqa: F811
    _skip_unless_cpu_processes_work()
    out = tmp_path_factory.mktemp("distributed")
    mp.spawn(_worker, args=(_free_port(), str(shards), str(out)), nprocs=2, join=True)
    two = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    one = _train_and_record(str(shards), str(out / "one"), 2 * B)
    one["run"], two[0]["run"] = out / "one" / "run", out / "two" / "run"
    return one, two


def test_two_processes_see_the_single_process_global_batch(runs):
    one, two = runs
    for step in range(STEPS):
        whole, parts = one["steps"][step], [r["steps"][step] for r in two]
        for key, crops in (("crops", 2), ("masks", 2), ("local", 2)):
            joined = _global_rows([p[key] for p in parts], crops)
            assert torch.equal(joined, whole[key]), (step, key)


def test_losses_match_the_single_process_batch(runs):
    one, two = runs
    for step in range(STEPS):
        whole = one["steps"][step]["losses"]
        assert {"loss/total", "loss/dino_global", "loss/dino_local", "loss/ibot"} <= set(whole)
        for name, value in whole.items():
            if name == "loss/koleo":  # logged, weight 0: nearest neighbours within each process
                continue
            mean = sum(r["steps"][step]["losses"][name] for r in two) / 2
            assert mean == pytest.approx(value, rel=1e-4, abs=1e-6), (step, name)


def test_sinkhorn_targets_are_balanced_over_both_processes(runs):
    one, two = runs
    first = [r["steps"][0] for r in two]
    joined = _global_rows([p["dino"] for p in first], 2)
    torch.testing.assert_close(joined, one["steps"][0]["dino"], rtol=1e-5, atol=1e-6)
    # Each rank balancing its own rows alone would give other targets.
    alone = [sinkhorn_knopp(p["logits"], p["temperature"], 3) for p in first]
    assert not torch.allclose(_global_rows(alone, 2), joined, atol=1e-3)


def test_weights_identical_on_both_ranks_and_close_to_one_process(runs):
    one, two = runs
    for part in ("teacher", "student"):
        for name, value in two[0][part].items():
            assert torch.equal(value, two[1][part][name]), (part, name)
            torch.testing.assert_close(value, one[part][name], rtol=1e-4, atol=1e-5)
    # The comparison means something: training moved the student far beyond the tolerance.
    shift = max(
        float((one["student"][n] - one["initial_student"][n]).abs().max()) for n in one["student"]
    )
    assert shift > 100 * 1e-5


def _logged(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return [e.value for e in sorted(events.Scalars(tag), key=lambda e: e.step)]


def test_logged_losses_are_those_of_the_global_batch(runs):
    one, two = runs
    for tag in ("loss/total", "loss/ibot"):
        single, double = _logged(one["run"], tag), _logged(two[0]["run"], tag)
        assert len(single) == len(double) == STEPS
        assert double == pytest.approx(single, rel=1e-4, abs=1e-6), tag


def test_an_accelerate_fsdp_launch_shards_and_deepspeed_is_refused():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType
    from omegaconf import OmegaConf

    from braindino.errors import ConfigError
    from braindino.ssl.build import wants_sharding as _wants_sharding
    from braindino.ssl.trainer import _check_distribution

    cfg = OmegaConf.create({"run": {"fsdp": False}})
    fsdp = SimpleNamespace(distributed_type=DistributedType.FSDP, num_processes=8)
    assert _wants_sharding(cfg, fsdp)
    ddp = SimpleNamespace(distributed_type=DistributedType.MULTI_GPU, num_processes=8)
    assert not _wants_sharding(cfg, ddp)
    with pytest.raises(ConfigError, match="DeepSpeed"):
        _check_distribution(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED))


@pytest.mark.parametrize(("version", "device", "refused"), [
    ("2.7.1", "cpu", True), ("2.8.0", "cpu", False), ("2.7.1", "cuda", False)])  # fmt: skip
def test_several_cpu_processes_on_a_torch_whose_gloo_hangs_is_one_clear_error(
    monkeypatch, version, device, refused
):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType
    from torch.torch_version import TorchVersion

    from braindino.errors import ConfigError
    from braindino.ssl.trainer import _check_distribution

    monkeypatch.setattr(torch, "__version__", TorchVersion(version))
    acc = SimpleNamespace(
        distributed_type=DistributedType.MULTI_CPU, num_processes=2, device=torch.device(device)
    )
    if refused:
        with pytest.raises(ConfigError, match=rf"launch: .*torch >= 2.8 \(this is {version}"):
            _check_distribution(acc)
    else:
        _check_distribution(acc)
    _check_distribution(SimpleNamespace(**{**vars(acc), "num_processes": 1}))  # one process


def _fsdp_worker(rank: int, port: int, shard_dir: str, run: str, stop_at: int) -> None:
    """A sharded 2-process run; with ``stop_at`` > 0 a SIGUSR1 arrives during that step."""
    from braindino.ssl.trainer import Trainer

    _join(rank, port)
    cfg = _cfg(Path(shard_dir), Path(run), f"data.batch_size_per_device={B}", "run.fsdp=true")
    cfg.merge_with_dotlist(list(EXTRA))
    try:
        trainer = Trainer(cfg)
        assert trainer.sharded
        if stop_at:
            step = trainer._train_step

            def signal_during(batch, values):
                if trainer.step == stop_at - 1:
                    os.kill(os.getpid(), signal.SIGUSR1)
                return step(batch, values)

            trainer._train_step = signal_during
        assert trainer.fit() == ("interrupted" if stop_at else "done")
    finally:
        close_process_group()  # as pretrain() does, or gloo may abort at exit


def _sharded_run(shard_dir: Path, run: Path, stop_at: int = 0) -> Path:
    args = (_free_port(), str(shard_dir), str(run), stop_at)
    mp.spawn(_fsdp_worker, args=args, nprocs=2, join=True)
    return run


@pytest.fixture(scope="module")
def sharded_run(shards, tmp_path_factory) -> Path:  # noqa: F811
    _skip_unless_cpu_processes_work()
    return _sharded_run(shards, tmp_path_factory.mktemp("fsdp") / "run")


def _checkpoint(run: Path) -> dict:
    from braindino.engine import find_latest_checkpoint, load_checkpoint

    return load_checkpoint(find_latest_checkpoint(run))


def test_sharded_student_trains_like_ddp(runs, sharded_run):
    _, two = runs
    sharded, ddp = _checkpoint(sharded_run), _checkpoint(two[0]["run"])
    assert sharded["step"] == ddp["step"] == STEPS
    for part in ("student", "teacher"):
        assert sharded[part].keys() == ddp[part].keys()
        for name, value in ddp[part].items():
            full = sharded[part][name]
            assert type(full) is torch.Tensor and full.shape == value.shape, name
            torch.testing.assert_close(full, value, rtol=1e-4, atol=1e-5)
    assert len(sharded["optimizer"]["state"]) == len(ddp["optimizer"]["state"])


def test_interrupted_sharded_run_resumes_to_the_same_weights(shards, sharded_run, tmp_path):  # noqa: F811
    run = _sharded_run(shards, tmp_path / "part", stop_at=2)
    assert _checkpoint(run)["step"] == 2
    _sharded_run(shards, run)  # resumes from the run folder
    full, resumed = _checkpoint(sharded_run), _checkpoint(run)
    assert resumed["step"] == STEPS
    for part in ("student", "teacher"):
        for name, value in full[part].items():
            assert torch.equal(value, resumed[part][name]), (part, name)
