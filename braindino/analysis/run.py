"""``run_analysis``: every encoder of a run (the main one, then ``--compare``'s) through the
same analyses on the very same slices, then one report.

Equal terms by construction: slices are made once with the main encoder's preprocessing and
handed to every encoder; the dense probes share subjects, train/test split, whole-patch shifts,
training subsample, probe settings and bootstrap seed; PCA colours are fitted per encoder on the
same foreground patches; retrieval and embedding use the same volumes and slices.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from braindino.analysis.attention_map import cls_attention
from braindino.analysis.cases import labelled_case
from braindino.analysis.dense_probe import dense_probe, paired_probe_difference
from braindino.analysis.embedding_map import embed_2d
from braindino.analysis.options import AnalyzeOptions
from braindino.analysis.patches import foreground_patches
from braindino.analysis.pca_map import pca_rgb
from braindino.analysis.retrieval import nearest_slices
from braindino.analysis.synthetic import PROBES, synthetic_volumes
from braindino.analysis.task_cases import segmentation_volumes
from braindino.analysis.tokens import patch_tokens
from braindino.analysis.volumes import MapVolume, folder_volumes, spread, task_volumes
from braindino.downstream.options import default_encoder
from braindino.downstream.protocol import encoder_list, load_compare_encoder
from braindino.features import encode_slices, encoder_preprocess, encoder_slices

PROBE_SETTINGS = {  # probe -> (patch label rule, slice choice, score brain patches only)
    "tissue": ("majority", "spread", False),
    "tumour": ("structure", "largest", True),
}


def say(text: str, progress: bool) -> None:
    """One progress line on stderr (when ``progress``)."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def load_encoders(options: AnalyzeOptions) -> dict[str, Any]:
    """``{label: encoder}``: the main encoder, then the baselines (``random``: its twin)."""
    if options.encoder is None:
        options.encoder = default_encoder()
    encoders: dict[str, Any] = {}
    for label, spec in encoder_list(options):  # type: ignore[arg-type]
        encoders[label] = load_compare_encoder(spec, encoders.get("encoder"))
        encoders[label].spec = spec
    return encoders


def run_probes(options: AnalyzeOptions, encoders: dict, preprocess: dict) -> tuple[list, dict]:
    """Each dense probe x scale x encoder (``as_dict`` records with probe and encoder) and the
    probes' synthetic volumes (for the maps when no task or folder is given)."""
    main = encoders["encoder"]
    records, made = [], {}
    maps_need_them = not (options.task or options.folder) and set(options.analyses) - {"probe"}
    if "probe" not in options.analyses and not maps_need_them:
        return records, made
    for probe in options.probes:
        modality = options.tissue_modality if probe == "tissue" else options.tumour_modality
        classes = PROBES[probe][1]
        if probe == "tumour" and options.tumour_task:
            volumes, classes = segmentation_volumes(
                options.tumour_task, options.tumour_root, [], options.probe_subjects, modality
            )
        else:
            volumes = synthetic_volumes(probe, options.probe_subjects, modality, options.seed)
        source = options.tumour_task if probe == "tumour" and options.tumour_task else None
        made[probe] = (volumes, modality, source or PROBES[probe][0])
        if "probe" not in options.analyses:
            continue
        rule, choose, foreground = PROBE_SETTINGS[probe]
        cases = [
            labelled_case(main, s, image, labels, preprocess, options.probe_slices, choose)
            for s, image, labels in volumes
        ]
        settings = {"shift": options.shift, "rule": rule, "foreground_only": foreground}
        settings.update(bootstrap=options.bootstrap, seed=options.seed)
        for scale in options.scales:
            results = {}
            for label, encoder in encoders.items():
                say(f"[analyze] dense probe {probe} x{scale}: {label}", options.progress)
                result = dense_probe(encoder, cases, classes, scale=scale, **settings)
                results[label] = result
                record = {"probe": probe, "encoder": label, "rule": rule, "modality": modality}
                record.update(result.as_dict())
                main_result = results["encoder"]
                if label != "encoder" and main_result.same_test_patches(result):
                    difference = paired_probe_difference(
                        main_result, result, options.bootstrap, options.seed
                    )
                    record["encoder_minus_this"] = dict(zip(("value", "low", "high"), difference))
                records.append(record)
    return records, made


def map_volumes(options: AnalyzeOptions, made: dict) -> list[MapVolume]:
    """The volumes of the maps: ``--task``'s manifest, ``--folder``'s files, or the probes'."""
    if options.task:
        return task_volumes(options.task, options.data_root, options.overrides, options.volumes)
    if options.folder:
        return folder_volumes(options.folder, options.volumes)
    if not made:
        tissue = synthetic_volumes("tissue", options.volumes, "T1", options.seed)
        made = {"tissue": (tissue, "T1", PROBES["tissue"][0])}
    per_probe = max(1, options.volumes // len(made))
    return [
        MapVolume(s, image, {"dataset": dataset, "sequence": modality})
        for volumes, modality, dataset in made.values()
        for s, image, _ in volumes[:per_probe]
    ]


def run_maps(options: AnalyzeOptions, encoders: dict, volumes: list[MapVolume], preprocess):
    """PCA, attention, retrieval and embedding data for every encoder on the same slices."""
    main = encoders["encoder"]
    stacks = [encoder_slices(main, v.image, preprocess)[0] for v in volumes]
    shown = [(i, len(stacks[i]) // 2) for i in spread(list(range(len(stacks))), options.show)]
    shown_images = np.stack([stacks[i][z] for i, z in shown])
    foreground = foreground_patches(shown_images, int(main.patch_size[0]))
    out: dict[str, Any] = {
        "volumes": volumes,
        "stacks": stacks,
        "shown": shown,
        "shown_images": shown_images,
        "pca": {},
        "attention": {},
        "features": {},
        "slice_cls": {},
    }
    for label, encoder in encoders.items():
        say(f"[analyze] maps: {label}", options.progress)
        if "pca" in options.analyses:
            tokens = patch_tokens(encoder, shown_images)["patches"]
            out["pca"][label] = pca_rgb(tokens, foreground)
        if "attention" in options.analyses:
            out["attention"][label] = cls_attention(encoder, shown_images)
        if {"retrieval", "embedding"} & set(options.analyses):
            cls = [encode_slices(encoder, stack)["cls"] for stack in stacks]
            out["slice_cls"][label] = cls
            out["features"][label] = np.stack([c.mean(axis=0) for c in cls])
    return out


def retrieval_hits(options: AnalyzeOptions, maps: dict) -> dict[str, list]:
    """Per encoder and shown slice: its nearest slices of other subjects (indices into the
    volumes' slices, cosine similarities)."""
    volumes, stacks = maps["volumes"], maps["stacks"]
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(stacks)])
    where = np.concatenate([np.arange(len(s)) for s in stacks])
    subjects = np.array([volumes[i].subject for i in owner])
    hits: dict[str, list] = {}
    for label, cls in maps["slice_cls"].items():
        bank = np.concatenate(cls)
        queries = np.stack([cls[i][z] for i, z in maps["shown"]])
        query_subjects = np.array([volumes[i].subject for i, _ in maps["shown"]])
        index, similarity = nearest_slices(
            queries, query_subjects, bank, subjects, options.neighbours
        )
        hits[label] = [
            [(int(owner[j]), int(where[j]), float(s)) for j, s in zip(row, sims) if j >= 0]
            for row, sims in zip(index, similarity)
        ]
    return hits


def embeddings(options: AnalyzeOptions, maps: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per encoder: the per-volume features (mean CLS over slices) by PCA and, with at least
    5 volumes, t-SNE."""
    out = {}
    for label, features in maps["features"].items():
        out[label] = {"PCA": embed_2d(features, "pca")}
        if len(features) >= 5:
            out[label]["t-SNE"] = embed_2d(features, "tsne", options.seed)
    return out


def run_analysis(options: AnalyzeOptions) -> dict[str, Any]:
    """Run every asked analysis for every encoder and write the report; returns ``metrics``."""
    from braindino.analysis.report import write_report

    out = Path(options.out or "runs/analyze")
    encoders = load_encoders(options)
    main = encoders["encoder"]
    preprocess = OmegaConf.to_container(
        encoder_preprocess(main, options.preprocess or None), resolve=True
    )
    probes, made = run_probes(options, encoders, preprocess)
    maps = None
    if set(options.analyses) - {"probe"}:
        volumes = map_volumes(options, made)
        maps = run_maps(options, encoders, volumes, preprocess)
        if "retrieval" in options.analyses:
            maps["hits"] = retrieval_hits(options, maps)
        if "embedding" in options.analyses:
            maps["embedding"] = embeddings(options, maps)
    return write_report(out, options, encoders, probes, maps)
