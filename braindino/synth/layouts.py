"""Writers for the real datasets' on-disk layouts: the registry (the machinery is in
``layout_base``; the writers in ``layouts_neuro`` and ``layouts_tumour``).

Each layout knows its dataset's folder and file names, label numbering and subject tables
(with the real column names), so the project's dataset adapters read the synthetic cohort and
the real release the same way. ``patterns(cohort)`` gives regular expressions that every
written path (relative to the cohort folder) matches — the tests hold the writers to them.
"""

from __future__ import annotations

from braindino.synth.layout_base import Layout, WrittenSubject, write_tables
from braindino.synth.layouts_neuro import NEURO_LAYOUTS
from braindino.synth.layouts_tumour import TUMOUR_LAYOUTS

__all__ = ["Layout", "WrittenSubject", "layout_for", "patterns", "write_tables"]
LAYOUTS: dict[str, type[Layout]] = {**NEURO_LAYOUTS, **TUMOUR_LAYOUTS}


def layout_for(cohort: str) -> Layout:
    """The layout writer of a cohort."""
    return LAYOUTS[cohort]()


def patterns(cohort: str) -> tuple[str, ...]:
    """Regular expressions every file path of ``cohort`` (relative to its folder) matches."""
    return layout_for(cohort).patterns
