"""Find a dataset's images by regular expressions over the file paths under its root."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from braindino.config import config_regex

_DIGITS = re.compile(r"\d+")
_FOLDER_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")  # ADNI's <date> folder: 2006-04-18_08_20_30.0


def subject_key(text: str) -> str:
    """A subject id for matching: lower-case, numbers without leading zeros.

    So a table's ``UCSF-PDGM-004`` matches a folder's ``UCSF-PDGM-0004`` and ABIDE's ``50002``
    matches ``0050002``.
    """
    return _DIGITS.sub(lambda m: str(int(m.group())), str(text).strip().lower())


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` (links followed), as sorted POSIX paths relative to it."""
    out = []
    for folder, _dirs, files in os.walk(root, followlinks=True):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out += [prefix + name for name in files]
    return sorted(out)


def compile_patterns(patterns: Mapping[str, str]) -> dict[str, re.Pattern]:
    """Compile ``role -> regex``; each must have a ``(?P<subject>...)`` group."""
    return {
        role: config_regex(str(text), f"data.images.{role}", "task config", "subject")
        for role, text in patterns.items()
    }


@dataclass
class SubjectImages:
    """One subject's files for one role: its id as the paths write it, the paths (sorted), and
    per path what the pattern's other named groups caught (``image_id``, ``date`` ...)."""

    subject: str
    paths: list[str] = field(default_factory=list)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)


def match_images(
    files: list[str], patterns: Mapping[str, str]
) -> dict[str, dict[str, SubjectImages]]:
    """Per role, ``subject_key -> SubjectImages``.

    Paths keep ``files``' (sorted) order, so "the first scan" is deterministic. A path's ``date``
    is the pattern's ``(?P<date>...)`` group, else its last folder named like ``2006-04-18...``.
    """
    compiled = compile_patterns(patterns)
    found: dict[str, dict[str, SubjectImages]] = {role: {} for role in compiled}
    for rel in files:
        for role, regex in compiled.items():
            match = regex.search(rel)
            if match:
                subject = match.group("subject")
                entry = found[role].setdefault(subject_key(subject), SubjectImages(subject))
                entry.paths.append(rel)
                groups = {k: v for k, v in match.groupdict().items() if v}
                dated = [d for d in rel.split("/")[:-1] if _FOLDER_DATE.match(d)]
                if "date" not in groups and dated:
                    groups["date"] = dated[-1]
                entry.groups[rel] = groups
    return found


def exam_date(text: str) -> str | None:
    """A date written as ``2006-04-18`` (ISO, also the start of ``2006-04-18_08_20_30.0``),
    ``4/18/2006`` (ADNI IDA, month first) or ``20060418``, as ``YYYY-MM-DD``; else None."""
    text = str(text).strip()
    for regex in _DATES:
        match = regex.match(text)
        if match:
            year, month, day = (int(match.group(k)) for k in "ymd")
            if 1 <= month <= 12 and 1 <= day <= 31:
                return f"{year:04d}-{month:02d}-{day:02d}"
    return None


_DATES = (
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
)


def _digits(text: str) -> str:
    found = _DIGITS.findall(str(text))
    return str(int("".join(found))) if found else ""


def choose_scan(
    images: SubjectImages,
    hints: Sequence[Mapping[str, str]],
    series: Sequence[str],
    tolerance_days: int = 0,
) -> tuple[str | None, str]:
    """The file of ``images`` that a subject's table rows name, and how it was chosen.

    Files named by a row's image id (ADNIMERGE ``IMAGEUID`` 45126 or IDA ``I45126`` matches
    ``..._I45126.nii``) come first, the earliest-dated of them; else the files of the date
    nearest a row's exam date, within ``tolerance_days`` (scan dates differ from visit dates by
    days). Rows that name an image or a date no file fits give ``(None, "not_found")``: the
    labelled visit was not downloaded, and another visit's scan would carry the wrong label.
    Rows that name neither: the files of the earliest date the paths show (all when they show
    none). Among the chosen files, the first matching the earliest of ``series`` (regexes in
    order of preference, so an IDA visit's MPRAGE wins over its PD/T2), else the first.
    Returns ``(path, "image_id" | "date" | "earliest")``.
    """
    dated = {p: exam_date(images.groups[p].get("date", "")) for p in images.paths}
    ids = {i for h in hints if (i := _digits(h.get("image_id", "")))}
    by_id = [p for p in images.paths if _digits(images.groups[p].get("image_id", "")) in ids]
    if by_id:
        return _preferred(_earliest(by_id, dated), series), "image_id"
    dates = [d for h in hints if (d := exam_date(h.get("date", "")))]
    near = _nearest(dated, dates, tolerance_days)
    if near:
        return _preferred(near, series), "date"
    if ids or dates:
        return None, "not_found"
    return _preferred(_earliest(images.paths, dated), series), "earliest"


def _earliest(paths: list[str], dated: Mapping[str, str | None]) -> list[str]:
    """The paths of the earliest date among ``paths`` (all of them when none is dated)."""
    first = min((dated[p] for p in paths if dated[p]), default=None)
    return [p for p in paths if dated[p] == first]


def _nearest(dated: Mapping[str, str | None], wanted: Sequence[str], tolerance: int) -> list[str]:
    """The paths whose date is nearest one of ``wanted`` (earliest wanted first), within
    ``tolerance`` days; [] when none is."""
    from datetime import date

    day = date.fromisoformat
    for target in sorted(wanted):
        gaps = {p: abs((day(d) - day(target)).days) for p, d in dated.items() if d}
        best = min(gaps.values(), default=None)
        if best is not None and best <= tolerance:
            return [p for p, gap in gaps.items() if gap == best]
    return []


def _preferred(paths: list[str], series: Sequence[str]) -> str:
    for text in series:
        regex = re.compile(text, re.IGNORECASE)
        hits = [p for p in paths if regex.search(p)]
        if hits:
            return hits[0]
    return paths[0]
