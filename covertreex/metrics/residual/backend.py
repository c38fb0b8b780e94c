"""The residual-correlation backend: whitened inducing factors V and residual variances p.

docs/design.md, "The residual-correlation metric": with inducing points U (a subset of the
coordinates X),
``K_mm = k(U, U) + jitter * s2 * I``, ``L = chol(K_mm)``, ``V = (L^-1 k(U, X))^T``
of shape (n, m), ``p_i = max(k(x_i, x_i) - |V_i|^2, 1e-9)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, solve_triangular

from ..._validation import as_points, as_positive_float, as_positive_int, as_progress
from ...kernels import RBF, Matern52

P_FLOOR = 1e-9
DEFAULT_INDUCING = 512
# V is solved in about V_CHUNKS column chunks of the points, so that progress can move and only
# a chunk of k(U, X) is held at a time; each chunk's L^-1 k(U, X_chunk) is independent of the
# others. Chunks start at multiples of CHUNK_ALIGN columns because BLAS solves a ragged group
# of fewer columns than its unroll width with other kernels, whose last bits may differ: aligned
# chunks keep the bits of one whole solve on one BLAS thread. (A threaded solve's bits depend on
# where its threads split the columns, chunked or not.)
V_CHUNKS = 32
CHUNK_ALIGN = 64


def _readonly(arr: np.ndarray) -> np.ndarray:
    """A read-only private copy: freezing the caller's own array would change their data's flags."""
    arr = np.array(arr, dtype=np.float64 if arr.dtype.kind == "f" else arr.dtype, order="C", copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class ResidualBackend:
    """Everything the residual metric needs, as read-only float64 arrays.

    coords:       (n, d) coordinates
    kernel:       the kernel used for V, p and every tile
    inducing_ids: (m,) int64 sorted ids of the inducing points (empty for ``from_factors``)
    v_matrix:     (n, m) whitened inducing factors V
    p_diag:       (n,) residual variances, all > 0
    kernel_diag:  (n,) k(x_i, x_i)
    """

    coords: np.ndarray
    kernel: RBF | Matern52
    inducing_ids: np.ndarray
    v_matrix: np.ndarray
    p_diag: np.ndarray
    kernel_diag: np.ndarray

    @property
    def n(self) -> int:
        return self.coords.shape[0]

    @classmethod
    def from_factors(cls, v_matrix, p_diag, coords, kernel) -> "ResidualBackend":
        """Wrap factors computed elsewhere: V (n, m), p (n,) > 0, coords (n, d), kernel."""
        coords = as_points(coords, "coords")
        _check_kernel(kernel)
        v = as_points(v_matrix, "v_matrix")
        if v.shape[0] != coords.shape[0]:
            raise ValueError(
                f"v_matrix has {v.shape[0]} rows but coords has {coords.shape[0]}; "
                "expected one row of V per point"
            )
        p = np.asarray(p_diag)
        if p.ndim != 1 or p.shape[0] != coords.shape[0]:
            raise ValueError(f"p_diag must have shape ({coords.shape[0]},), got {p.shape}")
        if not np.issubdtype(p.dtype, np.number) or p.dtype == bool:
            raise TypeError(f"p_diag must hold real numbers, got dtype {p.dtype}")
        p = p.astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError("p_diag contains NaN or inf; residual variances must be finite")
        if (p <= 0).any():
            bad = int(np.argmax(p <= 0))
            raise ValueError(f"p_diag must be > 0 everywhere, got p_diag[{bad}] = {p[bad]}")
        kdiag = kernel.diag(coords)
        kernel._inverse_lengthscale(coords.shape[1])  # raises on a lengthscale/d mismatch
        return cls(
            coords=_readonly(coords),
            kernel=kernel,
            inducing_ids=_readonly(np.zeros(0, dtype=np.int64)),
            v_matrix=_readonly(v),
            p_diag=_readonly(p),
            kernel_diag=_readonly(kdiag),
        )


def _check_kernel(kernel) -> None:
    if not isinstance(kernel, (RBF, Matern52)):
        raise TypeError(
            f"kernel must be covertreex.kernels.RBF or Matern52, got {type(kernel).__name__}"
        )


def _whitened_factors(chol, kernel, u, coords, progress) -> np.ndarray:
    """V = (L^-1 k(U, X))^T, (n, m) float64, for the lower Cholesky factor ``chol`` (m, m) of
    K_mm, the inducing points u (m, d) and coords (n, d), solved in aligned column chunks of
    the points, calling progress(done, n) (if not None) after each."""
    n = coords.shape[0]
    v = np.empty((n, u.shape[0]))
    step = CHUNK_ALIGN * -(-n // (V_CHUNKS * CHUNK_ALIGN))
    for a in range(0, n, step):
        b = min(n, a + step)
        v[a:b] = solve_triangular(chol, kernel(u, coords[a:b]), lower=True, check_finite=False).T
        if progress is not None:
            progress(b, n)
    return v


def build_residual_backend(
    coords,
    kernel=None,
    inducing_count: int | None = None,
    seed: int = 42,
    jitter: float = 1e-6,
    progress=None,
) -> ResidualBackend:
    """Factor the Nystrom approximation of ``kernel`` on ``coords``.

    coords: (n, d) float array. The m inducing ids are
    ``sort(default_rng(seed + 1).choice(n, m, replace=False))`` with m = inducing_count, which
    may not exceed n (None: min(DEFAULT_INDUCING, n)). progress: optional callable(done, n)
    called in this thread with the points whose rows of V are solved so far, increasing, the
    last call with done == n; the results do not depend on it. Returns a frozen
    ``ResidualBackend`` whose V is (n, m) float64.
    """
    coords = as_points(coords, "coords")
    kernel = RBF() if kernel is None else kernel
    _check_kernel(kernel)
    kernel._inverse_lengthscale(coords.shape[1])
    if inducing_count is not None:
        inducing_count = as_positive_int(inducing_count, "inducing_count")
    jitter = as_positive_float(jitter, "jitter")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    progress = as_progress(progress, "done, n")
    n = coords.shape[0]
    if inducing_count is None:
        inducing_count = min(DEFAULT_INDUCING, n)
    elif inducing_count > n:
        raise ValueError(
            f"inducing_count={inducing_count} exceeds the {n} points in coords; the inducing "
            f"points are a subset of the coordinates, so pass inducing_count <= {n}"
        )
    m = inducing_count
    inducing = np.sort(np.random.default_rng(int(seed) + 1).choice(n, m, replace=False)).astype(np.int64)
    u = coords[inducing]
    kmm = kernel(u, u)
    kmm[np.diag_indices_from(kmm)] += jitter * kernel.variance
    chol, _ = cho_factor(kmm, lower=True, check_finite=False)
    v = _whitened_factors(chol, kernel, u, coords, progress)
    kdiag = kernel.diag(coords)
    p = np.maximum(kdiag - np.einsum("ij,ij->i", v, v), P_FLOOR)
    return ResidualBackend(
        coords=_readonly(coords),
        kernel=kernel,
        inducing_ids=_readonly(inducing),
        v_matrix=_readonly(v),
        p_diag=_readonly(p),
        kernel_diag=_readonly(kdiag),
    )
