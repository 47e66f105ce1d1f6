"""dream3d: text-to-3D with score distillation, tri-plane and hash-grid fields, Blender-ready export.

    import dream3d
    run = dream3d.generate("a red mushroom")   # same as `dream3d "a red mushroom"`
"""
__version__ = "0.1.0"


def generate(prompt: str, **kwargs):
    """Text to 3D; see dream3d.api.generate for the options. Returns a dream3d.api.Run."""
    from dream3d.api import generate as _generate  # lazy: `import dream3d` stays light

    return _generate(prompt, **kwargs)


def resume(run, **kwargs):
    """Continue an interrupted run; see dream3d.api.resume."""
    from dream3d.api import resume as _resume

    return _resume(run, **kwargs)


def export_run(run, formats=None, device=None):
    """Re-export a run's meshes; see dream3d.api.export_run."""
    from dream3d.api import export_run as _export_run

    return _export_run(run, formats=formats, device=device)


def video_run(run, frames=None, size=None, device=None):
    """Re-render a run's turntable video; see dream3d.api.video_run."""
    from dream3d.api import video_run as _video_run

    return _video_run(run, frames=frames, size=size, device=device)
