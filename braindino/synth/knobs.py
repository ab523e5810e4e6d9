"""Every effect strength of the synthetic cohort, with its default and what it does.

The defaults make each task learnable but not trivial: classes overlap (individual variation is
of the same order as the disease effects) and targets carry noise. Scale an effect up to make a
task easier, down (to 0) to remove it. ``generate_cohort(knobs={...})`` and
``python -m braindino.synth --knob name=value`` override them; the values used are saved in
``DIR/cohort.json`` and listed in ``DIR/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from braindino.errors import ConfigError


def _knob(default: float, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class SynthKnobs:
    """Effect strengths (see each field's ``doc`` metadata, also rendered in the cohort README)."""

    # anatomy: how far each brain is from the template
    warp_mm: float = _knob(2.5, "RMS amplitude (mm) of the smooth non-linear deformation")
    warp_correlation_mm: float = _knob(30.0, "spatial scale (mm) of the non-linear deformation")
    rotation_deg: float = _knob(4.0, "SD of the head rotation about each axis (degrees)")
    translation_mm: float = _knob(4.0, "SD of the head translation along each axis (mm)")
    head_size_sd: float = _knob(0.04, "SD of the isotropic head-size scale factor")
    # ageing (brain-age task, and a confound in the dementia tasks)
    ventricle_age_mm: float = _knob(
        3.0, "outward shift (mm) of the ventricle walls at age 80 relative to age 20 (quadratic)"
    )
    ventricle_sd_mm: float = _knob(0.7, "SD of the individual ventricle-wall shift (mm)")
    cortical_atrophy_per_decade: float = _knob(
        0.04, "fraction of CSF-facing grey matter turned to CSF per decade after 20"
    )
    atrophy_sd: float = _knob(0.035, "SD of the individual cortical-atrophy fraction")
    wmh_load: float = _knob(1.0, "scale of FLAIR white-matter hyperintensities (rise after ~60)")
    # dementia (ADNI-like CN/MCI/AD, OASIS-like CDR)
    mci_severity: float = _knob(0.45, "mean disease severity of MCI (AD = 1, CN = 0)")
    severity_sd: float = _knob(0.3, "SD of the individual disease severity")
    hippocampal_atrophy: float = _knob(
        0.5, "fraction of hippocampal grey matter lost at severity 1"
    )
    temporal_atrophy: float = _knob(0.12, "extra temporal-lobe cortical atrophy at severity 1")
    dementia_ventricle_mm: float = _knob(1.2, "extra ventricle-wall shift (mm) at severity 1")
    # neurodevelopment (ABIDE-like autism vs control)
    callosal_thinning: float = _knob(
        0.10, "extra fraction of corpus-callosum white matter missing in the autism group"
    )
    callosal_sd: float = _knob(0.08, "SD of the individual corpus-callosum thinning fraction")
    # glioma (BraTS, UPENN-GBM, UCSF-PDGM)
    ucsf_idh_mutant_fraction: float = _knob(0.35, "fraction of IDH-mutant gliomas in UCSF-PDGM")
    enhancement: float = _knob(1.0, "scale of tumour enhancement on T1c")
    oedema_scale: float = _knob(1.0, "scale of the peritumoural oedema margin")
    survival_median_days: float = _knob(420.0, "median overall survival of an average IDH-wt GBM")
    survival_noise: float = _knob(0.55, "SD of the log-survival noise not explained by the image")
    followup_max_days: float = _knob(1800.0, "longest follow-up; later deaths are censored")
    # stroke (ATLAS-like)
    cavitation_days: float = _knob(
        90.0, "days after a stroke at which half of the lesion has become a CSF-like cavity"
    )
    cavitation_sd: float = _knob(0.5, "SD (log scale) of the individual cavitation speed")
    stroke_shrinkage: float = _knob(0.3, "fraction by which a fully cavitated lesion shrinks")
    # acquisition
    noise: float = _knob(0.03, "Rician noise SD relative to the white-matter signal")
    bias: float = _knob(0.2, "largest amplitude of the smooth multiplicative bias field (log)")
    contrast_jitter: float = _knob(0.06, "SD (log) of per-subject tissue-intensity variation")

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | SynthKnobs | None) -> SynthKnobs:
        """Defaults with ``overrides`` applied; unknown names and non-numbers raise ConfigError."""
        if overrides is None:
            return cls()
        if isinstance(overrides, SynthKnobs):
            return overrides
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for name, value in overrides.items():
            if name not in known:
                import difflib

                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see DIR/README.md for the list"
                raise ConfigError(f"unknown knob '{name}'", path="knobs", fix=hint)
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"knob '{name}' must be a number, got {value!r}",
                    path="knobs",
                    fix=f"give a number, e.g. {name}={getattr(cls(), name)}",
                ) from exc
            if number < 0:
                raise ConfigError(
                    f"knob '{name}' must not be negative, got {number}",
                    path="knobs",
                    fix="use 0 to switch an effect off",
                )
            values[name] = number
        return replace(cls(), **values)

    def as_dict(self) -> dict[str, float]:
        """Knob name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def docs(cls) -> dict[str, str]:
        """Knob name -> one-line description."""
        return {f.name: f.metadata["doc"] for f in fields(cls)}
