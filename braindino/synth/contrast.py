"""MRI contrasts from tissue mixtures: T1w, T1c, T2w, FLAIR, plus bias field, noise and skull.

Each voxel's signal is the sum over tissue classes of (fraction x class intensity), with class
intensities relative to white matter on T1 (published relative signal orders: T1 WM > GM > CSF;
T2 CSF bright; FLAIR CSF dark and lesions bright; T1c = T1 plus enhancement). Every subject gets
its own jittered intensities, gain, bias-field amplitude and noise level; the template's residual
detail (deep nuclei, cerebellar folia) is added on top. An optional shell model draws the
extra-axial CSF, skull (with marrow) and scalp around the brain.
"""

from __future__ import annotations

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.fields import smooth_field
from braindino.synth.knobs import SynthKnobs
from braindino.synth.shapes import sigmoid
from braindino.synth.tissue import TissueMaps

# class -> (T1, T1c, T2, FLAIR) relative intensity
INTENSITY: dict[str, tuple[float, float, float, float]] = {
    "gm": (0.62, 0.66, 0.58, 0.66),
    "wm": (1.00, 1.00, 0.40, 0.50),
    "csf": (0.15, 0.18, 1.00, 0.06),
    "wmh": (0.78, 0.80, 0.80, 0.98),
    "necrosis": (0.28, 0.32, 0.92, 0.55),
    "core": (0.45, 0.50, 0.88, 0.85),  # non-enhancing tumour; FLAIR lower with mismatch sign
    "oedema": (0.58, 0.60, 0.80, 0.92),
    "enhancing": (0.55, 0.55, 0.70, 0.85),  # T1c gets the enhancement added per subject
    "cavity": (0.16, 0.19, 0.98, 0.10),
    "injury": (0.55, 0.58, 0.82, 0.88),
    "gliosis": (0.70, 0.72, 0.74, 0.95),
    "extra_csf": (0.12, 0.15, 0.95, 0.05),
    "bone": (0.05, 0.05, 0.04, 0.04),
    "marrow": (0.75, 0.78, 0.45, 0.50),
    "scalp": (0.85, 0.88, 0.55, 0.60),
}
SEQUENCE_INDEX = {"T1": 0, "T1c": 1, "T2": 2, "FLAIR": 3}
TEXTURE_SIGN = {"T1": 1.0, "T1c": 1.0, "T2": -0.8, "FLAIR": -0.5}
ENHANCEMENT_GAIN = 1.2  # enhancing rim on T1c: T1 value + 1.2 x amplitude (above WM)
MISMATCH_FLAIR = 0.60  # FLAIR of non-enhancing tumour showing the T2-FLAIR mismatch sign
# shell layers outside the brain: (class, inner mm, outer mm)
SHELL = (
    ("extra_csf", 0.0, 2.5),
    ("bone", 2.5, 4.5),
    ("marrow", 4.5, 7.0),
    ("bone", 7.0, 8.5),
    ("scalp", 8.5, 14.0),
)


def subject_intensities(
    rng: np.random.Generator, sequence: str, knobs: SynthKnobs, enhancement: float, mismatch: bool
) -> dict[str, float]:
    """This subject's class intensities for ``sequence`` (jittered, relative to WM on T1)."""
    k = SEQUENCE_INDEX[sequence]
    jitter = np.exp(knobs.contrast_jitter * rng.standard_normal(len(INTENSITY)))
    values = {name: row[k] * float(j) for (name, row), j in zip(INTENSITY.items(), jitter)}
    if sequence == "T1c":
        values["enhancing"] += ENHANCEMENT_GAIN * enhancement
    if sequence == "FLAIR" and mismatch:
        values["core"] = MISMATCH_FLAIR * values["wm"] / INTENSITY["wm"][k]
    return values


def shell_maps(anat: Anatomy, rng: np.random.Generator) -> TissueMaps:
    """Extra-axial CSF, skull and scalp fractions around the brain (subject-specific thickness)."""
    thickness = float(rng.uniform(0.85, 1.2))
    zone = anat.shell_zone
    d = anat.outside_distance.ravel()[zone] / np.float32(thickness)
    edge = 0.6
    maps: TissueMaps = {}
    for name, inner, outer in SHELL:
        part = sigmoid((outer - d) / edge)
        if inner > 0:
            part -= sigmoid((inner - d) / edge)
        full = maps.setdefault(name, np.zeros(anat.shape, dtype=np.float32))
        full.ravel()[zone] += np.clip(part, 0.0, 1.0)
    return maps


def render(
    anat: Anatomy, maps: TissueMaps, values: dict[str, float], sequence: str, texture_gain: float
) -> np.ndarray:
    """Noise-free template-space image: sum of fraction x intensity, plus template detail."""
    image = np.zeros(anat.shape, dtype=np.float32)
    for name, fraction in maps.items():
        image += np.float32(values[name]) * fraction
    tissue = maps["gm"] + maps["wm"]
    image += np.float32(TEXTURE_SIGN[sequence] * texture_gain) * anat.texture * tissue
    return np.maximum(image, 0.0)


def bias_field(rng: np.random.Generator, anat: Anatomy, knobs: SynthKnobs) -> np.ndarray:
    """A smooth multiplicative field exp(a * f), a drawn up to ``knobs.bias``."""
    amplitude = float(rng.uniform(0.3, 1.0)) * knobs.bias / 2.0
    field = smooth_field(rng, anat.shape, anat.spacing, 70.0)[0]
    return np.exp(np.float32(amplitude) * field)


def add_rician_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """|image + complex Gaussian noise|: Rician magnitude noise, positive background."""
    real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    imag = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)
