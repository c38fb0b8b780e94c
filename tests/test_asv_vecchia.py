"""The asv suites of the large Vecchia presets (asv_bench/benchmarks_vecchia.py): skipped
outside the benchmark-box profile, the big presets as parameters inside it, and their figures
taken from the bench's own result (run here on a small copy of vecchia-d3, not at 131k)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIG = ["vecchia-65k", "vecchia-131k"]
SMALL = "vecchia-d3@n=700"


@pytest.fixture()
def suites(monkeypatch):
    """load(profile) -> (_common, benchmarks_build, benchmarks_vecchia) imported under
    COVERTREEX_ASV_PROFILE=profile (None: unset); the default profile's modules come back after."""
    monkeypatch.syspath_prepend(str(ROOT))

    def load(profile):
        if profile is None:
            monkeypatch.delenv("COVERTREEX_ASV_PROFILE", raising=False)
        else:
            monkeypatch.setenv("COVERTREEX_ASV_PROFILE", profile)
        return tuple(importlib.reload(importlib.import_module(f"asv_bench.{name}"))
                     for name in ("_common", "benchmarks_build", "benchmarks_vecchia"))

    yield load
    monkeypatch.delenv("COVERTREEX_ASV_PROFILE", raising=False)
    load(None)


@pytest.mark.parametrize("profile", [None, "quick", "gold"])
def test_vecchia_suites_skip_outside_the_box_profile(suites, profile):
    c, build, vecchia = suites(profile)
    assert not c.BOX
    assert vecchia.VecchiaBuild.params == [BIG] and vecchia.VecchiaQuery.params == [BIG]
    with pytest.raises(NotImplementedError, match="COVERTREEX_ASV_PROFILE=box"):
        vecchia.VecchiaBuild().setup(BIG[-1])
    cache = vecchia.vecchia_cache()
    assert cache["query"] == {} and "box" in cache["missing"]
    with pytest.raises(NotImplementedError):
        vecchia.VecchiaQuery().setup(cache, BIG[-1])
    # The other suites keep their profile's presets: the quick run CI makes is unchanged.
    assert build.PRESETS == (["quick", "euclid-32k@n=8192"] if profile != "gold"
                             else ["gold-d3", "gold-d8", "euclid-32k"])


def test_box_profile_runs_the_big_presets_through_the_bench(suites, monkeypatch):
    c, build, vecchia = suites("box")
    assert c.BOX and c.GOLD
    assert vecchia.VecchiaBuild.params == [BIG] and vecchia.VecchiaQuery.params == [BIG]
    assert build.PRESETS == ["gold-d3", "gold-d8", "euclid-32k"]  # box = gold + the Vecchia suites
    monkeypatch.setattr(c, "VECCHIA_PRESETS", [SMALL])
    cache = vecchia.vecchia_cache()
    assert cache["missing"] is None
    figures = cache["query"][SMALL]
    suite = vecchia.VecchiaQuery()
    suite.setup(cache, SMALL)
    assert suite.track_pairs_per_row(cache, SMALL) == figures["pairs_per_row"] > 0
    assert suite.track_pairs_over_brute(cache, SMALL) == figures["pairs_over_brute"] > 0
    assert suite.track_tile_over_dgemm(cache, SMALL) == pytest.approx(1 / figures["gemm_share"])
    assert suite.track_blocked_over_single(cache, SMALL) == figures["blocked_over_single"] > 0
    assert vecchia.VecchiaQuery.track_tile_over_dgemm.unit == "x DGEMM time"
    # A result without the query figures (an older commit's harness) skips, naming them.
    with pytest.raises(NotImplementedError, match="gemm_share"):
        suite.setup({"missing": None, "query": {SMALL: {**figures, "gemm_share": None}}}, SMALL)
    # Build and build + queries run on the small copy as they would on the box.
    bench = vecchia.VecchiaBuild()
    bench.setup(SMALL)
    bench.time_build(SMALL)
    bench.peakmem_build_query(SMALL)
