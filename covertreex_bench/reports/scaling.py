"""Report section over problem size: the Vecchia family's scaling curve, one chart per machine.

The family is every bench / gate result whose workload is vecchia-d3's except for n (same
metric, d, k, inducing points and predecessor mode: vecchia-d3, vecchia-65k, vecchia-131k and
scaled copies such as ``vecchia-d3@n=8192``), with all phases on. Per machine the newest
result of each n is drawn, n against seconds on log-log axes: ours (build + queries, and the
queries alone) and the float64 brute force, whose point is a ring where its time is an
estimate scaled up from sampled blocks (``reference_sampling``). Results of two machines
never share a chart or a line.
"""

from __future__ import annotations

import math

import pandas as pd

from . import svg
from .environments import Environments, bench_env
from .html import cell, chart_block, empty_group, fmt, short, table
from .loaders import CONFIG_KEYS, Inputs

SECTIONS = (("scaling-chart", "chart"), ("scaling-table", "table"))
FAMILY = "vecchia-d3"
OURS, QUERIES = "ours: build + queries", "ours: queries alone"
BRUTE = "float64 brute force (ring: scaled up from sampled blocks)"
QUERY_HEADERS = ["pairs / row (× brute)", "GEMM share", "blocked / single", "peak RSS MB"]


def _config(name: str) -> dict | None:
    """{CONFIG_KEYS: value} of the named preset (None for an unknown name)."""
    from ..results import preset_fields
    from ..workloads import get_preset

    try:
        fields = preset_fields(get_preset(name))
    except ValueError:
        return None
    return {k: fields[k] for k in CONFIG_KEYS}


def family_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest all-phases run of each (machine, n) in FAMILY's workload family, sorted by
    machine and n; a result without a config field takes its base preset's value."""
    if runs.empty or "config" not in runs:
        return runs.iloc[0:0]
    family = _config(FAMILY)

    def member(r) -> bool:
        base = _config(str(r["base_preset"])) or {}
        config = {k: v if v is not None else base.get(k) for k, v in (r["config"] or {}).items()}
        return config == family and not r["ladder"] and r["phases_label"] in ("all", None)

    n = pd.to_numeric(runs["n"], errors="coerce")
    sel = runs[runs.apply(member, axis=1) & (n > 0)]
    if sel.empty:
        return sel
    sel = sel.assign(machine=sel["machine"].fillna("unknown"), n=n[sel.index].astype(int))
    sel = sel.sort_values("created", na_position="first").groupby(["machine", "n"]).tail(1)
    return sel.sort_values(["machine", "n"])


def seconds(figures: dict) -> dict:
    """{"build", "queries", "total", "reference"}: seconds of a flattened result (None where
    missing); total is build_query_ms, else build + queries."""
    def s(key):
        v = figures.get(key)
        return v / 1e3 if isinstance(v, (int, float)) and math.isfinite(v) else None

    build, queries = s("build_wall_ms"), s("query_wall_ms")
    total = s("build_query_ms")
    if total is None and build is not None and queries is not None:
        total = build + queries
    return {"build": build, "queries": queries, "total": total, "reference": s("reference_ms")}


def query_cells(figures: dict) -> list:
    """Table cells of the query-phase figures of a flattened result (``QUERY_HEADERS``):
    pairs per row with its ratio to the brute force's, the tiles' share of DGEMM throughput,
    blocked over single-row pairs per row, peak RSS; "–" where a result lacks one."""
    q = {k.partition(".")[2]: v for k, v in figures.items() if k.startswith("query.")}
    pairs, over = q.get("pairs_per_row"), q.get("pairs_over_brute")
    pairs_text = "–" if pairs is None else fmt(pairs) + (f" (×{over:.3g})" if over is not None else "")
    brute = q.get("brute_pairs_per_row")
    share = q.get("gemm_share")
    rates = [f"{name} {fmt(q[key])} GFLOP/s" for name, key in
             (("tiles", "tile_gflops"), ("DGEMM", "dgemm_gflops")) if q.get(key) is not None]
    blocked = q.get("blocked_over_single")
    single = q.get("single_row_pairs_per_row")
    return [cell(pairs_text, "", f"brute force: {fmt(brute)} pairs per row" if brute is not None else ""),
            cell("–" if share is None else f"{100 * share:.0f} %", "", ", ".join(rates)),
            cell("–" if blocked is None else f"×{blocked:.3g}", "",
                 f"single-row walk: {fmt(single)} pairs per row on {fmt(q.get('single_row_sample'))} rows"
                 if single is not None else ""),
            figures.get("peak_rss_mb")]


def _reference_cell(value, sampling) -> tuple:
    if value is None:
        return cell("–")
    if not isinstance(sampling, dict):
        return cell(fmt(value))
    return cell(f"{fmt(value)} (sampled)", "skip",
                f"scaled up from {sampling.get('blocks_timed')} of {sampling.get('blocks_total')} "
                f"blocks (every {sampling.get('every')}), timed {fmt(sampling.get('timed_ms'))} ms, "
                f"{sampling.get('rows_checked')} rows checked")


def _chart(machine: str, g: pd.DataFrame) -> str:
    ours, queries, brute = [], [], []
    for r in g.itertuples():
        s = seconds(r.figures)
        where = f"{machine} · {r.preset} · n={r.n:,} · {short(r.commit)}{'*' if r.dirty else ''}"
        sampled = isinstance(r.reference_sampling, dict)
        for points, key, what, hollow in ((ours, "total", "build + queries", False),
                                          (queries, "queries", "queries", False),
                                          (brute, "reference", "brute force" + (
                                              " (scaled estimate)" if sampled else ""), sampled)):
            if s[key] is not None:
                points.append((r.n, s[key], f"{where}\n{what}: {fmt(s[key])} s", hollow))
    series = [{"name": OURS, "points": ours}, {"name": QUERIES, "points": queries, "dashed": True},
              {"name": BRUTE, "points": brute}]
    return svg.loglog_chart(series, title=f"{machine}: {FAMILY} family, time against n",
                            x_label="n (points)", y_label="seconds",
                            section=f"scaling-chart:{machine}")


def section_scaling(inputs: Inputs, envs: Environments) -> str:
    fam = family_runs(inputs.runs)
    if fam.empty:
        return empty_group(list(SECTIONS), f"No bench / gate results of the {FAMILY} family "
                           f"({FAMILY}'s workload at any n): run `covertreex bench --preset "
                           "vecchia-d3 --check --json out/bench/vecchia-d3.json`, and the same "
                           "for vecchia-65k and vecchia-131k.")
    charts, rows = [], []
    for machine, g in fam.groupby("machine", sort=True):
        charts.append(_chart(machine, g))
        for _, r in g.iterrows():
            s, f = seconds(r["figures"]), r["figures"]
            rows.append([f"{machine} ({bench_env(envs, r)})", r["n"], r["preset"],
                         short(r["commit"]) + ("*" if r["dirty"] else ""), s["build"], s["queries"],
                         s["total"], _reference_cell(s["reference"], r["reference_sampling"]),
                         f.get("build_query_over_reference"), *query_cells(f)])
    note = ("Per machine, the newest result of each n. Ours: build + queries (solid) and the "
            "queries alone (dashed); brute force: covertreex.reference on the same queries, a "
            "ring where its time is scaled up from sampled blocks. Hover a point for its run.")
    return chart_block("scaling-chart", "".join(charts), note) + table(
        "scaling-table", ["machine (env)", "n", "preset", "commit", "build s", "queries s",
                          "total s", "reference s", "total / reference", *QUERY_HEADERS], rows,
        caption=f"The {FAMILY} family per machine and n (newest result each); hover a cell for "
                "its detail.")
