"""The asv tile suites (asv_bench/benchmarks_tile.py) set up against this commit's metric and
time the tile they name: the Python tile and the nopython kernel give the same distances."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from covertreex.reference import residual_tolerance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tile_suite(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delenv("COVERTREEX_ASV_PROFILE", raising=False)
    common = importlib.reload(importlib.import_module("asv_bench._common"))
    return common, importlib.reload(importlib.import_module("asv_bench.benchmarks_tile"))


def test_tile_suites_set_up_and_time_the_same_distances(tile_suite):
    c, tiles = tile_suite
    python_tile, kernel_tile = tiles.ResidualTile(), tiles.ResidualTileKernel()
    python_tile.setup(c.TILE_PRESET, "all")
    kernel_tile.setup(c.TILE_PRESET, "all")
    # |rho| = 1 - d^2, the form the float64 rule bounds (docs/design.md): the two sum V's
    # products in different orders (Numba's register-blocked loop and BLAS).
    gap = np.abs((1 - kernel_tile._tile() ** 2) - (1 - python_tile._tile() ** 2))
    tol = residual_tolerance(python_tile.metric.backend, python_tile.rows)[:, None]
    np.testing.assert_array_less(gap, np.broadcast_to(tol, gap.shape))
    assert kernel_tile.track_tile_over_gemm(c.TILE_PRESET, "all") > 0
