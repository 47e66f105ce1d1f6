"""Run inside Blender: import a driven avatar GLB and report whether its animation plays: the head
bone's rotation and the shape keys change over the frames, and the mesh follows.

    blender -b --factory-startup --python tests/blender_drive_check.py -- <file.glb> <json-out>

Reported: the actions, their F-curve data paths, the scene's frame range, and for the evaluated
mesh at the first frame and at each later frame, the largest vertex move (the head turning).
tests/test_face_avatar.py asserts.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # blender_common, beside this file
from blender_common import bpy, numpy, evaluated  # noqa: E402


def main(path: str, out: str) -> None:
    report: dict = {"ok": False}
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=path)
        (obj,) = [o for o in bpy.data.objects if o.type == "MESH"]
        report["actions"] = [a.name for a in bpy.data.actions]
        report["fcurves"] = sorted({fc.data_path for a in bpy.data.actions for fc in a.fcurves})
        start, end = int(bpy.context.scene.frame_start), int(bpy.context.scene.frame_end)
        report["frames"] = [start, end]
        bpy.context.scene.frame_set(start)
        first = evaluated(obj)
        moves = []
        for f in range(start, end + 1, max(1, (end - start) // 12)):
            bpy.context.scene.frame_set(f)
            moves.append(float(numpy.linalg.norm(evaluated(obj) - first, axis=1).max()))
        report["max_move_per_frame"] = moves
        report["ok"] = True
    except Exception:  # noqa: BLE001 - reported to the test
        report["error"] = traceback.format_exc()
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:]
    main(argv[0], argv[1])
