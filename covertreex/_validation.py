"""Input validation shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` naming the argument, what was
given and what was expected, in the manner of scikit-learn's ``check_array``.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

# Largest magnitude accepted in coordinates: squares of differences must stay finite.
MAX_ABS_VALUE = 1e150


def as_points(value, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Return ``value`` as a C-contiguous (n, d) float64 array of finite numbers."""
    if value is None:
        raise TypeError(f"{name} must be a 2-D array of floats with shape (n, d), got None")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a 2-D array of floats with shape (n, d): {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n, d), got {arr.ndim}-D shape {arr.shape}; "
            "reshape a single point with x.reshape(1, -1) or a 1-D feature with x.reshape(-1, 1)"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (feature), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one point is required")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
            "all values must be finite"
        )
    big = np.abs(arr).max(initial=0.0)
    if big > MAX_ABS_VALUE:
        # Squared differences of such values overflow to inf and every distance ties.
        raise ValueError(
            f"{name} has values up to {big:.3g} in magnitude; distances are computed from squared "
            f"differences, which overflow above about 1e154, so values must stay below "
            f"{MAX_ABS_VALUE:g}: rescale the data"
        )
    return arr


def as_positive_int(value, name: str) -> int:
    """Return ``value`` as a Python int > 0 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def as_ids(value, name: str, n: int) -> np.ndarray:
    """Return ``value`` as a 1-D int64 array of dataset ids in [0, n)."""
    arr = np.asarray(value)
    if arr.ndim == 2:
        raise TypeError(
            f"{name} must be a 1-D array of dataset ids (the residual metric queries points of the "
            f"fitted data set by id), got a 2-D array of shape {arr.shape}; pass row indices instead "
            "of coordinates"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of dataset ids, got {arr.ndim}-D shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one id, or None for every point")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    ids = arr.astype(np.int64)
    bad = (ids < 0) | (ids >= n)
    if bad.any():
        raise ValueError(f"{name} has ids out of range [0, {n}): {ids[bad][:5].tolist()}")
    return ids


def as_positive_float(value, name: str) -> float:
    """Return ``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


# Bytes per (query, neighbour) entry that a kNN call holds at once: the float64 and int64
# heaps, and the sorted idx and dist it returns.
_KNN_ENTRY_BYTES = 32


def as_progress(progress, args: str):
    """``progress`` if it is None or callable; ``args`` names its arguments in the TypeError."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable({args}) or None, got {progress!r}")
    return progress


def as_k(value, q: int, n: int) -> int:
    """Return ``value`` as the k of a kNN call over q queries and n points, before anything
    is allocated: a positive int whose (q, k) results fit in this machine's memory."""
    k = as_positive_int(value, "k")
    need = q * k * _KNN_ENTRY_BYTES
    total = _physical_memory()
    if total is not None and need > total:
        raise ValueError(
            f"k={k} asks for {q} x {k} results, about {need / 2**30:.3g} GiB, more than this "
            f"machine's {total / 2**30:.3g} GiB of memory; the tree holds n={n} points, so "
            f"rows have at most {n} neighbours and any k beyond that only adds padding"
        )
    return k


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None
