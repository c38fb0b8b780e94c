"""covertreex: exact k-nearest neighbours with a parallel compressed cover tree.

Euclidean and Vecchia residual-correlation metrics; see README.md.
"""

from . import kernels
from .cover_tree import CoverTree
from .metrics.residual import ResidualBackend, build_residual_backend
from .phases import Phases
from .runtime import Runtime
from .threads import configure_threading
from .telemetry import BuildReport, QueryReport

__all__ = [
    "BuildReport",
    "CoverTree",
    "Phases",
    "QueryReport",
    "ResidualBackend",
    "Runtime",
    "build_residual_backend",
    "configure_threading",
    "kernels",
]
