"""Volume rendering: rays, sampling, compositing, shading, backgrounds."""
