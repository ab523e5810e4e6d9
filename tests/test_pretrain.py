"""The pretrainer end to end on a CPU: resume exactness, non-finite guard, stage 2, export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from braindino.config import load_config
from braindino.errors import BrainDinoError, ConfigError, DataError
from braindino.ssl.trainer import Trainer, pretrain

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, mni_2mm):
    """A small shard folder: 4 MNI-derived volumes at 2 mm, 64-pixel slices."""
    data, affine = mni_2mm
    root = tmp_path_factory.mktemp("pretrain")
    vols = root / "vols"
    vols.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        noisy = data * (1 + 0.1 * i) + rng.normal(0, 20, data.shape) * (data > 0)
        nib.save(nib.Nifti1Image(noisy.astype(np.float32), affine), str(vols / f"s{i}_T1w.nii.gz"))
    out = root / "shards"
    cmd = [sys.executable, str(ROOT / "pretrain/prepare.py"), "--out", str(out), str(vols)]
    cmd += ["--quiet", "preprocess.spacing=[2.0,2.0,2.0]", "preprocess.slices.size=64"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def _overrides(shards: Path, out: Path, *extra: str) -> list[str]:
    """The key=value items of a small, fast run (on top of configs/pretrain/tiny.yaml)."""
    return [
        f"data.shards={shards}",
        f"run.out={out}",
        "run.progress=false",
        "model.arch=vit_micro_patch16_dinov3",
        "data.batch_size_per_device=4",
        "schedule.epochs=3",
        "schedule.iters_per_epoch=2",
        "schedule.warmup_epochs=1",
        "schedule.teacher_temp_warmup_epochs=1",
        "schedule.freeze_last_layer_epochs=1",
        "run.checkpoint_every=4",
        "run.log_every=1",
        "augment.local_crops.number=2",
        *extra,
    ]


def _cfg(shards: Path, out: Path, *extra: str):
    return load_config("pretrain/default", ["pretrain/tiny"], _overrides(shards, out, *extra))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from braindino.engine import find_latest_checkpoint, load_checkpoint

    state = load_checkpoint(find_latest_checkpoint(run))
    flat = {f"student.{k}": v for k, v in state["student"].items()}
    flat.update({f"teacher.{k}": v for k, v in state["teacher"].items()})
    return flat


def test_interrupted_run_ends_with_the_same_weights(shards, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert pretrain(_cfg(shards, full)) == "done"

    part = tmp_path / "part"
    original = Trainer._train_step

    def signal_at_step_3(self, batch, values):
        out = original(self, batch, values)
        if self.step == 2:  # about to become 3: a SIGUSR1 arrives mid-run
            os.kill(os.getpid(), signal.SIGUSR1)
        return out

    monkeypatch.setattr(Trainer, "_train_step", signal_at_step_3)
    assert pretrain(_cfg(shards, part)) == "interrupted"
    monkeypatch.setattr(Trainer, "_train_step", original)
    from braindino.engine import find_latest_checkpoint

    assert find_latest_checkpoint(part).name == "checkpoint-000003.pt"
    assert pretrain(_cfg(shards, part)) == "done"  # auto-resume from the run folder

    a, b = _weights(full), _weights(part)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (part / "config.yaml").is_file() and list((part / "tb").iterdir())


def test_training_moves_weights_and_logs_every_term(shards, tmp_path):
    run = tmp_path / "run"
    pretrain(_cfg(shards, run))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in (
        "loss/dino_global",
        "loss/dino_local",
        "loss/ibot",
        "loss/koleo",
        "loss/total",
        "schedule/lr",
        "schedule/weight_decay",
        "schedule/teacher_momentum",
        "schedule/teacher_temp",
        "monitor/teacher_entropy",
        "monitor/student_teacher_agreement",
        "monitor/feature_std",
        "monitor/effective_rank",
        "speed/images_per_s",
    ):
        assert tag in tags, tag
    w = _weights(run)
    key = next(k for k in w if k.startswith("student.backbone.vit.blocks.0.attn.qkv.weight"))
    torch.manual_seed(0)
    fresh = Trainer(_cfg(shards, tmp_path / "fresh"))
    start = fresh.meta.student.state_dict()[key.removeprefix("student.")]
    assert not torch.equal(start, w[key])
    # the teacher is an EMA of the student: different from both the start and the student
    assert not torch.equal(w[key], w[key.replace("student.", "teacher.")])


def test_nonfinite_losses_stop_with_a_diagnostic_checkpoint(shards, tmp_path, monkeypatch):
    from braindino.ssl.meta_arch import SelfDistillation

    original = SelfDistillation.losses

    def nan_losses(self, *args, **kwargs):
        loss, logs = original(self, *args, **kwargs)
        return loss * float("nan"), logs

    monkeypatch.setattr(SelfDistillation, "losses", nan_losses)
    run = tmp_path / "nan"
    with pytest.raises(BrainDinoError, match="non-finite for 2 consecutive"):
        pretrain(_cfg(shards, run, "run.max_nonfinite_steps=2"))
    assert list(run.glob("diagnostic-*.pt"))


def test_config_typo_and_missing_shards_fail_at_start(shards, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'schedule.epocs'.*schedule.epochs"):
        _cfg(shards, tmp_path, "schedule.epocs=3")
    with pytest.raises(DataError, match="slice shard folder not found"):
        pretrain(_cfg(tmp_path / "nowhere", tmp_path / "r"))
    script = [sys.executable, str(ROOT / "pretrain/run.py"), "--config", "tiny", "data.shards=/x"]
    proc = subprocess.run([*script, "optim.lr=1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown config key 'optim.lr'" in proc.stderr


def test_periodic_probe_uses_the_configured_classifier_and_blocks(shards, tmp_path):
    from braindino.ssl.probe import ProbeSet
    from braindino.synth.generate import generate_cohort

    cohort = tmp_path / "cohort"
    generate_cohort(
        cohort,
        subjects={"ixi": 24},
        tasks=["ixi"],
        pool_subjects=0,
        baseline=False,
        progress=False,
    )
    options = ["probe.tasks=[brain_age]", "probe.slices_per_volume=2", "probe.blocks=2"]
    options += ["probe.pooling=cls+patch", "probe.classifier=logreg"]
    cfg = _cfg(shards, tmp_path / "run", "probe.enabled=true", f"probe.cohort={cohort}", *options)
    trainer = Trainer(cfg)
    results = trainer.probe()

    probes = ProbeSet(cohort, ["brain_age"], 64, 2, pooling="cls+patch", blocks=2)
    teacher = trainer.meta.teacher.backbone
    assert results == probes.evaluate(teacher, classifier="logreg")
    assert len(probes.features(teacher, "brain_age")[0]) == 4 * teacher.vit.embed_dim

    # mistakes in the probe section fail when the trainer starts, not after training
    enabled = ["probe.enabled=true", f"probe.cohort={cohort}"]
    with pytest.raises(ConfigError, match=r"unknown probe classifier 'svm'"):
        Trainer(_cfg(shards, tmp_path / "bad", *enabled, "probe.classifier=svm"))
    with pytest.raises(ConfigError, match=r"no probe.cohort"):
        Trainer(_cfg(shards, tmp_path / "bad", "probe.enabled=true"))


def _labelled_csv(root: Path, mni_2mm, count: int = 12) -> tuple[Path, list[dict]]:
    """``count`` MNI-derived volumes, every second with a bright right-hemisphere block
    ("lesion"), listed in the CSV layout of the csv_class task (subject, image, label)."""
    data, affine = mni_2mm
    rng = np.random.default_rng(1)
    rows = []
    for i in range(count):
        volume = data * (1 + 0.05 * i) + rng.normal(0, 10, data.shape) * (data > 0)
        if i % 2:
            volume[20:40, 40:70, 30:60] *= 1.8
        path = root / f"sub{i:02d}_T1w.nii.gz"
        nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), str(path))
        rows.append({"subject": f"sub{i:02d}", "image": path.name, "label": "ab"[i % 2]})
    table = root / "labels.csv"
    lines = ["subject,image,label", *(f"{r['subject']},{r['image']},{r['label']}" for r in rows)]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table, rows


def test_periodic_probe_scores_the_users_own_labelled_task(shards, tmp_path, mni_2mm):
    from braindino.features import encode_volume

    (tmp_path / "own").mkdir()
    table, rows = _labelled_csv(tmp_path / "own", mni_2mm)
    probe = ["probe.enabled=true", "probe.tasks=[]", "probe.labelled=[csv_class]"]
    probe += [f"probe.data_root={table}", "probe.slices_per_volume=2"]
    trainer = Trainer(_cfg(shards, tmp_path / "run", *probe))
    results = trainer.probe()
    assert list(results) == ["csv_class"] and 0.0 <= results["csv_class"] <= 1.0

    probes = trainer._probe.probes
    images, labels, groups = probes.tasks["csv_class"]
    assert images.shape == (12, 2, 64, 64)
    assert labels.tolist() == [r["label"] for r in rows]
    assert groups.tolist() == [r["subject"] for r in rows]  # folds group by subject
    teacher = trainer.meta.teacher.backbone
    expected = []  # the probe's features, independently: braindino.features per volume
    for row in rows:
        cls = encode_volume(teacher, table.parent / row["image"], {"slices.size": 64}, slices=2)
        unit = cls["cls"] / np.linalg.norm(cls["cls"], axis=1, keepdims=True)
        expected.append(unit.mean(axis=0))
    np.testing.assert_allclose(probes.features(teacher, "csv_class"), expected, atol=1e-5)

    with pytest.raises(ConfigError, match=r"brain_age is a regression task"):
        Trainer(_cfg(shards, tmp_path / "r2", *probe[:2], "probe.labelled=[brain_age]")).probe()


def test_float16_shards_train_end_to_end_like_uint8_ones(shards, tmp_path):
    """preprocess.storage.dtype=float16 (z-scores stored directly) goes through prepare, the
    DataLoader and the augmentation: the run trains, and its crops (geometry alone: intensity
    augmentations act on each storage's [0, 1] scale) are the uint8 crops up to uint8's
    quantisation step."""
    from omegaconf import OmegaConf

    from braindino.data import SliceShardReader
    from braindino.data.intensity_augment import INTENSITY_ORDER
    from braindino.data.multicrop import MultiCropAugmentation, stack_slice_samples

    half = tmp_path / "shards16"
    cmd = [sys.executable, str(ROOT / "pretrain/prepare.py"), "--out", str(half)]
    cmd += [str(shards.parent / "vols"), "--quiet", "preprocess.spacing=[2.0,2.0,2.0]"]
    cmd += ["preprocess.slices.size=64", "preprocess.storage.dtype=float16"]
    subprocess.run(cmd, check=True, capture_output=True)
    readers = SliceShardReader(shards), SliceShardReader(half)
    assert readers[1].sample(0)[0].dtype == np.float16 and len(readers[1]) == len(readers[0])
    cfg = _cfg(half, tmp_path / "run")
    pretrain(cfg)
    assert list((tmp_path / "run").glob("checkpoint-*.pt"))

    off = {"intensity": {name: {"probability": [0.0, 0.0, 0.0]} for name in INTENSITY_ORDER}}
    augment = OmegaConf.merge(cfg.augment, off)
    crops = []
    for reader in readers:
        batch = stack_slice_samples([reader.sample(i) for i in range(4)])
        out = MultiCropAugmentation(augment, seed=3)(*batch)
        crops.append(out["global_crops"])
    step = max(float(readers[0].sample(i)[1]) for i in range(4))  # uint8's z-score step
    assert (crops[0] - crops[1]).abs().max() <= step


def test_stage2_gram_anchoring_from_a_stage1_run(shards, tmp_path):
    stage1 = tmp_path / "stage1"
    pretrain(_cfg(shards, stage1))
    stage2 = tmp_path / "stage2"
    cfg = _cfg(
        shards,
        stage2,
        f"model.init_from={stage1}",
        "schedule.gram_weight=2.0",
        "schedule.epochs=2",
        "schedule.warmup_epochs=0",
        "gram.refresh_every=2",
        "gram.max_refreshes=1",
        "gram.resolution_ratio=2",  # DINOv3: the Gram teacher reads the crops at 2x
        "loss.dino_local=0.5",
    )
    trainer = Trainer(cfg)
    assert trainer.augment.for_step(0).gram_side == 2 * 64
    assert trainer.fit() == "done"
    assert trainer.meta.gram_teacher is not None and trainer.gram_refreshes == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(stage2 / "tb"))
    events.Reload()
    gram = [e.value for e in events.Scalars("loss/gram")]
    assert gram and all(np.isfinite(gram))


def test_export_loads_with_braindino_and_timm(shards, tmp_path):
    import timm

    from braindino import load_encoder
    from braindino.ssl.export import export_run

    run = tmp_path / "run"
    trainer = Trainer(_cfg(shards, run))
    trainer.fit()
    out = export_run(run, tmp_path / "export")
    encoder = load_encoder(out)
    x = torch.randn(2, 1, 64, 64)
    teacher = trainer.meta.teacher.backbone.eval()
    with torch.no_grad():
        expected = teacher.forward_features(x)["cls"]
        np.testing.assert_allclose(encoder(x).numpy(), expected.numpy(), atol=1e-5)
        import json

        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        model = timm.create_model(
            config["timm_name"],
            pretrained=True,
            pretrained_cfg_overlay={"file": str(out / "model.safetensors")},
            **config["timm_kwargs"],
        ).eval()
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        np.testing.assert_allclose(pooled.numpy(), expected.numpy(), atol=1e-5)
    assert config["extra"]["preprocessing"]["slices"]["size"] == 64
    for key, value in trainer.cfg.model.kwargs.items():  # e.g. tiny's LayerScale init_values
        assert config["timm_kwargs"][key] == value


def test_teachers_never_use_drop_path():
    """Stochastic depth regularises the student; the EMA and Gram teachers stay deterministic."""
    from braindino.ssl.build import build_meta_arch

    cfg = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        ["model.arch=vit_micro_patch16_dinov3", "model.drop_path_rate=0.5"],
    )
    meta = build_meta_arch(cfg)
    meta.set_gram_teacher()
    meta.train()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        for teacher in (meta.teacher.backbone, meta.gram_teacher):
            first = teacher.forward_features(x)["cls"]
            assert torch.equal(first, teacher.forward_features(x)["cls"])
        student = meta.student.backbone
        assert not torch.equal(
            student.forward_features(x)["cls"], student.forward_features(x)["cls"]
        )


def test_teacher_update_is_the_ema_and_the_optimiser_is_adamw():
    """teacher <- m * teacher + (1 - m) * student, against a float64 computation."""
    from braindino.ssl.build import build_meta_arch, build_optimizer

    cfg = load_config(
        "pretrain/default", ["pretrain/tiny"], ["model.arch=vit_micro_patch16_dinov3"]
    )
    meta = build_meta_arch(cfg)
    with torch.no_grad():
        for param in meta.student.parameters():
            param.add_(torch.randn_like(param))
    before = {k: v.double() for k, v in meta.teacher.state_dict().items()}
    student = {k: v.double() for k, v in meta.student.state_dict().items()}
    meta.update_teacher(0.9)
    for key, value in meta.teacher.state_dict().items():
        expected = 0.9 * before[key] + 0.1 * student[key]
        torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-6)
    optimizer = build_optimizer(cfg, meta)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {
        id(p) for p in meta.student.parameters() if p.requires_grad
    }


def test_student_step_is_the_same_with_the_last_block_on_wanted_tokens_only():
    """The student's outputs and gradients do not depend on running the last block's MLP on
    every token (``all_patches``, needed for the Gram loss) or only on the ones a loss reads."""
    from braindino.ssl.build import build_meta_arch

    cfg = load_config(
        "pretrain/default", ["pretrain/tiny"], ["model.arch=vit_micro_patch16_dinov3"]
    )
    meta = build_meta_arch(cfg).double()
    student = meta.student
    gen = torch.Generator().manual_seed(0)
    glob = torch.randn(4, 1, 64, 64, generator=gen, dtype=torch.float64)
    local = torch.randn(8, 1, 32, 32, generator=gen, dtype=torch.float64)
    masks = torch.rand(4, 16, generator=gen) < 0.4
    results = []
    for all_patches in (True, False):
        student.zero_grad(set_to_none=True)
        out = student(glob, local, masks, all_patches=all_patches, fused=True)
        assert ("patches_global" in out) == all_patches
        dino, ibot = out["dino_logits"].materialize(), out["ibot_logits"].materialize()
        (dino.sin().sum() + ibot.cos().sum() + out["cls_global"].square().sum()).backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        results.append((dino.detach(), ibot.detach(), grads))
    (dino_all, ibot_all, grads_all), (dino_part, ibot_part, grads_part) = results
    assert ibot_all.shape[0] == int(masks.sum())
    torch.testing.assert_close(dino_part, dino_all, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ibot_part, ibot_all, rtol=1e-10, atol=1e-12)
    assert grads_part.keys() == grads_all.keys()
    for name, grad in grads_all.items():
        torch.testing.assert_close(grads_part[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_compile_option_compiles_every_block_and_keeps_the_checkpoint_keys(
    shards, tmp_path, monkeypatch
):
    """run.compile compiles the blocks of student and teacher in place: training goes through the
    compiled blocks, gives the same weights as without (captured graphs run eagerly here, to keep
    the test fast; a real run uses inductor) and writes the usual state-dict keys."""
    from braindino.models.backbone import MaskableViT

    compiled, graphs = [], []
    original = MaskableViT.compile_blocks

    def record_graph(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward  # run the captured graph eagerly

    def compile_eagerly(self, **kwargs):
        compiled.append(self)
        original(self, backend=record_graph)

    monkeypatch.setattr(MaskableViT, "compile_blocks", compile_eagerly)
    torch._dynamo.reset()
    pretrain(_cfg(shards, tmp_path / "compiled", "run.compile=true"))
    assert len(compiled) == 2 and compiled[0] is not compiled[1]  # student and teacher
    assert all(b._compiled_call_impl is not None for m in compiled for b in m.vit.blocks)
    assert graphs  # the blocks really ran through torch.compile
    pretrain(_cfg(shards, tmp_path / "eager"))
    with_compile, without = _weights(tmp_path / "compiled"), _weights(tmp_path / "eager")
    assert with_compile.keys() == without.keys()
    assert not any("_orig_mod" in key for key in with_compile)
    for key, value in without.items():
        torch.testing.assert_close(with_compile[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_compile_with_fsdp_sharding_fails_at_start(shards, tmp_path, monkeypatch):
    from braindino.ssl import trainer

    monkeypatch.setattr(trainer, "wants_sharding", lambda cfg, acc: True)
    with pytest.raises(ConfigError, match=r"run\.compile is not supported with FSDP"):
        pretrain(_cfg(shards, tmp_path / "run", "run.compile=true"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_gpu_recipe_started_on_the_cpu_is_warned_about(shards, tmp_path, capsys, monkeypatch):
    from braindino.ssl import trainer as trainer_module
    from braindino.ssl.build import build_meta_arch, cpu_recipe_warning

    vitb16 = load_config("pretrain/default", ["pretrain/vitb16"])
    with torch.device("meta"):  # the real parameter count, without allocating it
        meta = build_meta_arch(vitb16)
    parameters = sum(p.numel() for p in meta.student.parameters())
    line = cpu_recipe_warning(vitb16, parameters, "cpu", cores=2)
    assert "131M-parameter student (vit_base_patch16_dinov3" in line
    assert "data.num_workers=4 on 2 CPU core(s)" in line and "--config tiny" in line
    assert cpu_recipe_warning(vitb16, parameters, "cuda", cores=2) is None
    tiny = _cfg(shards, tmp_path / "tiny")
    assert cpu_recipe_warning(tiny, 3_000_000, "cpu", cores=2) is None

    # the trainer says it on stderr and in log.txt before the first step
    monkeypatch.setattr(trainer_module, "cpu_cores", lambda: 1)
    trainer = Trainer(_cfg(shards, tmp_path / "run", "data.num_workers=2"))
    trainer.close()
    err = capsys.readouterr().err
    assert "warning: starting on the CPU with data.num_workers=2 on 1 CPU core(s)" in err
    log = (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")
    assert "data.num_workers=2 on 1" in log
    assert "step: the fused path (run.fused=auto, cpu)" in log  # what auto chose on the CPU
