"""Why samples were left out of a manifest: a count per reason and every left-out subject.

Every adapter fills one ``DropLog``; the manifest keeps it as ``frame.attrs["dropped"]`` (reason
-> count) and ``frame.attrs["excluded"]`` (``{subject, reason}`` per row), and the downstream
runner prints and reports both, so nothing is left out without a word.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DropLog:
    """Counts of left-out rows per reason, and the rows themselves."""

    counts: dict[str, int] = field(default_factory=dict)
    excluded: list[dict] = field(default_factory=list)

    def drop(self, reason: str, subject: str = "", count: int = 1) -> None:
        """Record ``count`` left-out rows of ``subject`` for ``reason``."""
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.excluded += [{"subject": str(subject), "reason": reason}] * count

    def merge(self, other: DropLog, prefix: str = "") -> None:
        """Add ``other``'s records, their reasons prefixed (``adni.no_label``)."""
        for reason, count in other.counts.items():
            self.counts[prefix + reason] = self.counts.get(prefix + reason, 0) + count
        self.excluded += [{**e, "reason": prefix + e["reason"]} for e in other.excluded]

    def summary(self) -> str:
        """One line: ``no_label 6, no_image 2`` (most frequent first), or ``none``."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{reason} {count}" for reason, count in items) or "none"
