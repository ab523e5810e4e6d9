"""Pretraining data: input discovery, slice shards (writer/reader), preparation, sampling, crops.

Imported lazily so that ``import braindino.data`` stays light (no torch) for the CLIs.
"""

from __future__ import annotations

from braindino import lazy_getattr

_LAZY = {
    "VolumeInput": "braindino.data.inputs",
    "discover_inputs": "braindino.data.inputs",
    "inputs_from_config": "braindino.data.inputs",
    "subject_from_path": "braindino.data.path_names",
    "SliceShardReader": "braindino.data.shards",
    "SliceShardWriter": "braindino.data.shards",
    "SliceInfo": "braindino.data.shards",
    "prepare_shards": "braindino.data.prepare",
    "load_prepare_config": "braindino.data.prepare",
    "collect_inputs": "braindino.data.prepare",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr("braindino.data", _LAZY)
