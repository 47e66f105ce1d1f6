"""`dream3d avatar --photo FILE [--drive VIDEO]`: the photo -> rigged Anny avatar run folder."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def photo_run(photo: Path, prepare: Callable, say: Callable[[str], None], write_anny: Callable, args,
              t_start: float) -> int:
    """Read the photo's face, fit the avatar, write the run folder (through `write_anny(args,
    attributes, folder, say, avatar)`, the CLI's rigged writer) and avatar.json. Returns 0."""
    from avatars.anny.model import load_anny
    from avatars.face.landmarks import read_face, read_image
    from avatars.face.photo import photo_avatar
    from avatars.triplane import attributes_to_json, write_json

    timings: dict[str, float] = {}
    t = time.perf_counter()
    image = read_image(photo)  # a bad photo is one line before anything is written
    reading = read_face(image, f"photo {photo}")
    timings["landmarks_s"] = time.perf_counter() - t
    if reading.faces_found > 1:
        say(f"note: {reading.faces_found} faces in {photo}; using the largest")
    yaw, pitch, roll = reading.yaw_pitch_roll()
    say(f"face: 478 landmarks, inter-ocular {reading.inter_ocular():.0f} px, head yaw {yaw:.0f} pitch {pitch:.0f} "
        f"roll {roll:.0f} deg")
    folder = prepare()
    t = time.perf_counter()
    load_anny(say=say)
    built = photo_avatar(image, reading)
    timings["fit_and_build_s"] = time.perf_counter() - t
    say(f"fitted Anny head: median landmark error {100 * built.fit.median_error_iod():.1f}% of the inter-ocular "
        f"distance; {built.attributes.age.value} {built.attributes.presentation.value}, skin "
        f"{built.attributes.skin_tone.value}, hair {built.attributes.hair_style.value} {built.attributes.hair_colour.value}, "
        f"eyes {built.attributes.eye_colour.value}, {'a beard' if built.beard.present else 'no beard'} in {timings['fit_and_build_s']:.1f}s")
    files, more, extra = write_anny(args, built.attributes, folder, say, built.avatar)
    timings |= more
    timings["total_s"] = time.perf_counter() - t_start
    info_path = folder.root / "avatar.json"

    def rgb(c):
        return None if c is None else [round(float(x), 4) for x in np.asarray(c)]

    write_json(info_path, {
        "source": "photo (anny)", "photo": str(photo), "attributes": attributes_to_json(built.attributes),
        "read": {"faces_found": reading.faces_found, "inter_ocular_px": round(reading.inter_ocular(), 1),
                 "yaw_pitch_roll_deg": [round(a, 1) for a in (yaw, pitch, roll)],
                 "blendshapes": {k: round(v, 3) for k, v in reading.blendshapes.items() if v >= 0.05},
                 "skin_srgb": rgb(built.colours.skin), "hair_srgb": rgb(built.colours.hair),
                 "iris_srgb": rgb(built.colours.iris), "clothing_srgb": rgb(built.colours.clothing),
                 "bald": built.colours.bald, "beard": built.beard.present,
                 "chin_vs_nose_delta_e": round(built.beard.delta_e, 1)},
        "fit": {"median_error_iod": round(built.fit.median_error_iod(), 4), "landmarks_used": int(built.fit.used.sum()),
                "phenotypes": {k: round(v, 3) for k, v in built.fit.params.phenotypes.items()},
                "local_changes": {k: round(v, 3) for k, v in built.fit.params.local_changes.items()}},
        **extra, "timings_s": {k: round(v, 2) for k, v in timings.items()},
    })
    if not args.quiet:
        for path in [*files, info_path, folder.config]:
            print(path)
    print(f"done: {folder.root} ({timings['total_s']:.1f}s)")
    return 0
