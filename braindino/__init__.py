"""BrainDINO: a brain-MRI foundation-model toolkit.

Public API (imported lazily so that light commands do not pay for torch):
``read_volume``, ``write_volume``, ``Volume``, ``BrainDinoError``, ``create_backbone``,
``load_encoder``, ``save_encoder``, ``encode_volume``, ``FeatureCache`` and ``generate_cohort``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from braindino.errors import BrainDinoError

__version__ = "0.1.0"

_LAZY = {
    "read_volume": "braindino.io",
    "write_volume": "braindino.io",
    "Volume": "braindino.io",
    "load_encoder": "braindino.models",
    "save_encoder": "braindino.models",
    "create_backbone": "braindino.models",
    "encode_volume": "braindino.features",
    "FeatureCache": "braindino.features",
    "generate_cohort": "braindino.synth",
}

__all__ = ["BrainDinoError", "__version__", *_LAZY]


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A package's module-level ``__getattr__``: ``name`` is imported from ``table[name]`` (a
    module path) on first use, so importing the package stays light."""

    def getattr_(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        return getattr(importlib.import_module(module), name)

    return getattr_


__getattr__ = lazy_getattr("braindino", _LAZY)
