"""The asv tile suites (asv_bench/benchmarks_tile.py) set up against this commit's metric and
time the tile they name: the Python tile and the nopython kernel give the same distances."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from conftest import assert_rho_within_rule

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
    # The two sum V's products in different orders (Numba's register-blocked loop and BLAS).
    assert_rho_within_rule(python_tile.metric.backend, python_tile.rows, kernel_tile._tile(),
                           python_tile._tile())
    assert kernel_tile.track_tile_over_gemm(c.TILE_PRESET, "all") > 0
