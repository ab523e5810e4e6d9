"""Fill the cohort README template (``cohort_readme.md``) and write it to ``DIR/README.md``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from braindino.synth.cohort_specs import COHORTS
from braindino.synth.knobs import SynthKnobs
from braindino.synth.layouts import layout_for

TITLES = {
    "adni": "ADNI",
    "oasis": "OASIS-1 (cross-sectional)",
    "abide": "ABIDE I",
    "ixi": "IXI",
    "brats2021": "BraTS 2021",
    "brats2023": "BraTS 2023 (GLI)",
    "upenn": "UPENN-GBM",
    "ucsf": "UCSF-PDGM",
    "atlas": "ATLAS v2.0",
}
METRIC_NAMES = {
    "macro_auc": "macro AUC",
    "auc": "AUC",
    "balanced_accuracy": "balanced acc.",
    "mae": "MAE",
    "mae_chance": "MAE of mean",
    "pearson_r": "Pearson r",
    "c_index": "C-index",
    "dice_wt": "Dice WT",
    "dice_tc": "Dice TC",
    "dice_et": "Dice ET",
    "n": "n",
}


def _cohort_table(config: dict) -> str:
    lines = []
    for name, n in config["subjects"].items():
        spec = COHORTS[name]
        roles = list(spec.modalities) + (["seg"] if spec.pathology in ("glioma", "stroke") else [])
        cells = [f"`{spec.folder}/`", TITLES[name], str(n), ", ".join(roles), ", ".join(spec.tasks)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _layout_list(config: dict) -> str:
    lines = []
    for name in config["subjects"]:
        layout = layout_for(name)
        doc = (type(layout).__doc__ or "").strip().splitlines()[0]
        tables = {
            "adni": "`ADNIMERGE.csv` (`DX`, `DX_bl`), `ADNI_collection.csv` (`Group`)",
            "oasis": "`oasis_cross-sectional.csv` (`CDR`)",
            "abide": "`Phenotypic_V1_0b_preprocessed1.csv` (`DX_GROUP` 1 autism / 2 control)",
            "ixi": "`IXI.csv` (`IXI_ID`, `AGE`; the real sheet is `IXI.xls`)",
            "upenn": "`UPENN-GBM_clinical_info_v2.1.csv` (`Survival_from_surgery_days_UPDATED`, "
            "`Survival_Status` Deceased / Lost to Follow-up)",
            "ucsf": "`UCSF-PDGM-metadata_v2.csv` (`IDH`, `OS`, `1-dead 0-alive`; 3-digit IDs)",
            "atlas": "`Training/participants.tsv` (`days_since_stroke`)",
        }.get(name, "none (labels are in the file names)")
        labels = {
            "brats2021": " Labels 1 necrotic core, 2 oedema, 4 enhancing.",
            "brats2023": " Labels 1 necrotic core, 2 oedema, 3 enhancing.",
            "upenn": " Labels 1, 2, 4 as BraTS 2021.",
            "ucsf": " Labels 1, 2, 4 as BraTS 2021.",
            "atlas": " Lesion mask 0/1.",
        }.get(name, "")
        lines.append(f"- **{TITLES[name]}** — {doc}{labels} Tables: {tables}.")
    return "\n".join(lines)


def _knob_table(config: dict) -> str:
    docs = SynthKnobs.docs()
    return "\n".join(f"| `{k}` | {v:g} | {docs[k]} |" for k, v in config["knobs"].items())


def baseline_markdown(scores: dict | None) -> str:
    """The baseline results as a Markdown table (or a note when none were computed)."""
    if not scores:
        return "_Not computed for this cohort (generated with `baseline=False`)._"
    lines = ["| task | result |", "|---|---|"]
    for task, result in scores.items():
        if "skipped" in result:
            lines.append(f"| {task} | skipped: {result['skipped']} |")
            continue
        parts = [f"{METRIC_NAMES.get(k, k)} {v:.3g}" for k, v in result.items() if k != "note"]
        lines.append(f"| {task} | {', '.join(parts)} |")
    return "\n".join(lines)


def write_readme(out: Path, config: dict, scores: dict | None) -> Path:
    """Write ``out/README.md`` describing this cohort, its knobs and baseline numbers."""
    knobs = config["knobs"]
    values = {
        "seed": str(config["seed"]),
        "resolution": f"{config['resolution_mm']:g}",
        "version": str(config["version"]),
        "pool_subjects": str(config["pool_subjects"]),
        "cohort_table": _cohort_table(config),
        "layout_list": _layout_list(config),
        "knob_table": _knob_table(config),
        "baseline_table": baseline_markdown(scores),
        "mci_severity": f"{knobs['mci_severity']:g}",
        "severity_sd": f"{knobs['severity_sd']:g}",
        "survival_noise": f"{knobs['survival_noise']:g}",
        "followup_max_days": f"{knobs['followup_max_days']:g}",
    }
    text = resources.files("braindino.synth").joinpath("cohort_readme.md").read_text("utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    path = Path(out) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
