"""Report sections over commits: the trend charts, the phase ladder and the regression table."""

from __future__ import annotations

import math
from html import escape

import pandas as pd

from ..common import LADDER_FIGURES
from . import svg
from .environments import Environments, asv_env, bench_env
from .html import cell, chart_block, empty_block, empty_group, fmt, short, table
from .loaders import FIGURES, STEP_PARAMS, Inputs, git_commit_times, threshold_entries

SECTIONS = (
    *[(f"trend-{f.key}", "chart") for f in FIGURES],
    ("ladder-chart", "chart"),
    ("ladder-table", "table"),
    ("regression-table", "table"),
)
# asv ladder benchmarks -> ladder columns: benchmarks_telemetry's time_* (seconds, shown in ms)
# and the track_* (ms) of results from before it.
_LADDER_FIGURES = {"build_wall_ms": "build_wall_ms", "traversal_ms": "traversal_ms_sum",
                   "whitened_block_ms": "whitened_block_ms_sum",
                   "kernel_provider_ms": "kernel_provider_ms_sum",
                   "conflict_graph_ms": "conflict_graph_ms_sum"}
ASV_LADDER = {**{f"time_{k}": v for k, v in _LADDER_FIGURES.items()}, "time_query_wall_ms": "query_wall_ms",
              **{f"track_{k}": v for k, v in _LADDER_FIGURES.items()}, "track_knn_ms": "query_wall_ms"}


def trend_points(inputs: Inputs, envs: Environments) -> pd.DataFrame:
    rows = []
    asv_env_ids = {e["file"]: asv_env(envs, e) for e in inputs.asv_envs}
    if not inputs.asv.empty:
        df = inputs.asv
        for f in FIGURES:
            # Skipped values (n/a: e.g. the box-only suites elsewhere) have nothing to draw.
            sel = df[(df["method"].isin(f.asv) |
                      ((f.key == "peak_memory_mib") & (df["type"] == "peakmemory"))) & df["value"].notna()]
            for _, r in sel.iterrows():
                keep = True
                for name, values in zip(r["param_names"], r["param_values"]):
                    if name in STEP_PARAMS and values and r["params"].get(name) not in (values[0], values[-1]):
                        keep = False
                if not keep:
                    continue
                env_id = asv_env_ids.get(r["file"], "?")
                series = series_name(r["machine"], env_id, f"asv {r['short']}" + (
                    f" [{r['param_label']}]" if r["param_label"] else ""))
                value, ci, unit = r["value"], r["ci_99"], r["unit"]
                if r["method"] in f.asv_inverse:  # (low, high) of 1/x is (1/high, 1/low)
                    value, unit = 1 / value if value else math.nan, f.unit
                    ci = tuple(1 / v if v else math.nan for v in ci[::-1])
                rows.append({"figure": f.key, "series": series, "source": "asv",
                             "preset": r["preset"], "commit": r["commit"], "date": r["date"],
                             "value": value, "ci_99": ci, "machine": r["machine"],
                             "env": env_id, "file": r["file"], "unit": unit})
    if not inputs.runs.empty:
        for _, r in inputs.runs.iterrows():
            if r["ladder"] and r["step_index"] not in (0, (r["steps_total"] or 1) - 1):
                continue
            env_id = bench_env(envs, r)
            label = r["step"] if r["ladder"] else (r["phases_label"] or "?")
            series = series_name(r["machine"], env_id, f"{r['source']} {r['preset']} [{label}]")
            commit = (r["commit"] or "unknown") + ("+dirty" if r["dirty"] else "")
            for f in FIGURES:
                value = next((r["figures"][k] for k in f.bench if k in r["figures"]), None)
                if value is None:
                    continue
                rows.append({"figure": f.key, "series": series, "source": r["source"],
                             "preset": r["preset"], "commit": commit,
                             "date": r["created"], "value": float(value), "ci_99": (math.nan, math.nan),
                             "machine": r["machine"], "env": env_id, "file": r["file"], "unit": f.unit})
    return pd.DataFrame(rows)


def series_name(machine, env_id: str, what: str) -> str:
    """A series is one benchmark on one machine in one environment: its name starts with
    both, and lines, steps and ratios are only ever drawn within one series."""
    return f"{machine} {env_id} · {what}"


def commit_order(points: pd.DataFrame, base: str | None = None) -> list[str]:
    if points.empty:
        return []
    commits = list(dict.fromkeys(points["commit"]))
    clean = [c.partition("+")[0] for c in commits if c != "unknown"]
    times = git_commit_times(clean)
    hint = points.groupby("commit")["date"].min().to_dict()

    def key(c):
        h, _, dirty = c.partition("+")
        t = times.get(h)
        d = hint.get(c)
        if t is None:
            t = d if d is not None and not pd.isna(d) else math.inf
        elif dirty and d is not None and not pd.isna(d):
            t = max(t, d)
        return (t, c)

    return sorted(commits, key=key)


def section_trends(points, order, inputs: Inputs) -> str:
    out = []
    entries = threshold_entries(inputs.thresholds)
    if points.empty:
        where = "; ".join(f"{k}: {v}" for k, v in inputs.missing.items() if k in ("asv", "bench", "gate"))
        return empty_group([(f"trend-{f.key}", "chart") for f in FIGURES],
                           f"No per-commit figures ({where}): run `make asv` for asv results or "
                           "`make bench` for bench JSON.")
    pos = {c: i for i, c in enumerate(order)}
    labels = [short(c) for c in order]
    out.append('<div class="grid2">')
    for f in FIGURES:
        sub = points[points["figure"] == f.key].copy()
        out.append(f"<div><h3>{escape(f.title)}</h3>")
        if sub.empty:
            out.append(empty_block(f"trend-{f.key}", f"No {f.key} values in the asv results or the "
                                   "bench / gate JSON.", "chart") + "</div>")
            continue
        sub["x"] = sub["commit"].map(pos)
        series = []
        for name, g in sub.groupby("series", sort=True):
            g = g.sort_values(["x", "date"]).groupby("x").tail(1)
            series.append({"name": name, "dashed": "baseline" in name, "points": [
                (int(r.x), float(r.value),
                 f"{name}\n{short(r.commit)}: {fmt(r.value)} {r.unit}\nmachine {r.machine} ({r.env})")
                for r in g.itertuples()]})
        # Exact preset names only: a scaled copy (name@n=...) is not what a threshold gates.
        presets = set(sub["preset"].dropna().astype(str))
        thresholds = []
        unit, per_unit = f.threshold_unit or ("", 1.0)
        for t in entries:
            if t["figure"] not in f.thresholds or not (set(t["presets"]) & presets):
                continue
            for name, value in t["limits"].items():
                drawn = value * per_unit
                shown = f" {unit} = {fmt(drawn)} {f.unit}" if unit else ""
                thresholds.append({"value": drawn,
                                   "kind": "gate" if name == t["gate"] else "other",
                                   "label": f"{t['table']}: {name} {t['op']} {fmt(value)}{shown}"
                                            f"{' (gate)' if name == t['gate'] else ''}"})
        out.append(chart_block(
            f"trend-{f.key}",
            svg.line_chart(series, labels, title=f"{f.title} per commit", y_label=f.unit,
                           thresholds=thresholds, section=f"trend-{f.key}"),
            "Hover a point for its value, machine and environment id. Dashed red: the gate "
            "threshold of the thresholds file; dotted grey: its other stated limits."
            if thresholds else "No threshold of the thresholds file applies to this figure.")
            + "</div>")
    out.append("</div>")
    return "".join(out)


def _latest_ladder(inputs: Inputs):
    """(source description, steps [(label, {figure: value})]) of the newest ladder run."""
    if not inputs.runs.empty and inputs.runs["ladder"].any():
        lad = inputs.runs[inputs.runs["ladder"]]
        latest = lad.sort_values("created").iloc[-1]["file"]
        rows = lad[lad["file"] == latest].sort_values("step_index")
        steps = [(r["step"] or r["phases_label"] or f"step {r['step_index']}", r["figures"])
                 for _, r in rows.iterrows()]
        first = rows.iloc[0]
        return (f"{first['source']} ladder {latest} (preset {first['preset']}, commit "
                f"{short(first['commit'])}{'*' if first['dirty'] else ''})", steps)
    if not inputs.asv.empty:
        df = inputs.asv[inputs.asv["method"].isin(ASV_LADDER)]
        df = df[df["params"].map(lambda p: "step" in p)]
        if not df.empty:
            latest = df.sort_values("date").iloc[-1]["commit"]
            df = df[df["commit"] == latest]
            labels = list(df.iloc[0]["param_values"][list(df.iloc[0]["param_names"]).index("step")])
            steps = []
            for label in labels:
                vals = {ASV_LADDER[r.method]: r.value for r in
                        df[df["params"].map(lambda p: p.get("step") == label)].itertuples()}
                steps.append((label, vals))
            return (f"asv PhaseLadder at commit {short(latest)} (machine "
                    f"{df.iloc[0]['machine']})", steps)
    return None, []


def section_ladder(inputs: Inputs) -> str:
    source, steps = _latest_ladder(inputs)
    if not steps:
        return empty_group([("ladder-chart", "chart"), ("ladder-table", "table")],
                           "No phase ladder: run `covertreex bench --preset quick --phases ladder "
                           "--json out/bench/ladder.json`, or `make asv` for the asv ladder.")
    labels = [s[0] for s in steps]
    series = []
    for key, title in LADDER_FIGURES:
        pts = [(i, float(v[key]), f"{labels[i]}: {title} {fmt(v[key])}")
               for i, (_, v) in enumerate(steps)
               if v.get(key) is not None and not pd.isna(v.get(key))]
        if pts:
            series.append({"name": title, "points": pts})
    chart = chart_block("ladder-chart", svg.line_chart(
        series, labels, title="Phase ladder: each audit phase switched on in turn", y_label="ms",
        section="ladder-chart", width=1100), f"Source: {source}.")
    headers = ["step"] + [t for _, t in LADDER_FIGURES] + ["recall"]
    rows = []
    prev = None
    for label, v in steps:
        row = [label]
        for key, _ in LADDER_FIGURES:
            x = v.get(key)
            if x is None or pd.isna(x):
                row.append("–")
                continue
            ratio = (x / prev[key]) if prev and prev.get(key) else None
            text = fmt(x) + (f"  (×{ratio:.2f})" if ratio is not None else "")
            cls = ("good" if ratio is not None and ratio < 1 / inputs.factor else
                   "bad" if ratio is not None and ratio > inputs.factor else "")
            row.append(cell(text, cls, "ratio against the step before"))
        row.append(v.get("recall"))
        rows.append(row)
        prev = v
    return chart + table("ladder-table", headers, rows,
                         caption=f"Phase ladder ({source}); in brackets the ratio to the step before "
                                 f"(red above {inputs.factor:g}, green below 1/{inputs.factor:g})")


def section_regressions(points, order, factor: float, base: str | None) -> str:
    if points.empty or not order:
        return empty_block("regression-table", "No per-commit figures to compare: run `make asv` or "
                           "`make bench` (no asv results, "
                           "bench or gate JSON).", "table")
    pos = {c: i for i, c in enumerate(order)}
    rows = []
    base_commit = None
    if base:
        base_commit = next((c for c in order if c.startswith(base)), None)
    for (figure, series), g in points.groupby(["figure", "series"], sort=True):
        g = g.assign(x=g["commit"].map(pos)).sort_values(["x", "date"]).groupby("x").tail(1)
        g = g[g["value"].notna()]
        if g.empty:
            continue
        latest = g.iloc[-1]
        prev = g.iloc[-2] if len(g) > 1 else None
        if base_commit is not None and (g["commit"] == base_commit).any():
            b = g[g["commit"] == base_commit].iloc[-1]
        else:
            b = g.iloc[0]

        def ratio_cell(ref):
            if ref is None or ref["commit"] == latest["commit"] or not ref["value"]:
                return cell("–")
            r = latest["value"] / ref["value"]
            cls = "bad" if r > factor else "good" if r < 1 / factor else ""
            return cell(f"×{r:.2f}", cls, f"{fmt(latest['value'])} / {fmt(ref['value'])}")

        rows.append([figure, series, cell(f"{fmt(b['value'])} @ {short(b['commit'])}"),
                     cell("–" if prev is None else f"{fmt(prev['value'])} @ {short(prev['commit'])}"),
                     cell(f"{fmt(latest['value'])} @ {short(latest['commit'])}"),
                     ratio_cell(prev), ratio_cell(b), latest["unit"],
                     f"{latest['machine']} ({latest['env']})"])
    return table("regression-table",
                 ["figure", "series", "base", "previous", "latest", "latest / previous",
                  "latest / base", "unit", "machine (env)"], rows,
                 caption=f"Every figure's latest value against the previous commit and the base "
                         f"in its own series (one machine, one environment: never across machines) "
                         f"({'commit ' + short(base_commit) if base_commit else 'first commit'}); "
                         f"red above the gate factor {factor:g}, green below 1/{factor:g}.")
