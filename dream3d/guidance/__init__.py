"""Frozen diffusion priors and score distillation sampling."""
