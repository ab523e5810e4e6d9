"""Frozen-encoder features: ``encode_volume`` (per-slice CLS / registers / patch means / chosen
blocks, with the pretraining preprocessing; the two steps are ``encoder_slices`` and
``encode_slices``), ``forward_slice_features`` (the same features in the autograd graph, for
an encoder that trains) and ``FeatureCache`` (each volume encoded once)."""

from braindino.features.cache import FeatureCache
from braindino.features.encode import (
    encode_slices,
    encode_volume,
    encoder_img_size,
    encoder_preprocess,
    encoder_slices,
    forward_slice_features,
    pick_features,
    resample_depth,
    slice_input,
    token_features,
)
from braindino.features.identity import (
    encoder_identity,
    feature_key,
    file_fingerprint,
    weights_digest,
)

__all__ = [
    "FeatureCache",
    "encode_slices",
    "encode_volume",
    "encoder_identity",
    "encoder_img_size",
    "encoder_preprocess",
    "encoder_slices",
    "feature_key",
    "file_fingerprint",
    "forward_slice_features",
    "pick_features",
    "resample_depth",
    "slice_input",
    "token_features",
    "weights_digest",
]
