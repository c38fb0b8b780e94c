"""The report's readings of the gate and of the thresholds file's memory limit, on the synthetic
inputs of tests/test_report.py: the gate's decisions (``compare.json`` of perf/compare.py) in
their own table, and the ``peak_rss_mb`` limit, in MB, drawn on the MiB memory trend."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import COMPARE, parse_sections, write_fixtures  # noqa: E402

from covertreex_bench.reports import build_report  # noqa: E402


def _page(tmp_path, fixtures=None, out="out") -> str:
    fixtures = fixtures or write_fixtures(tmp_path / "in")
    return build_report(tmp_path / out, **fixtures).read_text(encoding="utf-8")


def _section(html: str, name: str, end: str) -> str:
    part = html[html.index(f'data-section="{name}"'):]
    return part[:part.index(end)]


def test_gate_decisions_get_one_row_a_figure_and_a_slowdown_is_red(tmp_path):
    html = _page(tmp_path)
    assert parse_sections(html).found["gate-table"]["rows"] == 1 + len(COMPARE["decisions"])
    gate = _section(html, "gate-table", "</table>")
    # The planted 10x slowdown: its medians, ratio and interval, and a red FAIL.
    assert re.search(r"query_wall_ms</td><td>200\.0</td><td>2,?000\.0</td><td>10(\.0)?</td>"
                     r"<td>9\.5-10\.6</td>", gate), gate
    assert '<td class="fail">FAIL</td>' in gate and '<td class="pass">PASS</td>' in gate
    assert "c3c3c3c3 (dirty)" in gate


def test_the_memory_limit_in_mb_is_drawn_at_its_mib_value(tmp_path):
    mem = _section(_page(tmp_path), "trend-peak_memory_mib", "</figure>")
    assert "quick: issue &lt;= 2500.0 MB = 2384.2 MiB (gate)" in mem


def test_the_rounds_name_the_processes_they_were_spread_over(tmp_path):
    fixtures = write_fixtures(tmp_path / "in")
    # A compare.json from before the gate had processes: the rounds alone.
    assert "<td>6</td>" in _section(_page(tmp_path, fixtures, "old"), "gate-table", "</table>")
    (path,) = (tmp_path / "in").rglob("compare.json")
    path.write_text(json.dumps({**COMPARE, "processes": 3}))
    gate = _section(_page(tmp_path, fixtures), "gate-table", "</table>")
    assert "<td>6 in 3 processes a side</td>" in gate
