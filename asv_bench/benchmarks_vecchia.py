"""The large Vecchia presets on the benchmark box (issue 14): vecchia-65k and vecchia-131k
(residual, d=3, 512 inducing points, k=50, predecessor mode, every point queried).

They run only with ``COVERTREEX_ASV_PROFILE=box``; in any other profile every setup raises
NotImplementedError (asv: skipped) and the setup_cache returns at once, so the quick and gold
runs pay nothing but asv's start of a process per benchmark.

- ``VecchiaBuild``: ``time_build`` and ``peakmem_build`` as benchmarks_build.Build, and
  ``peakmem_build_query``, the peak RSS of a process that loads the workload, builds and runs
  the queries once (``covertreex_bench.bench.measure``, the bench's own build + queries).
- ``VecchiaQuery``: the query-phase figures of one ``covertreex bench --check`` run of each
  preset (``bench.run_preset`` in setup_cache, so the figures are the bench JSON's
  ``result["query"]``), as track_* benchmarks. asv takes lower as better for every benchmark,
  so the tiles' share of DGEMM throughput is tracked as its inverse, tile time over DGEMM time.
"""

from __future__ import annotations

from . import _common as c
from . import benchmarks_build

# track_* name -> (result["query"] key, unit, whether asv gets the inverse).
QUERY_FIGURES = {
    "pairs_per_row": ("pairs_per_row", "pairs per row", False),
    "pairs_over_brute": ("pairs_over_brute", "x brute-force pairs", False),
    "tile_over_dgemm": ("gemm_share", "x DGEMM time", True),
    "blocked_over_single": ("blocked_over_single", "x single-row pairs", False),
}


class VecchiaBuild(benchmarks_build.Build):
    """Build time and peak memory; the workload (V is n x 512 float64) is loaded in setup."""

    params = [c.VECCHIA_PRESETS]
    repeat = (1, 3, 900.0)
    timeout = 3600

    def setup(self, preset):
        c.require_box()
        self.bench = c.bench()
        super().setup(preset)

    def peakmem_build_query(self, preset):
        # One build and the every-point predecessor queries, as `covertreex bench` runs them.
        self.bench.measure(self.workload.preset, self.workload, self.runtime, 1)


def vecchia_cache(_benchmark=None):
    """setup_cache: {"missing": why nothing ran or None, "query": {preset: result["query"]}}."""
    out = {"missing": None, "query": {}}
    try:
        c.require_box()
        bench = c.bench()
    except NotImplementedError as exc:
        out["missing"] = str(exc)
        return out
    for name in c.VECCHIA_PRESETS:
        result = bench.run_preset(c.preset(name), check=True, progress=False)
        out["query"][name] = result.get("query") or {}
    return out


# One bench run with its reference of each preset; the box has hours, not minutes.
vecchia_cache.timeout = 4 * 3600


class VecchiaQuery:
    """Query-phase figures of the bench run in setup_cache (lower is better for each)."""

    params = [c.VECCHIA_PRESETS]
    param_names = ["preset"]
    setup_cache = vecchia_cache
    timeout = vecchia_cache.timeout

    def setup(self, cache, preset):
        if cache["missing"]:
            raise NotImplementedError(cache["missing"])
        figures = cache["query"].get(preset, {})
        absent = [key for key, *_ in QUERY_FIGURES.values() if figures.get(key) is None]
        if absent:
            raise NotImplementedError(f"this commit's bench result lacks {', '.join(absent)}")
        self.figures = figures

    def _track(self, name):
        key, _, inverse = QUERY_FIGURES[name]
        return 1.0 / self.figures[key] if inverse else float(self.figures[key])

    def track_pairs_per_row(self, cache, preset):
        return self._track("pairs_per_row")

    def track_pairs_over_brute(self, cache, preset):
        return self._track("pairs_over_brute")

    def track_tile_over_dgemm(self, cache, preset):
        return self._track("tile_over_dgemm")

    def track_blocked_over_single(self, cache, preset):
        return self._track("blocked_over_single")


for _name, (_, _unit, _) in QUERY_FIGURES.items():
    getattr(VecchiaQuery, f"track_{_name}").unit = _unit
