"""Per-PR performance gate on the quick preset (docs/design.md, "Harness"; thresholds in the
packaged covertreex_bench/thresholds.toml).

``test_quick_build_and_queries`` builds the quick preset's tree and runs its 256 queries
``ROUNDS`` times under pytest-benchmark (after a Numba warm-up on a tiny instance), checks
recall against the float64 reference, attaches the telemetry figures to
``benchmark.extra_info`` and writes the figures (the same JSON as
``covertreex bench --preset quick --check --json``) to out/gate/quick.json for the report.
``test_threshold[...]`` then asserts every threshold of the tables that list the quick
preset, one test per figure: the audit's numbers, and this machine's calibrated limits
(``make calibrate``; skipped, naming the command, on a machine without them). Change against
a base commit is perf/compare.py's job (``make gate``). The assertions use the build reports' ``build_wall_ms`` and
the telemetry, never ``benchmark.stats``, so they hold under ``--benchmark-disable`` too
(pytest-benchmark then runs one round).

Run: ``make test`` (or ``pytest tests/perf``, or this file or one of its tests on the command
line). A plain ``pytest`` / ``make test`` skips these tests: their thresholds are timings that a
loaded machine can miss, and they add builds of the quick preset to the unit tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from covertreex import CoverTree
from covertreex.phases import Phases
from covertreex_bench import bench, console, environment, results, runtime, thresholds
from covertreex_bench.common import write_atomic
from covertreex_bench.workloads import get_preset, load_workload

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "gate"
PRESET = "quick"
ROUNDS = 3

CONFIG = thresholds.load()
GATES = CONFIG.for_preset(PRESET)
# Figures copied into benchmark.extra_info (and so into pytest-benchmark's JSON).
EXTRA_FIGURES = (
    "build_wall_ms", "query_wall_ms", "queries_per_s", "recall", "reference_ms",
    "traversal_ms_sum", "traversal_ms_median", "traversal_ms_median_dominated",
    "whitened_block_ms_sum", "whitened_block_ms_median_dominated",
    "kernel_provider_ms_sum", "kernel_provider_ms_median_dominated",
    "conflict_graph_ms_sum", "conflict_graph_ms_median_dominated",
    "tile_share_of_traversal", "pairwise_not_reused_after_first", "batches", "dominated_batches",
)

_CACHE: dict = {}
HERE = Path(__file__).resolve().parent


def _asked_for(config) -> bool:
    """True when a command-line path points into tests/perf (not just at tests/ or the root)."""
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        if path.resolve().is_relative_to(HERE):
            return True
    return False


@pytest.fixture(scope="module", autouse=True)
def _only_when_asked(request):
    # Module scope and autouse: runs before the (module-scoped) warm-up of ``quick``.
    if not _asked_for(request.config):
        pytest.skip("absolute performance checks: run `pytest tests/perf` (`make test` does)")


@pytest.fixture(scope="module")
def quick():
    """The quick preset's data, runtime (every phase on, whatever the environment says),
    reference, with the kernels compiled."""
    preset = get_preset(PRESET)
    rt = runtime.make_runtime(preset, Phases.all())
    warm_s = runtime.warm_up(preset, rt.phases)
    start = time.perf_counter()
    workload = load_workload(preset)
    data_s = time.perf_counter() - start
    ref = bench.compute_reference(preset, workload)
    return {"preset": preset, "runtime": rt, "workload": workload, "ref": ref,
            "warm_s": warm_s, "data_s": data_s}


def _measure(quick, benchmark=None) -> dict:
    """Build + query the quick preset (under ``benchmark`` when given), judge, write the JSON."""
    if "result" in _CACHE:
        return _CACHE["result"]
    preset, runtime, workload = quick["preset"], quick["runtime"], quick["workload"]
    runs = []

    def build_and_query():
        tree = CoverTree(runtime).fit(workload.fit_input)
        idx, dist, report = tree.knn_report(workload.knn_queries, preset.k,
                                            predecessor_mode=preset.predecessor_mode)
        runs.append((tree.build_report, report, idx, dist))

    if benchmark is not None:
        benchmark.pedantic(build_and_query, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    else:
        for _ in range(ROUNDS):
            build_and_query()
    measurement = results.Measurement([r[0] for r in runs], [r[1] for r in runs],
                                    [(r[2], r[3]) for r in runs], None)
    recalls = [bench.recall_of(preset, workload, idx, dist, quick["ref"]) for _, _, idx, dist in runs]
    result = results.make_result(preset, runtime, measurement, warmup_s=quick["warm_s"],
                               ref=quick["ref"], recalls=recalls, data_s=quick["data_s"])
    result["thresholds_file"] = CONFIG.path
    result["verdicts"] = [v.as_dict() for v in thresholds.evaluate(results.figures(result), GATES)]
    result["command"] = ["pytest", "tests/perf/test_gate.py"]
    environment.attach_context(result)
    write_atomic(OUT / f"{PRESET}.json", json.dumps(result, indent=2) + "\n")
    _CACHE["result"] = result
    return result


def test_quick_build_and_queries(benchmark, quick, capsys):
    result = _measure(quick, benchmark)
    with capsys.disabled():
        print()
        print(console.format_result(result))
    figures = results.figures(result)
    benchmark.extra_info.update({name: figures.get(name) for name in EXTRA_FIGURES})
    benchmark.extra_info["verdicts"] = {v["figure"]: v["status"] for v in result["verdicts"]}
    benchmark.extra_info["gate_json"] = str(OUT / f"{PRESET}.json")
    assert result["repeat"] >= 1
    assert result["recall"] is not None


def test_gate_has_thresholds():
    figures = {t.figure for t in GATES}
    assert {"traversal_ms_median_dominated", "conflict_graph_ms_median_dominated", "build_wall_ms",
            "recall", "pairwise_not_reused_after_first", "tile_share_of_traversal"} <= figures


@pytest.mark.parametrize("threshold", GATES, ids=lambda t: f"{t.table}.{t.figure}")
def test_threshold(threshold, quick):
    result = _measure(quick)
    (verdict,) = thresholds.evaluate(results.figures(result), [threshold])
    if verdict.limit is None:  # a calibrated gate on a machine without `make calibrate`
        pytest.skip(verdict.message())
    assert verdict.value is not None, f"{threshold.figure} was not measured by the quick run"
    assert verdict.status == "PASS", verdict.message()
