"""Rodin-style avatars built on dream3d (may import dream3d; dream3d never imports avatars)."""
