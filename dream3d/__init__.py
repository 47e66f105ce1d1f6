"""dream3d: text-to-3D with score distillation, tri-plane and hash-grid fields, Blender-ready export."""
__version__ = "0.1.0"
