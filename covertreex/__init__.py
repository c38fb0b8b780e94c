"""covertreex: exact k-nearest neighbours with a parallel compressed cover tree.

Euclidean and Vecchia residual-correlation metrics; see README.md.
"""

from . import kernels
from .cover_tree import CoverTree
from .metrics.residual import ResidualBackend, build_residual_backend
from .runtime import Runtime

__all__ = ["CoverTree", "Runtime", "ResidualBackend", "build_residual_backend", "kernels"]
