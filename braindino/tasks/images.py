"""Find a dataset's images by regular expressions over the file paths under its root."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from braindino.errors import ConfigError

_DIGITS = re.compile(r"\d+")


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
    compiled = {}
    for role, text in patterns.items():
        try:
            regex = re.compile(str(text))
        except re.error as exc:
            raise ConfigError(
                f"data.images.{role} is not a valid regular expression ({exc})",
                path="task config",
                fix="correct the pattern",
            ) from exc
        if "subject" not in regex.groupindex:
            raise ConfigError(
                f"data.images.{role} has no (?P<subject>...) group",
                path="task config",
                fix="mark the part of the path that names the subject with (?P<subject>...)",
            )
        compiled[role] = regex
    return compiled


def match_images(
    files: list[str], patterns: Mapping[str, str]
) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """Per role, ``subject_key -> (subject id as written in the path, [matching paths])``.

    Paths keep ``files``' (sorted) order, so "the first scan" is deterministic.
    """
    compiled = compile_patterns(patterns)
    found: dict[str, dict[str, tuple[str, list[str]]]] = {role: {} for role in compiled}
    for rel in files:
        for role, regex in compiled.items():
            match = regex.search(rel)
            if match:
                subject = match.group("subject")
                entry = found[role].setdefault(subject_key(subject), (subject, []))
                entry[1].append(rel)
    return found
