"""Data check: what each volume is (orientation, spacing, shape, intensities) and what is wrong.

``python -m braindino.check PATH...`` (folders, globs, CSV manifests, files) prints one line per
volume and exits non-zero when any volume has a problem — the same problems that would make
``pretrain/prepare.py`` skip it. ``prepare.py --dry-run`` runs the same check on its inputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from braindino.cli import prog_name
from braindino.data.conventions import LABEL_MAP_FIX, label_map_problem
from braindino.data.inputs import VolumeInput
from braindino.errors import BrainDinoError

#: Slice thickness (mm) above which a note is printed: axial slices get blurry when resampled.
THICK_SLICE_MM = 3.0


@dataclass
class VolumeCheck:
    """The facts and problems found for one volume.

    ``orientation``: source axis codes (e.g. ``LPS``); ``spacing``/``shape``: in source axis
    order; ``intensity``: (min, max) of the finite voxels; ``problems``: reasons it cannot be used
    (empty = fine); ``notes``: things worth knowing that do not stop it being used.
    """

    path: str
    orientation: str | None = None
    spacing: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None
    intensity: tuple[float, float] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the volume has no problems."""
        return not self.problems


def _one_line(exc: BrainDinoError) -> str:
    return str(BrainDinoError(exc.problem, fix=exc.fix))


def check_volume(path: str, volume_index: int | None = None) -> VolumeCheck:
    """Read one volume and report its orientation, spacing, shape, intensity range and problems."""
    from braindino.io import check_voxels, read_volume

    result = VolumeCheck(path=str(path))
    try:
        volume = read_volume(path, volume_index, check=False)
    except BrainDinoError as exc:
        result.problems.append(_one_line(exc))
        return result
    source_affine = np.asarray(volume.meta.get("source_affine", volume.affine))
    result.orientation = "".join(volume.meta.get("source_axcodes") or ()) or None
    result.spacing = tuple(float(s) for s in np.linalg.norm(source_affine[:3, :3], axis=0))
    result.shape = tuple(int(s) for s in volume.meta.get("source_shape", volume.shape))
    finite = volume.data[np.isfinite(volume.data)]
    if finite.size:
        result.intensity = (float(finite.min()), float(finite.max()))
    try:
        check_voxels(volume.data, path)
    except BrainDinoError as exc:
        result.problems.append(_one_line(exc))
    else:
        label_map = label_map_problem(volume.data)
        if label_map:
            result.problems.append(_one_line(BrainDinoError(label_map, fix=LABEL_MAP_FIX)))
    if max(result.spacing) > THICK_SLICE_MM:
        result.notes.append(f"thick slices ({max(result.spacing):.1f} mm)")
    if result.orientation and result.orientation[-1] not in "SI":
        result.notes.append("not acquired axially (axial slices are reformatted)")
    return result


def check_inputs(inputs: Sequence[VolumeInput], progress_bar: bool = False) -> list[VolumeCheck]:
    """Check every input in order."""
    from tqdm import tqdm

    return [
        check_volume(item.path, item.volume_index)
        for item in tqdm(inputs, unit="vol", desc="check", disable=not progress_bar)
    ]


def format_check(result: VolumeCheck) -> str:
    """One line: status, path, orientation, spacing, shape, intensity range, problems/notes."""
    parts = ["OK  " if result.ok else "FAIL", result.path]
    if result.orientation:
        parts.append(f"orient={result.orientation}")
    if result.spacing:
        parts.append("spacing=" + "x".join(f"{s:.3g}" for s in result.spacing) + "mm")
    if result.shape:
        parts.append("shape=" + "x".join(str(s) for s in result.shape))
    if result.intensity:
        parts.append(f"range=[{result.intensity[0]:.4g}, {result.intensity[1]:.4g}]")
    parts += [f"problem: {p}" for p in result.problems]
    parts += [f"note: {n}" for n in result.notes]
    return "  ".join(parts)


def print_checks(results: Sequence[VolumeCheck], stream=None) -> int:
    """Print one line per volume and a summary; return 1 if any volume has problems, else 0."""
    stream = stream or sys.stdout
    for result in results:
        print(format_check(result), file=stream)
    bad = sum(not r.ok for r in results)
    print(f"{len(results)} volume(s) checked, {bad} with problems", file=stream)
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m braindino.check`` command line."""
    parser = argparse.ArgumentParser(
        prog=prog_name("python -m braindino.check"),
        description="Print each volume's orientation, spacing, shape, intensity range and "
        "problems; exit 1 if any volume has problems.",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="PATH", help="volume files, folders, globs or CSV manifests"
    )
    parser.add_argument(
        "--volume-index",
        type=int,
        default=None,
        help="volume of 4D files to check (a manifest's volume_index column wins)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m braindino.check``."""
    from braindino.data.inputs import discover_inputs, with_volume_index

    args = build_parser().parse_args(argv)
    inputs = with_volume_index(discover_inputs(args.inputs), args.volume_index)
    return print_checks(check_inputs(inputs, progress_bar=sys.stderr.isatty()))


if __name__ == "__main__":
    from braindino.cli import run_cli

    run_cli(main)
