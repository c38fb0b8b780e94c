"""Residual-correlation metric: backend construction and distance kernels."""

from .backend import ResidualBackend, build_residual_backend

__all__ = ["ResidualBackend", "build_residual_backend"]
