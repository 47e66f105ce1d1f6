"""Rigging generated avatars: the Anny template fitted to a tri-plane diffusion avatar's mesh, so
`dream3d avatar "prompt"` writes a skinned model.glb with the 52 ARKit morphs (rig.py)."""
