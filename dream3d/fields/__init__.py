"""Fields: functions from 3D points to density and albedo."""
from dream3d.fields.base import Field, FieldOutput
from dream3d.fields.hashgrid import HashGridConfig, TorchHashEncoding
from dream3d.fields.mlp import BlobShape, DensityActivation, DensityBlobConfig
from dream3d.fields.nerf import HashGridField, HashGridFieldConfig
from dream3d.fields.triplane import (
    FeatureAggregation,
    TriplaneDecoder,
    TriplaneDecoderConfig,
    TriplaneField,
    TriplaneFieldConfig,
)

__all__ = [
    "BlobShape",
    "DensityActivation",
    "DensityBlobConfig",
    "FeatureAggregation",
    "Field",
    "FieldOutput",
    "HashGridConfig",
    "HashGridField",
    "HashGridFieldConfig",
    "TorchHashEncoding",
    "TriplaneDecoder",
    "TriplaneDecoderConfig",
    "TriplaneField",
    "TriplaneFieldConfig",
]
