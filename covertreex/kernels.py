"""Stationary covariance kernels used by the residual-correlation metric.

A kernel is a frozen value: ``RBF(lengthscale, variance)`` or
``Matern52(lengthscale, variance)``. The lengthscale is a scalar or one value per
dimension. Both are functions of the scaled distance r = ||(x - y) / lengthscale||:

- RBF:        s2 * exp(-r^2 / 2)
- Matern 5/2: s2 * (1 + sqrt(5) r + 5 r^2 / 3) * exp(-sqrt(5) r)

``code`` identifies the profile inside Numba kernels, which receive coordinates
already divided by the lengthscale (see ``scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_points, as_positive_float

RBF_CODE = 0
MATERN52_CODE = 1


@dataclass(frozen=True)
class _Stationary:
    lengthscale: float | tuple[float, ...] = 1.0
    variance: float = 1.0

    def __post_init__(self):
        ls = self.lengthscale
        if np.ndim(ls) == 0:
            object.__setattr__(self, "lengthscale", as_positive_float(ls, "lengthscale"))
        else:
            values = np.asarray(ls)
            if values.ndim != 1 or values.size == 0:
                raise ValueError(
                    f"lengthscale must be a positive scalar or a 1-D sequence with one value per "
                    f"dimension, got shape {values.shape}"
                )
            object.__setattr__(
                self,
                "lengthscale",
                tuple(as_positive_float(v, f"lengthscale[{i}]") for i, v in enumerate(values.tolist())),
            )
        object.__setattr__(self, "variance", as_positive_float(self.variance, "variance"))

    def _inverse_lengthscale(self, d: int) -> np.ndarray:
        if isinstance(self.lengthscale, tuple):
            if len(self.lengthscale) != d:
                raise ValueError(
                    f"{type(self).__name__} has {len(self.lengthscale)} lengthscales but the "
                    f"coordinates have d={d} columns; give a scalar or one value per column"
                )
            return 1.0 / np.asarray(self.lengthscale, dtype=np.float64)
        return np.full(d, 1.0 / self.lengthscale)

    def scale(self, coords: np.ndarray) -> np.ndarray:
        """(n, d) float64 coordinates divided by the lengthscale, C-contiguous."""
        coords = np.asarray(coords, dtype=np.float64)
        return np.ascontiguousarray(coords * self._inverse_lengthscale(coords.shape[1]))

    def __call__(self, x, y) -> np.ndarray:
        """Kernel matrix k(x, y), shape (len(x), len(y)), float64.

        Squared distances are formed from differences, not from ``|a|^2 + |b|^2 - 2ab``,
        so the tile carries no cancellation error.
        """
        xs = self.scale(as_points(x, "x"))
        ys = self.scale(as_points(y, "y"))
        if xs.shape[1] != ys.shape[1]:
            raise ValueError(f"x has d={xs.shape[1]} columns but y has d={ys.shape[1]}")
        r2 = np.zeros((xs.shape[0], ys.shape[0]))
        for c in range(xs.shape[1]):
            diff = xs[:, c, None] - ys[None, :, c]
            r2 += diff * diff
        return self.profile(r2)

    def diag(self, x) -> np.ndarray:
        """k(x_i, x_i) for every row: shape (n,), float64."""
        return np.full(np.asarray(x).shape[0], self.variance)


@dataclass(frozen=True)
class RBF(_Stationary):
    """Squared-exponential kernel s2 * exp(-r^2 / 2)."""

    code = RBF_CODE

    def profile(self, r2: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """k as a function of scaled squared distances r2; ``out`` may alias r2."""
        out = np.multiply(r2, -0.5, out=out)
        np.exp(out, out=out)
        out *= self.variance
        return out


@dataclass(frozen=True)
class Matern52(_Stationary):
    """Matern 5/2 kernel s2 * (1 + sqrt(5) r + 5 r^2 / 3) * exp(-sqrt(5) r)."""

    code = MATERN52_CODE

    def profile(self, r2: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """k as a function of scaled squared distances r2; ``out`` may alias r2."""
        s5r = np.sqrt(5.0 * r2)
        poly = 1.0 + s5r + (5.0 / 3.0) * r2
        np.exp(-s5r, out=s5r)
        return np.multiply(poly * self.variance, s5r, out=out)


Kernel = RBF | Matern52
