"""BrainDINO: a brain-MRI foundation-model toolkit.

Public API (imported lazily so that light commands do not pay for torch):
``read_volume``, ``write_volume``, ``Volume``, ``BrainDinoError``, ``create_backbone``,
``load_encoder``, ``save_encoder``, ``encode_volume``, ``FeatureCache`` and ``generate_cohort``.
"""

from __future__ import annotations

import importlib
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'braindino' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
