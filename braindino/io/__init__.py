"""Reading and writing volumes in one canonical convention (RAS+, float32, exact affine)."""

from braindino.io.orientation import axcodes
from braindino.io.reader import check_voxels, is_volume_path, read_volume, suffix_of
from braindino.io.volume import Volume
from braindino.io.writer import write_in_source_space, write_volume

__all__ = [
    "Volume",
    "axcodes",
    "check_voxels",
    "is_volume_path",
    "read_volume",
    "suffix_of",
    "write_in_source_space",
    "write_volume",
]
