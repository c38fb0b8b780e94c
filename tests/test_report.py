"""The static HTML report (covertreex report): synthetic inputs, empty inputs, no external URL.

``write_fixtures`` writes a small but complete set of inputs in the formats the report reads:
asv 0.6 results (api_version 2), bench / gate JSON (covertreex_bench.bench, one ladder), telemetry
JSON lines (covertreex.telemetry records), perf/thresholds.toml and one profile summary with
its pyinstrument HTML. tests/test_report_browser.py reuses it.
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from covertreex_bench.reports import SECTIONS, build_report
from covertreex_bench.results import preset_fields
from covertreex_bench.workloads import get_preset, scaled
from covertreex.telemetry import BatchRecord, BuildReport, QueryReport, build_records, query_record, write_jsonl

COMMITS = ["a1" * 20, "b2" * 20, "c3" * 20]
PHASE_NAMES = ("block_gemm", "gemm_kernel_provider", "pairwise_reuse", "float32_staging",
               "topk_selection", "nopython_chunk_loop", "thread_guard")
LADDER = ["baseline"] + [f"+{i + 1} {name}" for i, name in enumerate(PHASE_NAMES)]
ENV = {"python": "3.11.7", "platform": "Linux-test-x86_64", "numpy": "2.4.6", "numba": "0.68.1",
       "scipy": "1.17.1", "hostname": "testbox", "cpu_model": "Test CPU", "cpu_count": 2,
       "cpu_affinity": 2, "thread_env": {"OMP_NUM_THREADS": "2"}, "numba_threads": 2,
       "numba_threading_layer": "omp",
       "threadpools": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 2,
                        "version": "0.3.30"}]}


def _summary(scale: float) -> dict:
    return {"build_wall_ms": 5000 * scale, "batches": 16, "dominated_batches": 10,
            "traversal_ms_sum": 4000 * scale, "traversal_ms_median": 250 * scale,
            "traversal_ms_median_dominated": 400 * scale, "whitened_block_ms_sum": 2500 * scale,
            "kernel_provider_ms_sum": 1400 * scale, "conflict_graph_ms_sum": 80 * scale,
            "conflict_graph_ms_median_dominated": 3.0, "pairwise_not_reused_after_first": 0,
            "tile_share_of_traversal": 0.97}


def _bench_result(preset: str, scale: float, step: str | None = None, verdicts=None) -> dict:
    """A bench result of ``preset`` ('NAME' or 'NAME@n=N'), its times multiplied by ``scale``."""
    base, _, n = preset.partition("@n=")
    res = {"schema": "covertreex_bench.bench", "version": 1,
           **preset_fields(scaled(base, int(n)) if n else get_preset(base)),
           "phases": {name: step != "baseline" for name in PHASE_NAMES},
           "phases_label": "baseline" if step == "baseline" else "all",
           "build_wall_ms": 5000 * scale, "query_wall_ms": 500 * scale, "recall": 1.0,
           "reference_ms": 350.0, "summary": _summary(scale), "peak_rss_mb": 300.0 * scale,
           "query": {"pairs_per_row": 900.0 * scale, "pairs_over_brute": 0.4 * scale,
                     "gemm_share": 0.8 / scale, "blocked_over_single": 1.2 * scale},
           "derived": {"build_query_over_reference": 16.0 * scale}}
    if step is not None:
        res["step"] = step
    if verdicts is not None:
        res["verdicts"] = verdicts
    return res


def _asv_result(commit: str, date_ms: int, scale: float) -> dict:
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
               "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
               "samples", "profile"]
    presets = [["'quick'", "'euclid-32k@n=8192'"]]
    ladder_params = [["'quick'"], [repr(s) for s in LADDER]]

    def ladder(base):
        return [base * scale * (1.0 - 0.08 * i) for i in range(len(LADDER))]

    results = {
        "benchmarks_build.Build.time_build": [[5.0 * scale, 2.0], presets, "v1", date_ms, 10.0],
        "benchmarks_build.Build.peakmem_build": [[400e6, 280e6 * scale], presets, "v1", date_ms, 5.0],
        "benchmarks_build.Knn.time_knn": [[0.6 * scale, None], presets, "v1", date_ms, 5.0],
        "benchmarks_ladder.PhaseLadder.track_traversal_ms": [ladder(4000), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_whitened_block_ms": [ladder(2500), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_kernel_provider_ms": [ladder(1400), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_conflict_graph_ms": [ladder(90), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_build_wall_ms": [ladder(5200), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_dominated_traversal_ms": [ladder(420), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_ladder.PhaseLadder.track_knn_ms": [ladder(520), ladder_params, "v1", date_ms, 1.0],
        "benchmarks_cold_start.ColdStart.time_cold_start": [[45.0], [], "v1", date_ms, 50.0],
    }
    return {"commit_hash": commit, "env_name": "virtualenv-py3.11-numpy2.4.6", "date": date_ms,
            "params": {"arch": "x86_64", "cpu": "Test CPU", "machine": "asvbox", "num_cpu": "2",
                       "os": "Linux test", "ram": "25276502016", "python": "3.11"},
            "python": "3.11", "requirements": {"numpy": "2.4.6", "numba": "0.68.1"},
            "env_vars": {}, "result_columns": columns, "results": results, "durations": {},
            "version": 2}


HISTORY_BENCH = "benchmarks_telemetry.BuildTelemetry.time_traversal_ms"


def write_history(asv: Path, machine: str, commits, values_ms, t0: int = 1_790_100_000) -> None:
    """asv results of HISTORY_BENCH on ``machine``: one file per commit, the value (ms) with a
    99 % interval of +-2 %, as asv writes them; adds the benchmark to benchmarks.json."""
    meta_path = asv / "benchmarks.json"
    asv.mkdir(parents=True, exist_ok=True)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"version": 2}
    meta[HISTORY_BENCH] = {"type": "time", "unit": "seconds", "param_names": ["preset"],
                           "params": [["'quick'"]]}
    meta_path.write_text(json.dumps(meta))
    (asv / machine).mkdir(parents=True, exist_ok=True)
    (asv / machine / "machine.json").write_text(json.dumps(
        {"arch": "x86_64", "cpu": f"CPU of {machine}", "machine": machine, "num_cpu": "2",
         "os": "Linux test", "ram": "25276502016", "version": 1}))
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b"]
    for i, (commit, ms) in enumerate(zip(commits, values_ms)):
        date_ms = (t0 + 3600 * i) * 1000
        doc = {"commit_hash": commit, "env_name": "virtualenv-py3.11", "date": date_ms,
               "params": {"machine": machine, "cpu": f"CPU of {machine}", "python": "3.11"},
               "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": columns,
               "results": {HISTORY_BENCH: [[ms / 1e3], [["'quick'"]], "v1", date_ms, 1.0,
                                           [ms * 0.98 / 1e3], [ms * 1.02 / 1e3]]},
               "durations": {}, "version": 2}
        (asv / machine / f"{commit[:8]}-virtualenv-py3.11.json").write_text(json.dumps(doc))


def _telemetry_records(scale: float) -> list[dict]:
    batches = tuple(
        BatchRecord(batch_index=i, batch_size=min(2 ** i, 512), traversal_ms=(10 + 30 * i) * scale,
                    conflict_graph_ms=0.5 + i * 0.2, mis_ms=0.05, whitened_block_pairs=100 * (i + 1),
                    whitened_block_ms=(6 + 18 * i) * scale, kernel_provider_pairs=100 * (i + 1),
                    kernel_provider_ms=(3 + 10 * i) * scale, conflict_pairwise_reused=1,
                    semisort_ms=0.1, selected=max(1, 2 ** i // (3 if i > 4 else 1)),
                    dominated=i > 4, rounds=1)
        for i in range(12))
    report = BuildReport(metric="residual_correlation", n=4096,
                         phases={name: True for name in PHASE_NAMES},
                         build_wall_ms=sum(b.traversal_ms for b in batches) + 50, batches=batches)
    query = QueryReport(metric="residual_correlation", queries=256, k=50, predecessor_mode=False,
                        query_wall_ms=480.0 * scale, pairs_evaluated=1_000_000,
                        whitened_block_pairs=1_000_000, whitened_block_ms=250.0,
                        kernel_provider_pairs=1_000_000, kernel_provider_ms=200.0, recall=1.0)
    tag = {"preset": "quick", "run": 0}
    return [{**r, **tag} for r in build_records(report)] + [{**query_record(query), **tag}]


# perf/compare.py's decisions as it writes out/gate/compare.json (samples left out).
COMPARE = {"base": COMMITS[1], "head": COMMITS[2], "head_dirty": True, "preset": "quick", "rounds": 6,
           "results_identical": True, "decisions": [
               {"figure": "build_wall_ms", "base_median": 1000.0, "head_median": 1010.0, "ratio": 1.01,
                "ci_low": 0.97, "ci_high": 1.04, "p_value": 0.59, "status": "PASS"},
               {"figure": "query_wall_ms", "base_median": 200.0, "head_median": 2000.0, "ratio": 10.0,
                "ci_low": 9.5, "ci_high": 10.6, "p_value": 0.002, "status": "FAIL"}]}

THRESHOLDS = """\
version = 1
[compare]
min_effect = 1.5
[quick]
presets = ["quick"]
traversal_ms_median_dominated = { op = "<=", audit = 150.0, machine = 850.0, gate = "machine" }
build_wall_ms = { op = "<=", machine = 6000.0, gate = "machine" }
query_wall_ms = { op = "<=", machine = 400.0, gate = "machine" }
recall = { op = ">=", audit = 1.0, gate = "audit" }
peak_rss_mb = { op = "<=", issue = 2500.0, gate = "issue" }
[gold]
presets = ["gold-d3"]
build_wall_ms = { op = "<", issue = 20000.0, gate = "issue" }
"""


def _profile_summary(html_names: dict) -> dict:
    def region(python, numba, blas, other=1.0):
        cats = {"covertreex_python": python, "numba_kernels": numba, "numpy_blas": blas,
                "other": other}
        total = sum(cats.values())
        return {"total_ms": total, "records": 100, "categories_ms": cats,
                "shares": {k: v / total for k, v in cats.items()}, "python_share": python / total,
                "compiled_share": (numba + blas) / total, "python_called_from_kernels_ms": 0.0,
                "top_kernels": [{"kernel": "covertreex.engine.walk_kernels.walk_block_kernel", "ms": numba}],
                "top_lines": [{"where": "covertreex/walk.py:33", "ms": python,
                               "category": "covertreex_python", "text": "bound = visit_tile(...)"}],
                "top_other": []}

    runs = []
    for label, (py, nb) in (("all", (40.0, 900.0)), ("baseline", (400.0, 700.0))):
        runs.append({"phases": label, "phase_flags": {n: label == "all" for n in PHASE_NAMES},
                     "files": {"html": html_names[label], "session": "x.pyisession",
                               "json": "x.json", "speedscope": "x.speedscope.json"},
                     "build_wall_ms": 1000.0, "query_wall_ms": 100.0, "build_summary": _summary(0.2),
                     "query": {"queries": 128, "k": 50},
                     "callouts": {"build": region(py, nb, 30.0), "build_hot": region(py, nb, 30.0),
                                  "query": region(py / 4, nb / 8, 2.0)}})
    kernel = {"kernel": "covertreex.engine.walk_kernels.walk_block_kernel", "module": "covertreex.engine.walk_kernels",
              "name": "walk_block_kernel", "nogil": True, "parallel": False, "inline": "never",
              "signatures": 2, "compiled": True, "ir_source": "dispatcher",
              "sites": {"wrapper": {"numba_unpickle": 2}, "parfor_launch": {"numba_gil_ensure": 4},
                        "error_path": {"numba_gil_ensure": 6}, "hot": {}},
              "hot_sites": [], "clean": True, "ok": True, "error": None}
    hb = {"scenario": "residual_tile[all]", "description": "tile", "kernels": [], "threads": 1,
          "duration_ms": 500.0, "calls": 5, "call_ms_median": 90.0, "call_ms_max": 95.0,
          "beats": 400, "period_ms": 1.0, "max_gap_ms": 6.0, "p99_gap_ms": 5.0,
          "median_gap_ms": 1.1, "switch_interval_ms": 5.0, "limit_ms": 25.0,
          "discriminating": True, "loadavg_1min": 0.5, "released": True}
    tt = {"scenario": "residual_tile[all]", "description": "tile", "kernels": [],
          "units_per_thread": 6, "one_thread_s": 0.6, "two_threads_s": 0.63, "throughput_1": 10.0,
          "throughput_2": 19.0, "speedup": 1.9, "cores": 2, "loadavg_1min": 0.5,
          "machine_busy": False, "errors": [], "released": True}
    return {"schema": "covertreex.profile", "version": 1, "created_unix": time.time(),
            "command": ["covertreex", "profile", "--preset", "quick"],
            "preset": {"name": "quick@n=2048", "base": "quick", "metric": "residual_correlation",
                       "n": 2048, "d": 3, "k": 50, "queries": 128, "inducing": 256,
                       "predecessor_mode": False, "scaled": True},
            "data_ms": 100.0, "environment": ENV, "git_commit": COMMITS[-1], "git_dirty": False,
            "runs": runs,
            "callout_comparison": {"region": "build_hot",
                                   "python_share": {"all": 0.04, "baseline": 0.35}},
            "gil": {"preset": "quick", "n": 4096, "warm_s": 1.0, "modules": [], "module_errors": {},
                    "kernels": [kernel], "llvm_clean": True, "scenario_notes": [],
                    "heartbeat": [hb, {**hb, "scenario": "control_gil", "max_gap_ms": 60.0,
                                       "released": False}],
                    "two_thread": [tt],
                    "py_spy": {"available": True, "skipped": False, "note": "py-spy --gil",
                               "scenario": "residual_tile_kernel", "gil_share": 0.0, "runs": [
                                   {"scenario": "residual_tile_kernel", "samples": 400,
                                    "gil_samples": 0, "gil_share": 0.0, "top_leaf_frames": []},
                                   {"scenario": "control_gil", "samples": 400,
                                    "gil_samples": 400, "gil_share": 1.0, "top_leaf_frames": []}]}}}


def _profile_html(path: Path) -> None:
    """A real pyinstrument page when pyinstrument is installed, else a stand-in that loads
    the same web font (the report must remove it)."""
    try:
        from pyinstrument import Profiler

        from covertreex_bench.profiling.capture import write_session_files

        profiler = Profiler(interval=0.0005)
        profiler.start()
        sum(i * i for i in range(20000))
        session = profiler.stop()
        files = write_session_files(session, path.parent, path.stem)
        # write_session_files already makes it offline; put the font back to test the copy.
        html = (path.parent / files["html"]).read_text(encoding="utf-8")
        path.write_text(html.replace("data:text/css,", "https://fonts.googleapis.com/css?family=X", 1),
                        encoding="utf-8")
    except ImportError:
        path.write_text('<html><head><link rel="stylesheet" '
                        'href="https://fonts.googleapis.com/css?family=Source+Code+Pro"></head>'
                        "<body>profile</body></html>", encoding="utf-8")


def write_fixtures(root: Path, *, regression: bool = True) -> dict:
    """Every input kind under ``root``; returns the build_report keyword arguments."""
    root = Path(root)
    asv = root / "asv_results"
    (asv / "asvbox").mkdir(parents=True)
    (asv / "benchmarks.json").write_text(json.dumps({
        "benchmarks_build.Build.time_build": {"name": "benchmarks_build.Build.time_build",
                                              "type": "time", "unit": "seconds",
                                              "param_names": ["preset"], "params": [["'quick'", "'euclid-32k@n=8192'"]]},
        "benchmarks_build.Build.peakmem_build": {"type": "peakmemory", "unit": "bytes",
                                                 "param_names": ["preset"], "params": [["'quick'", "'euclid-32k@n=8192'"]]},
        "benchmarks_build.Knn.time_knn": {"type": "time", "unit": "seconds", "param_names": ["preset"],
                                          "params": [["'quick'", "'euclid-32k@n=8192'"]]},
        **{f"benchmarks_ladder.PhaseLadder.{m}": {"type": "track", "unit": "ms",
                                                  "param_names": ["preset", "step"],
                                                  "params": [["'quick'"], [repr(s) for s in LADDER]]}
           for m in ("track_traversal_ms", "track_whitened_block_ms", "track_kernel_provider_ms",
                     "track_conflict_graph_ms", "track_build_wall_ms", "track_dominated_traversal_ms",
                     "track_knn_ms")},
        "version": 2}))
    (asv / "asvbox" / "machine.json").write_text(json.dumps(
        {"arch": "x86_64", "cpu": "Test CPU", "machine": "asvbox", "num_cpu": "2", "os": "Linux test",
         "ram": "25276502016", "version": 1}))
    scales = [1.0, 0.8, 1.9 if regression else 0.7]
    t0 = 1_790_000_000
    for i, (commit, scale) in enumerate(zip(COMMITS, scales)):
        (asv / "asvbox" / f"{commit[:8]}-virtualenv-py3.11-numpy2.4.6.json").write_text(
            json.dumps(_asv_result(commit, (t0 + 3600 * i) * 1000, scale)))
    (asv / "asvbox" / "broken-env.json").write_text("{not json")
    # A telemetry history with a step at its fourth commit, for the change-point table.
    write_history(asv, "asvbox", [f"{i:x}e" * 20 for i in range(7)], [100, 101, 99, 131, 130, 132, 131])

    bench = root / "bench"
    gate = root / "gate"
    bench.mkdir()
    gate.mkdir()
    verdicts = [{"table": "quick", "figure": "build_wall_ms", "value": 9500.0, "op": "<=",
                 "limit": 6000.0, "gate": "machine", "limits": {"machine": 6000.0}, "status": "FAIL",
                 "note": ""}]
    for i, (commit, scale) in enumerate(zip(COMMITS, scales)):
        doc = _bench_result("quick", scale, verdicts=verdicts if i == 2 and regression else [])
        doc.update({"environment": ENV, "git_commit": commit, "git_dirty": False,
                    "created_unix": t0 + 3600 * i + 60})
        (gate / f"quick-{i}.json").write_text(json.dumps(doc))
    ladder = {"schema": "covertreex_bench.bench", "version": 1, "ladder": True, "preset": "quick",
              "base_preset": "quick", "metric": "residual_correlation", "n": 4096,
              "steps": [_bench_result("quick", 1.0 - 0.09 * i, step=label) for i, label in enumerate(LADDER)],
              "environment": ENV, "git_commit": COMMITS[-1], "git_dirty": True,
              "created_unix": t0 + 3600 * 3}
    (bench / "quick-ladder.json").write_text(json.dumps(ladder))
    for i, name in enumerate(("vecchia-d3@n=8192", "vecchia-d3")):  # the scaling section's
        (bench / f"{name}.json").write_text(json.dumps({**_bench_result(name, 4.0 ** i), "environment": ENV,
                                                        "git_commit": COMMITS[-1], "created_unix": t0 + i}))
    (gate / "pytest-benchmark.json").write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    (gate / "compare.json").write_text(json.dumps(COMPARE))
    write_jsonl(bench / "quick.jsonl", _telemetry_records(1.0))
    (bench / "broken.jsonl").write_text('{"schema": "covertreex.telemetry", "version": 99}\n')

    thresholds = root / "thresholds.toml"
    thresholds.write_text(THRESHOLDS)

    prof = root / "profiles" / "quick"
    prof.mkdir(parents=True)
    names = {"all": "quick-all.html", "baseline": "quick-baseline.html"}
    for name in names.values():
        _profile_html(prof / name)
    (prof / "summary.json").write_text(json.dumps(_profile_summary(names)))
    return {"asv": asv, "gate": [gate], "bench": [bench], "logs": [bench, gate],
            "profiles": root / "profiles", "thresholds": thresholds}


class Sections(HTMLParser):
    """Elements carrying data-section: {id: {"tag", "empty", "text", "svg_shapes", "rows"}}."""

    def __init__(self):
        super().__init__()
        self.found = {}
        self.stack = []
        self.duplicates = []
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href", "action", "data", "poster", "srcset", "xlink:href"):
            if a.get(key):
                self.urls.append((tag, key, a[key]))
        sec = a.get("data-section")
        if sec:
            if sec in self.found:
                self.duplicates.append(sec)
            self.found[sec] = {"tag": tag, "empty": a.get("data-empty") == "true", "text": "",
                               "svg_shapes": 0, "rows": 0, "svg": 0}
            self.stack.append([tag, sec, 0])
        elif self.stack:
            if tag == self.stack[-1][0]:
                self.stack[-1][2] += 1
            info = self.found[self.stack[-1][1]]
            if tag == "svg":
                info["svg"] += 1
            if tag in ("polyline", "circle", "rect", "line"):
                info["svg_shapes"] += 1
            if tag == "tr":
                info["rows"] += 1

    def handle_endtag(self, tag):
        if self.stack and tag == self.stack[-1][0]:
            if self.stack[-1][2]:
                self.stack[-1][2] -= 1
            else:
                self.stack.pop()

    def handle_data(self, data):
        if self.stack:
            self.found[self.stack[-1][1]]["text"] += data


def parse_sections(html: str) -> Sections:
    p = Sections()
    p.feed(html)
    return p


EXTERNAL = re.compile(r"""(?:https?:)?//[A-Za-z0-9]|@import|url\(\s*['"]?(?!data:|#)""", re.I)


def assert_self_contained(html: str) -> None:
    p = parse_sections(html)
    for tag, key, url in p.urls:
        assert not re.match(r"^\s*(https?:|//|ftp:)", url, re.I), f"external {key} on <{tag}>: {url}"
    assert "http://" not in html and "https://" not in html, "an absolute URL is in the page"
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "<iframe" not in html.lower()


# --------------------------------------------------------------------------- tests


@pytest.fixture()
def fixtures(tmp_path):
    return write_fixtures(tmp_path / "in")


def test_report_from_synthetic_inputs(tmp_path, fixtures):
    index = build_report(tmp_path / "out", **fixtures)
    html = index.read_text(encoding="utf-8")
    p = parse_sections(html)
    assert not p.duplicates
    for section, kind in SECTIONS:
        assert section in p.found, f"missing {section}"
        info = p.found[section]
        assert not info["empty"], f"{section} is empty: {info['text'][:200]}"
        if kind == "chart":
            assert info["svg"] == 1 and info["svg_shapes"] > 3, section
        else:
            assert info["tag"] == "table" and info["rows"] >= 2, section
    # The deliberate regression (third commit 1.9x the second) is red in the regression table.
    reg = html[html.index('data-section="regression-table"'):]
    reg = reg[:reg.index("</table>")]
    assert re.search(r'<td class="bad"[^>]*>×2\.38</td>', reg), "1.9/0.8 regression not flagged"
    # Verdicts: thresholds judged, the JSON's FAIL kept, a preset without runs says so.
    ver = p.found["verdicts-table"]["text"]
    assert "FAIL" in ver and "PASS" in ver and "NO DATA" in ver
    # Threshold lines drawn on the dominated-traversal chart, from thresholds.toml.
    dom = html[html.index('data-section="trend-dominated_traversal_ms"'):]
    assert "quick: machine &lt;= 850.0 (gate)" in dom[:dom.index("</figure>")]
    # The ladder comes from the bench ladder JSON, 8 steps.
    assert p.found["ladder-table"]["rows"] == 1 + len(LADDER)
    # Profiles copied next to the page, linked relatively, web font removed.
    links = [u for t, k, u in p.urls if k == "href" and u.startswith("profiles/")]
    assert len(links) == 2
    for href in links:
        copied = (index.parent / href).read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in copied
    # Environments: the asv machine and the bench host are both named.
    env = p.found["environment-table"]["text"]
    assert "asvbox" in env and "testbox" in env
    # Broken inputs are listed, not fatal.
    inputs_text = p.found["inputs-table"]["text"]
    assert "broken-env.json" in inputs_text and "broken.jsonl" in inputs_text
    assert "pytest-benchmark.json" in inputs_text
    assert_self_contained(html)


def test_report_from_empty_inputs(tmp_path):
    missing = tmp_path / "nothing"
    index = build_report(tmp_path / "out", asv=missing / "asv", gate=[missing / "gate"],
                         bench=[missing / "bench"], logs=[missing / "logs"],
                         profiles=missing / "profiles", thresholds=missing / "thresholds.toml")
    html = index.read_text(encoding="utf-8")
    p = parse_sections(html)
    for section, _ in SECTIONS:
        assert section in p.found, f"missing {section}"
        if section != "inputs-table":
            assert p.found[section]["empty"], section
            assert p.found[section]["text"].strip(), f"{section} says nothing"
    assert "no asv results folder" in html
    assert_self_contained(html)


def test_report_with_no_arguments_at_all(tmp_path):
    index = build_report(tmp_path / "out")
    p = parse_sections(index.read_text(encoding="utf-8"))
    assert all(s in p.found for s, _ in SECTIONS)


def test_report_without_thresholds_file(tmp_path, fixtures):
    fixtures["thresholds"] = tmp_path / "absent.toml"
    html = build_report(tmp_path / "out", **fixtures).read_text(encoding="utf-8")
    assert "No threshold of the thresholds file applies" in html
    assert "(gate)" not in html.split('data-section="ladder-chart"')[0]
    # The JSON verdict is still shown without the thresholds file.
    assert "FAIL" in parse_sections(html).found["verdicts-table"]["text"]


def test_base_commit_and_no_regression(tmp_path):
    fx = write_fixtures(tmp_path / "in", regression=False)
    html = build_report(tmp_path / "out", base=COMMITS[1][:8], **fx).read_text(encoding="utf-8")
    reg = html[html.index('data-section="regression-table"'):]
    reg = reg[:reg.index("</table>")]
    assert f"@ {COMMITS[1][:8]}" in reg
    assert 'class="bad"' not in reg


def test_report_cli(tmp_path, fixtures, capsys):
    from covertreex_bench import cli, report_cli

    out = tmp_path / "site"
    argv = ["--out", str(out), "--asv", str(fixtures["asv"]), "--gate", str(fixtures["gate"][0]),
            "--bench", str(fixtures["bench"][0]), "--profiles", str(fixtures["profiles"]),
            "--thresholds", str(fixtures["thresholds"]), "--quiet"]
    assert report_cli.main(argv) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str((out / "index.html").resolve())
    assert (out / "index.html").is_file()
    # Through the `covertreex report` subcommand, with the packaged thresholds file.
    other = tmp_path / "other"
    assert cli.main(["report", "--out", str(other),
                     "--bench", str(fixtures["bench"][0]), "--gate", str(fixtures["gate"][0]),
                     "--quiet"]) == 0
    html = (other / "index.html").read_text(encoding="utf-8")
    assert "thresholds.toml" in parse_sections(html).found["inputs-table"]["text"]


def _report_error(capsys, argv, *fragments):
    """The report CLI exits 2 at once with one error line holding every fragment."""
    from covertreex_bench import report_cli

    start = time.perf_counter()
    assert report_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("covertreex report: error:"), err
    for fragment in fragments:
        assert fragment in err, err
    assert time.perf_counter() - start < 5


def test_report_cli_bad_requests_exit_2_naming_the_fix(tmp_path, fixtures, capsys):
    site = tmp_path / "site"
    bench = ["--bench", str(fixtures["bench"][0]), "--quiet"]
    _report_error(capsys, ["--out", str(site), "--asv", "/nonexistent", *bench],
                  "--asv /nonexistent: no such folder", "make asv")
    _report_error(capsys, ["--out", str(site), "--base", "deadbeef", *bench],
                  "--base deadbeef: not a commit", "git log --oneline")
    bad = tmp_path / "bad.toml"
    bad.write_text('[quick]\npresets = ["quick"]\n[quick.recall]\naudit = 1.0\n')
    _report_error(capsys, ["--out", str(site), "--thresholds", str(bad), *bench],
                  str(bad), "op must be one of")
    bad.write_text('[quick]\npresets = ["quick"]\n[quick.recal]\nop = ">="\naudit = 1.0\n')
    _report_error(capsys, ["--out", str(site), "--thresholds", str(bad), *bench],
                  "unknown figure 'recal'", "known figures:")
    _report_error(capsys, ["--out", str(site), "--thresholds", str(tmp_path / "none.toml"), *bench],
                  "does not exist")
    _report_error(capsys, ["--out", "/proc/site", *bench], "--out path /proc/site/index.html cannot be written")
    _report_error(capsys, ["--out", str(site), "--gate", str(tmp_path / "none.json"), *bench],
                  "--gate", "no such file or folder")
    assert not site.exists()


def test_add_arguments_interface():
    import argparse

    from covertreex_bench import report_cli
    from covertreex_bench.profiling import cli as profile_cli

    for module in (report_cli, profile_cli):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert callable(module.main)
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    args = parser.parse_args(["--out", "x"])
    assert args.out == "x" and args.asv is None and args.thresholds is None


def _git(repo, *args, env=None):
    import subprocess

    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_two_machines_never_meet_and_a_planted_step_names_its_commit(tmp_path, monkeypatch):
    """Histories of two machines in one report: no series, ratio or step mixes them, and the
    step planted in one machine's history is attributed to its commit, date and subject."""
    import os

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    commits = []
    for i in range(8):
        (repo / "f.txt").write_text(str(i))
        _git(repo, "add", "f.txt")
        date = f"2026-11-{10 + i:02d}T12:00:00+00:00"
        env = dict(os.environ, GIT_COMMITTER_DATE=date, GIT_AUTHOR_DATE=date)
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"change number {i}", env=env)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    asv = tmp_path / "asv"
    # Machine boxA: a 1.5x step at commit 5. Machine boxB: flat, at three times the level,
    # so a line or ratio joining the machines would show a step of its own.
    write_history(asv, "boxA", commits, [100, 102, 99, 101, 100, 150, 151, 149])
    write_history(asv, "boxB", commits, [300, 303, 298, 301, 299, 302, 300, 301])
    monkeypatch.chdir(repo)
    html = build_report(tmp_path / "out", asv=asv).read_text(encoding="utf-8")
    found = parse_sections(html).found

    steps = found["steps-table"]
    assert not steps["empty"] and steps["rows"] == 2, steps["text"]  # header + one change
    text = steps["text"]
    assert "boxA" in text and "boxB" not in text
    assert commits[5][:8] in text and "2026-11-15T12:00:00+00:00" in text and "change number 5" in text
    ratio = re.search(r"×(\d\.\d+) \((\d\.\d+)-(\d\.\d+)\)", text)
    assert ratio and abs(float(ratio.group(1)) - 1.5) < 0.03, text
    assert float(ratio.group(2)) > 1.4 and float(ratio.group(3)) < 1.6
    assert text.endswith("slower"), text  # the verdict cell, not the caption

    reg = html[html.index('data-section="regression-table"'):]
    reg = reg[:reg.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", reg, re.S)[1:]
    assert len(rows) == 2
    for row in rows:
        machine = "boxA" if "boxA E" in row else "boxB"
        other = {"boxA": "boxB", "boxB": "boxA"}[machine]
        assert other not in row, row
        assert "×3" not in row and "×0.3" not in row, row  # no ratio across the machines
    trend = html[html.index('data-section="trend-traversal_ms"'):]
    trend = trend[:trend.index("</figure>")]
    assert trend.count("<polyline") == 2  # one line per machine, never one through both
