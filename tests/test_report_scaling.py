"""The report's scaling section (issue 14): the Vecchia family's log-log curve per machine, its
table with the query-phase figures, and the query-phase trend figures.

``write_family`` writes bench results of two machines in the format ``covertreex bench --json``
writes, including results that must be left out (other workloads, older runs, partial phases)
and one that lacks the newer keys.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from covertreex_bench import thresholds as thresholds_file
from covertreex_bench.reports import build_report
from covertreex_bench.reports.scaling import BRUTE, OURS, QUERIES, query_cells
from covertreex_bench.reports.svg import power_ticks
from covertreex_bench.results import preset_fields
from covertreex_bench.workloads import get_preset, scaled
from test_report import ENV, assert_self_contained, parse_sections

NAMED = {32768: "vecchia-d3", 65536: "vecchia-65k", 131072: "vecchia-131k"}
SAMPLING = {"every": 16, "blocks_timed": 4, "blocks_total": 64, "rows_checked": 2048, "timed_ms": 9000.0}
# (machine, n, build s, queries s, reference s, sampled); boxB is ten times slower, so a line
# joining the machines would show it. 20000 is the planted n between two powers of 2.
RUNS = [("boxA", 8192, 0.5, 1.5, 2.0, False), ("boxA", 20000, 1.0, 5.0, 9.0, False),
        ("boxA", 32768, 2.0, 12.0, 16.0, False), ("boxA", 65536, 4.0, 45.0, 64.0, True),
        ("boxA", 131072, 9.0, 170.0, 260.0, True),
        ("boxB", 8192, 5.0, 15.0, 20.0, False), ("boxB", 32768, 20.0, 120.0, 160.0, False)]
QUERY = {"pairs_per_row": 1234.5, "brute_pairs_per_row": 65536.0, "pairs_over_brute": 0.01884,
         "tile_ms": 800.0, "tile_gflops": 41.0, "dgemm_gflops": 50.0, "gemm_share": 0.82,
         "single_row_pairs_per_row": 1000.0, "single_row_sample": 256, "blocked_over_single": 1.2345}


def vecchia_result(n, machine, created, build_s, query_s, ref_s, sampled=False, **extra) -> dict:
    p = get_preset(NAMED[n]) if n in NAMED else scaled("vecchia-d3", n)
    build, query, ref = build_s * 1e3, query_s * 1e3, ref_s * 1e3
    return {"schema": "covertreex_bench.bench", "version": 1, **preset_fields(p), "scaled": n not in NAMED,
            "phases_label": "all", "build_wall_ms": build, "query_wall_ms": query, "reference_ms": ref,
            "reference_sampling": SAMPLING if sampled else None, "peak_rss_mb": n / 64,
            "query": dict(QUERY), "derived": {"build_query_ms": build + query,
                                              "build_query_over_reference": (build + query) / ref},
            "environment": {**ENV, "hostname": machine}, "git_commit": "d4" * 20, "git_dirty": False,
            "created_unix": created, **extra}


def write_family(root: Path) -> Path:
    """Bench JSON of RUNS under root/bench, plus results the scaling section must leave out."""
    bench = root / "bench"
    bench.mkdir(parents=True)

    def put(name, doc):
        (bench / f"{name}.json").write_text(json.dumps(doc))

    for i, (machine, n, *times) in enumerate(RUNS):
        put(f"{machine}-{n}", vecchia_result(n, machine, 2000 + i, *times))
    # An older run of boxA at 32768 (replaced by the newer one), a baseline-phases run, a
    # Euclidean run and a predecessor-free run of the same size: none is drawn.
    put("old", vecchia_result(32768, "boxA", 1000, 99.0, 99.0, 99.0))
    put("baseline", vecchia_result(32768, "boxA", 3000, 77.0, 77.0, 77.0, phases_label="baseline"))
    put("euclid", {**vecchia_result(32768, "boxA", 3000, 55.0, 55.0, 55.0), **preset_fields(get_preset("euclid-32k"))})
    put("gold", {**vecchia_result(32768, "boxA", 3000, 66.0, 66.0, 66.0), **preset_fields(get_preset("gold-d3"))})
    return bench


def _svg(html: str, machine: str) -> str:
    start = html.index(f'data-chart="scaling-chart:{machine}"')
    return html[start:html.index("</svg>", start)]


def _points(svg_text: str) -> list[dict]:
    """The circles of a chart: {"cx", "cy", "x", "y", "hollow", "tip"}."""
    found = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="4" fill="([^"]+)"[^>]*'
                       r'data-x="([^"]+)" data-y="([^"]+)"><title>([^<]*)</title>', svg_text)
    return [{"cx": float(cx), "cy": float(cy), "hollow": fill == "#fff", "x": float(x), "y": float(y),
             "tip": tip} for cx, cy, fill, x, y, tip in found]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("scaling")
    bench = write_family(root)
    return build_report(root / "out", bench=[bench]).read_text(encoding="utf-8")


def test_one_chart_per_machine_and_no_line_joins_machines(report):
    found = parse_sections(report).found
    assert not found["scaling-chart"]["empty"] and found["scaling-chart"]["svg"] == 2
    for machine, other in (("boxA", "boxB"), ("boxB", "boxA")):
        chart = _svg(report, machine)
        assert other not in chart
        sizes = sorted({n for m, n, *_ in RUNS if m == machine})
        for poly in re.findall(r'<polyline points="([^"]+)"', chart):
            assert len(poly.split()) == len(sizes)  # one vertex per n of this machine only
        ours = [p for p in _points(chart) if "build + queries" in p["tip"]]
        assert sorted(p["x"] for p in ours) == sizes
        expected = {n: b + q for m, n, b, q, *_ in RUNS if m == machine}
        assert {p["x"]: p["y"] for p in ours} == pytest.approx(expected)  # the newest run of each n
    assert OURS in report and QUERIES in report and BRUTE in report
    assert_self_contained(report)


def test_planted_n_sits_at_its_log_coordinates(report):
    ours = {p["x"]: p for p in _points(_svg(report, "boxA")) if "build + queries" in p["tip"]}
    a, planted, b = ours[8192], ours[20000], ours[32768]
    # x: a fraction log(20000/8192) / log(4) of the way from 8192 to 32768.
    assert (planted["cx"] - a["cx"]) / (b["cx"] - a["cx"]) == pytest.approx(
        math.log(20000 / 8192) / math.log(4), abs=2e-3)
    # y: up by log(6/2) over log(14/2) of the way to 32768's (seconds grow upwards).
    assert (a["cy"] - planted["cy"]) / (a["cy"] - b["cy"]) == pytest.approx(
        math.log(6 / 2) / math.log(14 / 2), abs=2e-3)
    # Equal ratios of n are equal distances: 8192 -> 32768 -> 131072.
    assert b["cx"] - a["cx"] == pytest.approx(ours[131072]["cx"] - b["cx"], abs=0.2)
    ticks = [int(t.replace(",", "")) for t in re.findall(r'class="xt0">([\d,]+)</text>', _svg(report, "boxA"))]
    assert ticks == [2 ** e for e in range(13, 18)]


def test_sampled_reference_is_a_ring_and_says_so(report):
    brute = [p for p in _points(_svg(report, "boxA")) if "brute force" in p["tip"]]
    assert {p["x"] for p in brute if p["hollow"]} == {65536, 131072}
    assert all("scaled estimate" in p["tip"] for p in brute if p["hollow"])
    assert not any(p["hollow"] for p in _points(_svg(report, "boxB")))
    rows = _table_rows(report)
    assert "(sampled)" in rows[("boxA", "131,072")] and "(sampled)" not in rows[("boxA", "32,768")]
    assert 'title="scaled up from 4 of 64 blocks (every 16)' in rows[("boxA", "65,536")]


def _table_rows(html: str) -> dict:
    """{(machine, n text): row html} of the scaling table."""
    table = html[html.index('data-section="scaling-table"'):]
    table = table[:table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        rows[(cells[0].split(" ")[0], cells[1])] = row
    return rows


def test_query_figure_cells():
    figures = {f"query.{k}": v for k, v in QUERY.items()} | {"peak_rss_mb": 2048.5}
    cells = query_cells(figures)
    assert [c[0] for c in cells[:3]] == ["1234.5 (×0.0188)", "82 %", "×1.23"]
    assert cells[1][2] == "tiles 41 GFLOP/s, DGEMM 50 GFLOP/s"
    assert "256 rows" in cells[2][2] and cells[3] == 2048.5
    assert [c[0] for c in query_cells({})[:3]] == ["–", "–", "–"] and query_cells({})[3] is None


def test_results_without_the_new_keys_are_drawn_and_tabled(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    old = vecchia_result(65536, "boxC", 1, 4.0, 40.0, 60.0)
    for key in ("query", "peak_rss_mb", "reference_sampling", "derived", "reference_ms", "d", "k",
                "inducing", "predecessor_mode"):
        old.pop(key)
    (bench / "old.json").write_text(json.dumps(old))
    (bench / "new.json").write_text(json.dumps(vecchia_result(131072, "boxC", 2, 9.0, 170.0, 260.0)))
    html = build_report(tmp_path / "out", bench=[bench]).read_text(encoding="utf-8")
    points = _points(_svg(html, "boxC"))
    ours = {p["x"]: p["y"] for p in points if "build + queries" in p["tip"]}
    assert ours == pytest.approx({65536: 44.0, 131072: 179.0})  # build + queries without derived
    assert {p["x"] for p in points if "brute force" in p["tip"]} == {131072}
    row = _table_rows(html)[("boxC", "65,536")]
    assert row.count("<td>–</td>") == 6  # reference, ratio and the four query cells
    # The trend charts of the query figures hold the newer result's values.
    trend = html[html.index('data-section="trend-gemm_share"'):]
    assert "0.82 share" in trend[:trend.index("</figure>")]


def test_power_ticks():
    assert power_ticks(8192, 131072, base=2) == [2.0 ** e for e in range(13, 18)]
    assert power_ticks(0.5, 400) == [0.1, 1.0, 10.0, 100.0, 1000.0]
    assert power_ticks(2.5, 6.0) == [2.0, 4.0, 8.0]           # too few powers of 10: powers of 2
    assert power_ticks(32768, 32768, base=2) == [16384.0, 32768.0, 65536.0]
    assert len(power_ticks(1, 2 ** 40, base=2)) <= 12


def test_asv_tile_over_dgemm_is_drawn_as_the_gemm_share(tmp_path):
    """asv tracks the share's inverse (lower is better there); the trend shows the share, and
    a skipped value (n/a) draws no series."""
    asv, name = tmp_path / "asv", "benchmarks_vecchia.VecchiaQuery.track_tile_over_dgemm"
    (asv / "box").mkdir(parents=True)
    (asv / "benchmarks.json").write_text(json.dumps({name: {
        "type": "track", "unit": "x DGEMM time", "param_names": ["preset"],
        "params": [["'vecchia-65k'", "'vecchia-131k'"]]}, "version": 2}))
    (asv / "box" / "e5e5e5e5-env.json").write_text(json.dumps({
        "commit_hash": "e5" * 20, "env_name": "env", "date": 1_790_000_000_000, "params": {"machine": "box"},
        "result_columns": ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
                           "stats_ci_99_b"],
        "results": {name: [[1.25, None], [["'vecchia-65k'", "'vecchia-131k'"]], "v1", 0, 1.0,
                           [1.0, None], [1.6, None]]}, "version": 2}))
    html = build_report(tmp_path / "out", asv=asv).read_text(encoding="utf-8")
    trend = html[html.index('data-section="trend-gemm_share"'):]
    trend = trend[:trend.index("</figure>")]
    assert "0.8 share" in trend and "x DGEMM" not in trend and "vecchia-131k" not in trend


def test_a_stretch_goal_judged_by_the_report_is_a_goal_not_a_failure(tmp_path):
    """vecchia-d3's 0.5 ratio is a stretch goal in the packaged thresholds file: a result
    without verdicts that misses it shows GOAL (not met), never FAIL."""
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "v.json").write_text(json.dumps(vecchia_result(32768, "boxA", 1, 2.0, 12.0, 16.0)))
    html = build_report(tmp_path / "out", bench=[bench],
                        thresholds=thresholds_file.default_path()).read_text(encoding="utf-8")
    text = parse_sections(html).found["verdicts-table"]["text"]
    start = text.index("vecchia-d3build_query_over_reference")  # cells run together in text
    row = text[start:text.index("(the JSON holds no verdict)", start)]
    assert "GOAL" in row and "not met" in row and "FAIL" not in row, row
