"""Insertion orders: natural, seeded random, and Hilbert curve."""

from __future__ import annotations

import numpy as np


def hilbert_keys(coords: np.ndarray) -> np.ndarray:
    """Hilbert-curve index of each row of ``coords`` (n, d) as (n,) uint64.

    Coordinates are quantised to ``63 // d`` bits per axis on their bounding box and
    mapped with Skilling's transpose algorithm ("Programming the Hilbert curve",
    AIP Conf. Proc. 707, 2004), vectorised over rows.
    """
    n, d = coords.shape
    bits = max(1, min(16, 63 // d))
    lo = coords.min(axis=0)
    span = coords.max(axis=0) - lo
    span[span == 0] = 1.0
    top = (1 << bits) - 1
    x = np.minimum((coords - lo) / span * (top + 1), top).astype(np.uint64)
    m = np.uint64(1 << (bits - 1))
    # Inverse undo of the excess work (Skilling's AxesToTranspose).
    q = m
    while q > 1:
        p = q - np.uint64(1)
        for i in range(d):
            hit = (x[:, i] & q) != 0
            x[hit, 0] ^= p
            t = (x[~hit, 0] ^ x[~hit, i]) & p
            x[~hit, 0] ^= t
            x[~hit, i] ^= t
        q >>= np.uint64(1)
    for i in range(1, d):
        x[:, i] ^= x[:, i - 1]
    t = np.zeros(n, dtype=np.uint64)
    q = m
    while q > 1:
        hit = (x[:, d - 1] & q) != 0
        t[hit] ^= q - np.uint64(1)
        q >>= np.uint64(1)
    for i in range(d):
        x[:, i] ^= t
    # Interleave the transposed bits, most significant first.
    key = np.zeros(n, dtype=np.uint64)
    for b in range(bits - 1, -1, -1):
        for i in range(d):
            key = (key << np.uint64(1)) | ((x[:, i] >> np.uint64(b)) & np.uint64(1))
    return key


def insertion_order(kind: str, coords: np.ndarray, seed: int) -> np.ndarray:
    """Permutation (n,) int64 of point ids in the order they enter the tree."""
    n = coords.shape[0]
    if kind == "natural":
        return np.arange(n, dtype=np.int64)
    if kind == "random":
        return np.random.default_rng(seed).permutation(n).astype(np.int64)
    return np.argsort(hilbert_keys(coords), kind="stable").astype(np.int64)
