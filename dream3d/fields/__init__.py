"""Fields: functions from 3D points to density and albedo."""
from dream3d.fields.base import Field, FieldOutput

__all__ = ["Field", "FieldOutput"]
