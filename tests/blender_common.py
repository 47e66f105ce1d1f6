"""What every script run inside Blender (tests/blender_*_check.py) needs first: numpy made
acceptable to Blender 3.4's glTF importer, bpy, and the evaluated mesh of an object.

A check script puts its own folder on sys.path and imports this before anything of bpy's."""
from __future__ import annotations

import warnings

import numpy

# Blender 3.4's glTF importer uses numpy.bool, which numpy >= 1.24 < 2 removed.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # numpy 1.24 warns on the probe itself
    if not hasattr(numpy, "bool"):
        numpy.bool = bool

import bpy  # noqa: E402


def evaluated(obj) -> numpy.ndarray:
    """[V, 3] world-space vertex positions of `obj` with its modifiers, shape keys and pose applied."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    out = numpy.array([tuple(obj.matrix_world @ v.co) for v in mesh.vertices])
    obj.evaluated_get(depsgraph).to_mesh_clear()
    return out
