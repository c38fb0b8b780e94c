"""Build the static HTML report: one self-contained ``index.html`` (inline CSS and SVG, no
script, no request of any kind) plus copies of the pyinstrument pages under ``profiles/``.

Every chart and table carries a stable ``data-section`` attribute (see ``SECTIONS``); a
section without data keeps its element, marked ``data-empty="true"``, with a visible sentence
saying what is missing and where it was looked for.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from html import escape
from pathlib import Path

import pandas as pd

from ..bench import LADDER_FIGURES  # the ladder columns of covertreex bench
from . import svg
from .loaders import FIGURES, STEP_PARAMS, Inputs, git_commit_times, load_all, threshold_entries
from .templates import CSS, page

# data-section ids of every chart and table, with their kind.
SECTIONS = (
    *[(f"trend-{f.key}", "chart") for f in FIGURES],
    ("ladder-chart", "chart"),
    ("ladder-table", "table"),
    ("regression-table", "table"),
    ("verdicts-table", "table"),
    ("telemetry-chart", "chart"),
    ("telemetry-table", "table"),
    ("profiles-table", "table"),
    ("callout-chart", "chart"),
    ("callout-table", "table"),
    ("gil-llvm-table", "table"),
    ("gil-heartbeat-table", "table"),
    ("gil-two-thread-table", "table"),
    ("gil-py-spy-table", "table"),
    ("environment-table", "table"),
    ("inputs-table", "table"),
)
ASV_LADDER = {"track_build_wall_ms": "build_wall_ms", "track_traversal_ms": "traversal_ms_sum",
              "track_whitened_block_ms": "whitened_block_ms_sum",
              "track_kernel_provider_ms": "kernel_provider_ms_sum",
              "track_conflict_graph_ms": "conflict_graph_ms_sum", "track_knn_ms": "query_wall_ms"}
CALLOUT_CATEGORIES = ("covertreex_python", "numba_kernels", "numpy_blas", "other")


# --------------------------------------------------------------------------- small HTML helpers


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e4:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def cell(value, cls: str = "", title: str = "") -> tuple:
    return (value, cls, title)


def table(section: str, headers, rows, *, caption: str = "", empty: str = "") -> str:
    """A table with data-section; rows hold plain values or ``cell(...)`` tuples."""
    if not rows:
        return empty_block(section, empty or "no data", "table")
    out = [f'<div class="tw"><table data-section="{section}">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in headers) + "</tr></thead><tbody>")
    for row in rows:
        tds = []
        for c in row:
            value, cls, title = c if isinstance(c, tuple) else (c, "", "")
            if isinstance(value, _Raw):
                text = str(value)
            else:
                text = escape(value if isinstance(value, str) else fmt(value))
            attrs = (f' class="{cls}"' if cls else "") + (f' title="{escape(title)}"' if title else "")
            tds.append(f"<td{attrs}>{text}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Raw(str):
    """Trusted HTML for a table cell (a link built here)."""


def link(href: str, text: str) -> _Raw:
    return _Raw(f'<a href="{escape(href)}">{escape(text)}</a>')


def empty_block(section: str, message: str, kind: str) -> str:
    return (f'<div class="empty" data-section="{section}" data-kind="{kind}" data-empty="true">'
            f"<p>{escape(message)}</p></div>")


def chart_block(section: str, svg_text: str, note: str = "") -> str:
    return (f'<figure data-section="{section}" data-kind="chart">{svg_text}'
            + (f"<figcaption>{escape(note)}</figcaption>" if note else "") + "</figure>")


def short(commit) -> str:
    if not isinstance(commit, str) or not commit:
        return "unknown"
    base, _, dirty = commit.partition("+")
    return base[:8] + ("*" if dirty else "")


# --------------------------------------------------------------------------- environments


class Environments:
    """Distinct environments that produced figures, numbered E1, E2, ..."""

    def __init__(self):
        self.rows = []
        self._ids = {}

    def add(self, kind: str, key: tuple, info: dict) -> str:
        if key not in self._ids:
            self._ids[key] = f"E{len(self._ids) + 1}"
            self.rows.append({"id": self._ids[key], "kind": kind, **info, "files": []})
        return self._ids[key]

    def note_file(self, env_id: str, path: str) -> None:
        for row in self.rows:
            if row["id"] == env_id and path not in row["files"]:
                row["files"].append(path)


def _bench_env(envs: Environments, row, kind: str = "covertreex bench") -> str:
    e = row.get("environment") or {}
    blas = ", ".join(f"{p.get('internal_api')} {p.get('version') or ''} x{p.get('num_threads')}"
                     for p in (e.get("threadpools") or []) if p.get("user_api") == "blas")
    info = {"machine": e.get("hostname") or "unknown", "cpu": e.get("cpu_model"),
            "cores": e.get("cpu_affinity") or e.get("cpu_count"), "ram": None,
            "os": e.get("platform"), "python": e.get("python"),
            "libraries": ", ".join(f"{k} {e[k]}" for k in ("numpy", "numba", "scipy") if e.get(k)),
            "threads": "; ".join(x for x in (
                ", ".join(f"{k}={v}" for k, v in (e.get("thread_env") or {}).items() if v),
                f"numba {e.get('numba_threads')} ({e.get('numba_threading_layer')})"
                if e.get("numba_threads") else "",
                f"BLAS {blas}" if blas else "") if x)}
    key = ("bench", info["machine"], info["cpu"], info["cores"], info["python"], info["libraries"],
           info["threads"])
    env_id = envs.add(kind, key, info)
    envs.note_file(env_id, row.get("file"))
    for r in envs.rows:
        if r["id"] == env_id and kind not in r["kind"]:
            r["kind"] += f" / {kind}"
    return env_id


def _asv_env(envs: Environments, env: dict) -> str:
    p = env.get("params") or {}
    ram = p.get("ram")
    try:
        ram = f"{int(ram) / 2 ** 30:.1f} GiB"
    except (TypeError, ValueError):
        pass
    reqs = env.get("requirements") or {}
    info = {"machine": env.get("machine"), "cpu": p.get("cpu"), "cores": p.get("num_cpu"),
            "ram": ram, "os": p.get("os"), "python": env.get("python") or p.get("python"),
            "libraries": ", ".join(f"{k.replace('pip+', '')} {v}" for k, v in reqs.items()
                                   if isinstance(v, str) and v) or env.get("env_name"),
            "threads": None}
    key = ("asv", info["machine"], info["cpu"], info["python"], env.get("env_name"))
    env_id = envs.add("asv", key, info)
    envs.note_file(env_id, env.get("file"))
    return env_id


# --------------------------------------------------------------------------- trend points


def trend_points(inputs: Inputs, envs: Environments) -> pd.DataFrame:
    rows = []
    asv_env_ids = {e["file"]: _asv_env(envs, e) for e in inputs.asv_envs}
    if not inputs.asv.empty:
        df = inputs.asv
        for f in FIGURES:
            sel = df[df["method"].isin(f.asv) |
                     ((f.key == "peak_memory_mib") & (df["type"] == "peakmemory"))]
            for _, r in sel.iterrows():
                keep = True
                for name, values in zip(r["param_names"], r["param_values"]):
                    if name in STEP_PARAMS and values and r["params"].get(name) not in (values[0], values[-1]):
                        keep = False
                if not keep:
                    continue
                series = f"asv {r['short']}" + (f" [{r['param_label']}]" if r["param_label"] else "")
                rows.append({"figure": f.key, "series": series, "source": "asv",
                             "preset": r["preset"], "commit": r["commit"], "date": r["date"],
                             "value": r["value"], "machine": r["machine"],
                             "env": asv_env_ids.get(r["file"], "?"), "file": r["file"],
                             "unit": r["unit"]})
    if not inputs.runs.empty:
        for _, r in inputs.runs.iterrows():
            if r["ladder"] and r["step_index"] not in (0, (r["steps_total"] or 1) - 1):
                continue
            env_id = _bench_env(envs, r)
            label = r["step"] if r["ladder"] else (r["phases_label"] or "?")
            series = f"{r['source']} {r['preset']} [{label}]"
            commit = (r["commit"] or "unknown") + ("+dirty" if r["dirty"] else "")
            for f in FIGURES:
                value = next((r["figures"][k] for k in f.bench if k in r["figures"]), None)
                if value is None:
                    continue
                rows.append({"figure": f.key, "series": series, "source": r["source"],
                             "preset": r["preset"], "commit": commit,
                             "date": r["created"], "value": float(value), "machine": r["machine"],
                             "env": env_id, "file": r["file"], "unit": f.unit})
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------- sections


def section_trends(points, order, inputs: Inputs) -> str:
    out = []
    entries = threshold_entries(inputs.thresholds)
    if points.empty:
        where = "; ".join(f"{k}: {v}" for k, v in inputs.missing.items() if k in ("asv", "bench", "gate"))
        for f in FIGURES:
            out.append(f"<h3>{escape(f.title)}</h3>")
            out.append(empty_block(f"trend-{f.key}", f"No {f.key} figures: no asv results or bench "
                                   f"/ gate JSON were found ({where}).", "chart"))
        return "".join(out)
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
        for t in entries:
            if t["figure"] not in f.thresholds or not (set(t["presets"]) & presets):
                continue
            for name, value in t["limits"].items():
                thresholds.append({"value": value, "kind": "gate" if name == t["gate"] else "other",
                                   "label": f"{t['table']}: {name} {t['op']} {fmt(value)}"
                                            f"{' (gate)' if name == t['gate'] else ''}"})
        out.append(chart_block(
            f"trend-{f.key}",
            svg.line_chart(series, labels, title=f"{f.title} per commit", y_label=f.unit,
                           thresholds=thresholds, section=f"trend-{f.key}"),
            "Hover a point for its value, machine and environment id. Dashed red: the gate "
            "threshold of perf/thresholds.toml; dotted grey: its other stated limits."
            if thresholds else "No threshold of perf/thresholds.toml applies to this figure.")
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
        msg = ("No phase ladder: no bench / gate JSON with \"steps\" (covertreex bench --phases "
               "ladder --json PATH) and no asv PhaseLadder results.")
        return empty_block("ladder-chart", msg, "chart") + empty_block("ladder-table", msg, "table")
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
        return empty_block("regression-table", "No per-commit figures to compare (no asv results, "
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
                 caption=f"Every figure against the previous commit and the base "
                         f"({'commit ' + short(base_commit) if base_commit else 'first commit'}); "
                         f"red above the gate factor {factor:g}, green below 1/{factor:g}.")


_OPS = {"<=": lambda v, t: v <= t, "<": lambda v, t: v < t, ">=": lambda v, t: v >= t,
        ">": lambda v, t: v > t, "==": lambda v, t: v == t}


def section_verdicts(inputs: Inputs, envs: Environments) -> str:
    entries = threshold_entries(inputs.thresholds)
    runs = inputs.runs
    rows = []
    seen = set()
    if not runs.empty:
        runs = runs.sort_values("created")
    for t in entries:
        # Exact preset names of full-size runs: a scaled run is not what the threshold gates.
        cand = runs[runs["preset"].astype(str).isin(t["presets"]) & ~runs["scaled"].astype(bool)] \
            if not runs.empty else runs
        if not cand.empty:
            # Plain runs first; a ladder's final step (all phases) only when there is none.
            plain = cand[~cand["ladder"].astype(bool)]
            cand = plain if not plain.empty else cand[cand["step_index"] == cand["steps_total"] - 1]
        if cand.empty:
            rows.append([t["table"], t["figure"], ", ".join(t["presets"]), "–",
                         f"{t['op']} {fmt(t['limit'])} ({t['gate']})", _others(t), cell("NO DATA", "skip"),
                         "–", "–", "no bench / gate run of these presets"])
            continue
        r = cand.iloc[-1]
        seen.add((r["file"], t["table"], t["figure"]))
        verdict = next((v for v in (r["verdicts"] or []) if isinstance(v, dict)
                        and v.get("figure") == t["figure"] and v.get("table", t["table"]) == t["table"]), None)
        if verdict is not None:
            value, status, note = verdict.get("value"), verdict.get("status", "?"), verdict.get("note", "")
        else:
            value = r["figures"].get(t["figure"])
            if value is None or t["limit"] is None or t["op"] not in _OPS:
                status, note = "SKIP", "figure not measured in this run"
            else:
                status = "PASS" if _OPS[t["op"]](float(value), t["limit"]) else "FAIL"
                note = "judged by the report (the JSON holds no verdict)"
        env_id = _bench_env(envs, r)
        rows.append([t["table"], t["figure"], r["preset"], value,
                     f"{t['op']} {fmt(t['limit'])} ({t['gate']})", _others(t),
                     cell(status, status.lower()), short(r["commit"]) + ("*" if r["dirty"] else ""),
                     f"{r['machine']} ({env_id})", note or os.path.basename(r["file"])])
    # Verdicts in JSON documents that thresholds.toml (if any) does not list.
    if not runs.empty:
        judged = runs[runs["verdicts"].map(lambda v: bool(v) if isinstance(v, list) else False)]
        latest = judged.groupby("preset").tail(1)
        for _, r in latest.iterrows():
            for v in r["verdicts"] or []:
                if not isinstance(v, dict) or (r["file"], v.get("table"), v.get("figure")) in seen:
                    continue
                if any(t["table"] == v.get("table") and t["figure"] == v.get("figure") for t in entries):
                    continue
                status = v.get("status", "?")
                rows.append([v.get("table"), v.get("figure"), r["preset"], v.get("value"),
                             f"{v.get('op')} {fmt(v.get('limit'))} ({v.get('gate')})",
                             ", ".join(f"{k} {fmt(x)}" for k, x in (v.get("limits") or {}).items()
                                       if k != v.get("gate")),
                             cell(status, str(status).lower()), short(r["commit"]),
                             f"{r['machine']} ({_bench_env(envs, r)})",
                             v.get("note") or os.path.basename(r["file"])])
    if not rows:
        why = inputs.missing.get("thresholds") or "thresholds file lists no threshold"
        return empty_block("verdicts-table", f"No audit thresholds to judge ({why}) and no verdicts "
                           "in the bench / gate JSON.", "table")
    return table("verdicts-table", ["table", "figure", "preset", "value", "threshold",
                                    "other limits", "verdict", "commit", "machine (env)", "note / file"],
                 rows, caption="One verdict per audit threshold, from the newest run of its presets "
                               f"({inputs.thresholds_path or 'no thresholds file'}).")


def _others(t) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in t["limits"].items() if k != t["gate"]) or "–"


def section_telemetry(inputs: Inputs) -> str:
    b, builds, queries = inputs.batches, inputs.builds, inputs.queries
    if builds.empty and b.empty:
        msg = f"No telemetry records ({inputs.missing.get('logs', 'no logs')})."
        return empty_block("telemetry-chart", msg, "chart") + empty_block("telemetry-table", msg, "table")
    out = []
    if not b.empty:
        log = b["log"].iloc[-1]
        sel = b[b["log"] == log]
        sel = sel[sel["build_no"] == sel["build_no"].max()].sort_values("batch_index")
        rest = (sel["traversal_ms"] - sel["whitened_block_ms"] - sel["kernel_provider_ms"]).clip(lower=0)
        stacks = [
            {"name": "whitened_block_ms", "values": sel["whitened_block_ms"].tolist()},
            {"name": "kernel_provider_ms", "values": sel["kernel_provider_ms"].tolist()},
            {"name": "rest of traversal_ms", "values": rest.tolist()},
            {"name": "conflict_graph_ms", "values": sel["conflict_graph_ms"].tolist()},
            {"name": "mis_ms", "values": sel["mis_ms"].tolist()},
        ]
        cats = [f"{int(i)}{'*' if d else ''}" for i, d in zip(sel["batch_index"], sel["dominated"])]
        out.append(chart_block("telemetry-chart", svg.stacked_bars(
            cats, stacks, title=f"Per-batch telemetry of the last build in {os.path.basename(log)}",
            y_label="ms", section="telemetry-chart"),
            f"{log}: batch index on the x axis, * marks a dominated batch (its independent set kept "
            "under half of the batch)."))
    else:
        out.append(empty_block("telemetry-chart", "The logs hold no batch records.", "chart"))
    rows = []
    for d in builds.to_dict("records") if not builds.empty else []:
        # A query record follows its build: it was read after the build count went up.
        q = queries[(queries["log"] == d["log"]) & (queries["build_no"] == d["build_no"] + 1)] \
            if not queries.empty else pd.DataFrame()
        rows.append([os.path.basename(d["log"]), d.get("preset") or "–",
                     d.get("step") or d.get("phases_label") or "–",
                     d.get("run"), d.get("metric"), d.get("n"), d.get("build_wall_ms"),
                     d.get("s.batches"), d.get("s.dominated_batches"), d.get("s.traversal_ms_sum"),
                     d.get("s.whitened_block_ms_sum"), d.get("s.kernel_provider_ms_sum"),
                     d.get("s.conflict_graph_ms_sum"), d.get("s.tile_share_of_traversal"),
                     d.get("s.pairwise_not_reused_after_first"),
                     q["query_wall_ms"].iloc[0] if not q.empty and "query_wall_ms" in q else None])
    out.append(table("telemetry-table", ["log", "preset", "step / phases", "run", "metric", "n",
                                         "build wall ms", "batches", "dominated", "traversal ms",
                                         "whitened_block ms", "kernel_provider ms",
                                         "conflict_graph ms", "tile share of traversal",
                                         "pairwise not reused", "query wall ms"], rows,
                     caption="Builds in the telemetry logs (sums over batches)",
                     empty="The logs hold no build records."))
    return "".join(out)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def copy_profiles(inputs: Inputs, out_dir: Path) -> dict:
    """Copy each capture's HTML (made offline) to out_dir/profiles; {(summary, phases): href}."""
    from ..profiling.capture import offline_html

    hrefs = {}
    for path, doc in inputs.profiles:
        sub = _SAFE.sub("_", f"{path.parent.name}")
        for run in doc.get("runs") or []:
            name = (run.get("files") or {}).get("html")
            if not name:
                continue
            src = path.parent / name
            if not src.is_file():
                inputs.skipped.append(("profile HTML", str(src), "file not found"))
                continue
            dst_dir = out_dir / "profiles" / sub
            dst_dir.mkdir(parents=True, exist_ok=True)
            dst = dst_dir / _SAFE.sub("_", name)
            dst.write_text(offline_html(src.read_text(encoding="utf-8", errors="replace")),
                           encoding="utf-8")
            hrefs[(str(path), run.get("phases"))] = f"profiles/{sub}/{dst.name}"
    return hrefs


def section_profiles(inputs: Inputs, hrefs: dict) -> str:
    if not inputs.profiles:
        msg = f"No profiles ({inputs.missing.get('profiles', 'none found')}); run covertreex profile --preset NAME."
        return "".join(empty_block(s, msg, k) for s, k in SECTIONS if s in (
            "profiles-table", "callout-chart", "callout-table", "gil-llvm-table",
            "gil-heartbeat-table", "gil-two-thread-table", "gil-py-spy-table"))
    out = []
    prow, bars, crow = [], [], []
    for path, doc in inputs.profiles:
        preset = (doc.get("preset") or {}).get("name", "?")
        for run in doc.get("runs") or []:
            label = run.get("phases", "?")
            href = hrefs.get((str(path), label))
            if "error" in run:
                prow.append([preset, label, short(doc.get("git_commit")), "–", "–", cell(run["error"], "fail")])
                continue
            prow.append([preset, label, short(doc.get("git_commit")) + ("*" if doc.get("git_dirty") else ""),
                         run.get("build_wall_ms"), run.get("query_wall_ms"),
                         link(href, os.path.basename(href)) if href else "HTML not found"])
            for region in ("build_hot", "query"):
                reg = (run.get("callouts") or {}).get(region) or {}
                if not reg.get("total_ms"):
                    continue
                bars.append((f"{preset} [{label}] {region}", reg.get("categories_ms") or {}))
                shares = reg.get("shares") or {}
                top_k = ", ".join(f"{k['kernel'].rsplit('.', 1)[-1]} {fmt(k['ms'])}"
                                  for k in (reg.get("top_kernels") or [])[:3])
                top_l = ", ".join(f"{x['where']} {fmt(x['ms'])}" for x in (reg.get("top_lines") or [])[:2]
                                  if x.get("category") == "covertreex_python")
                crow.append([preset, label, region, reg.get("total_ms"),
                             *[cell(f"{100 * shares[c]:.1f} %" if shares.get(c) is not None else "–",
                                    "hl" if c == "covertreex_python" and (shares.get(c) or 0) > 0.05 else "")
                               for c in CALLOUT_CATEGORIES],
                             reg.get("python_called_from_kernels_ms"), top_k or "–", top_l or "–"])
    out.append(table("profiles-table", ["preset", "phases", "commit", "build ms (profiled)",
                                        "queries ms (profiled)", "pyinstrument profile"],
                     prow,
                     caption="pyinstrument captures (copied into this report; open offline)"))
    out.append("<h3>Python-callout evidence</h3>")
    if bars:
        out.append(chart_block("callout-chart", svg.share_bars(
            bars, CALLOUT_CATEGORIES, title="Share of sampled time by kind of frame",
            section="callout-chart"),
            "build_hot = the insertion loop of CoverTree.fit; query = knn_report. Numba kernels and "
            "numpy/BLAS are compiled code; covertreex_python is interpreter time in covertreex frames."))
    else:
        out.append(empty_block("callout-chart", "The profile summaries hold no classified samples.", "chart"))
    out.append(table("callout-table", ["preset", "phases", "region", "sampled ms",
                                      *CALLOUT_CATEGORIES, "Python under kernels ms",
                                      "top kernels (ms)", "top Python lines (ms)"], crow,
                     empty="The profile summaries hold no classified samples."))
    out.append("<h3>GIL evidence</h3>")
    lrows, hrows, trows, srows = [], [], [], []
    for path, doc in inputs.profiles:
        preset = (doc.get("preset") or {}).get("name", "?")
        gil = doc.get("gil") or {}
        if gil.get("skipped"):
            srows.append([preset, cell("skipped", "skip"), gil.get("error") or gil.get("note") or "–", "–"])
            continue
        for k in gil.get("kernels") or []:
            if not k.get("compiled"):
                continue
            sites = k.get("sites") or {}
            fmt_sites = lambda kind: ", ".join(f"{s} {n}" for s, n in (sites.get(kind) or {}).items()) or "0"
            ok = k.get("ok")
            lrows.append([preset, k.get("kernel"), k.get("signatures"),
                          cell(fmt(k.get("nogil")), "" if k.get("nogil") else "fail"),
                          fmt(k.get("parallel")), cell(fmt_sites("hot"), "fail" if k.get("hot_sites") else "pass"),
                          fmt_sites("parfor_launch"), fmt_sites("error_path"), fmt_sites("wrapper"),
                          cell("clean" if ok else ("ERROR" if k.get("error") else "NOT CLEAN"),
                               "pass" if ok else "fail", k.get("error") or "")])
        for h in gil.get("heartbeat") or []:
            if "error" in h:
                hrows.append([preset, h.get("scenario"), cell(h["error"], "fail"), "", "", "", "", ""])
                continue
            rel = h.get("released")
            hrows.append([preset, h.get("scenario"), h.get("call_ms_median"), h.get("max_gap_ms"),
                          h.get("p99_gap_ms"), h.get("limit_ms"), h.get("loadavg_1min"),
                          cell("released" if rel else "held" if rel is False else "inconclusive",
                               "pass" if rel else "fail" if rel is False else "skip")])
        for t in gil.get("two_thread") or []:
            if "error" in t:
                trows.append([preset, t.get("scenario"), cell(t["error"], "fail"), "", "", "", "", "", ""])
                continue
            rel = t.get("released")
            util = (f"{t['cpu_util_1']:.2f} / {t['cpu_util_2']:.2f}"
                    if t.get("cpu_util_1") is not None and t.get("cpu_util_2") is not None else "–")
            trows.append([preset, t.get("scenario"), t.get("throughput_1"), t.get("throughput_2"),
                          cell(f"{t.get('speedup', 0):.2f}×", ""), util, t.get("cores"),
                          t.get("loadavg_1min"),
                          cell("scales" if rel else "does not scale" if rel is False else
                               "inconclusive (machine busy)" if t.get("machine_busy") else "inconclusive",
                               "pass" if rel else "fail" if rel is False else "skip")])
        spy = gil.get("py_spy") or {}
        if spy.get("skipped"):
            srows.append([preset, "–", cell("skipped", "skip"), spy.get("note", "–"), "–"])
        else:
            for run in spy.get("runs") or []:
                if "error" in run:
                    srows.append([preset, run.get("scenario"), cell("failed", "fail"), run["error"], "–"])
                    continue
                share = run.get("gil_share")
                control = run.get("scenario", "").startswith("control")
                srows.append([preset, run.get("scenario"), cell("measured", "pass"),
                              f"{run.get('gil_samples')} of {run.get('samples')} samples hold the GIL"
                              + (" (control: holds the GIL on purpose)" if control else ""),
                              cell(f"{100 * share:.1f} %" if share is not None else "–",
                                   "" if control else ("pass" if share is not None and share < 0.05
                                                       else "fail"))])
    out.append(table("gil-llvm-table", ["preset", "kernel", "signatures", "nogil", "parallel",
                                        "hot-path GIL/Python calls", "parfor launch", "error paths",
                                        "wrappers", "verdict"], lrows,
                     caption="(a) Static scan of the compiled LLVM IR for numba_gil_ensure, "
                             "PyGILState_Ensure, PyObject_Call*, numba_unpickle",
                     empty="No compiled kernel was scanned (GIL probes skipped)."))
    out.append(table("gil-heartbeat-table", ["preset", "scenario", "call ms", "max gap ms",
                                             "p99 gap ms", "limit ms", "load avg", "GIL"], hrows,
                     caption="(b) Longest pause of a 1 ms heartbeat thread while the scenario runs "
                             "(control_gil holds the GIL on purpose)",
                     empty="No heartbeat probe ran."))
    out.append(table("gil-two-thread-table", ["preset", "scenario", "throughput 1 thread /s",
                                              "throughput 2 threads /s", "speedup",
                                              "cores used 1 / 2 threads", "cores", "load avg",
                                              "verdict"], trows,
                     caption="(c) Same work in one thread and in two threads (Numba and BLAS at "
                             "1 thread each)", empty="No two-thread probe ran."))
    out.append(table("gil-py-spy-table", ["preset", "scenario", "py-spy", "figures",
                                          "GIL-held share"], srows,
                     caption="(d) py-spy --gil", empty="No py-spy probe result."))
    return "".join(out)


def section_environment(envs: Environments, inputs: Inputs) -> str:
    for path, doc in inputs.profiles:
        e = doc.get("environment") or {}
        _bench_env(envs, {"environment": e, "file": str(path)}, kind="covertreex profile")
    if not envs.rows:
        return empty_block("environment-table", "No machine or environment information: no asv "
                           "results, bench / gate JSON or profiles were read.", "table")
    rows = [[r["id"], r["kind"], r.get("machine"), r.get("cpu"), r.get("cores"), r.get("ram") or "–",
             r.get("os"), r.get("python"), r.get("libraries") or "–", r.get("threads") or "–",
             ", ".join(os.path.basename(f) for f in r["files"][:6]) + (" …" if len(r["files"]) > 6 else "")]
            for r in envs.rows]
    return table("environment-table", ["env", "source", "machine", "CPU", "cores", "RAM", "OS",
                                       "Python", "libraries", "threads", "files"], rows,
                 caption="Machines and environments that produced the figures (ids used in the "
                         "tables and chart tooltips)")


def section_inputs(inputs: Inputs) -> str:
    rows = [[kind, path, cell("read", "pass"), note] for kind, path, note in inputs.read]
    rows += [[kind, path, cell("skipped", "fail"), reason] for kind, path, reason in inputs.skipped]
    rows += [[kind, "–", cell("none", "skip"), why] for kind, why in inputs.missing.items()]
    return table("inputs-table", ["input", "path", "status", "note"], rows,
                 caption="Every input looked for", empty="No input was given.")


# --------------------------------------------------------------------------- the page


def render(inputs: Inputs, out_dir: Path, *, base: str | None = None, title: str = "covertreex performance report") -> str:
    envs = Environments()
    hrefs = copy_profiles(inputs, out_dir) if inputs.profiles else {}
    points = trend_points(inputs, envs)
    order = commit_order(points, base)
    if not inputs.runs.empty:
        for _, r in inputs.runs.iterrows():
            _bench_env(envs, r)
    blocks = [
        ("trends", "Trends per commit", section_trends(points, order, inputs)),
        ("ladder", "Phase ladder", section_ladder(inputs)),
        ("regressions", "Regressions", section_regressions(points, order, inputs.factor, base)),
        ("verdicts", "Audit thresholds", section_verdicts(inputs, envs)),
        ("telemetry", "Telemetry logs", section_telemetry(inputs)),
        ("profiles", "Profiles, Python callouts and GIL", section_profiles(inputs, hrefs)),
    ]
    blocks.append(("environment", "Machines and environments", section_environment(envs, inputs)))
    blocks.append(("inputs", "Inputs", section_inputs(inputs)))
    counts = {
        "commits": len(order),
        "asv values": 0 if inputs.asv.empty else len(inputs.asv),
        "bench/gate runs": 0 if inputs.runs.empty else len(inputs.runs),
        "telemetry builds": 0 if inputs.builds.empty else len(inputs.builds),
        "profiles": len(inputs.profiles),
    }
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    return page(title, generated, counts, blocks, inputs.factor)


def build_report(out_dir, *, asv=None, gate=None, bench=None, logs=None, profiles=None,
                 thresholds=None, base=None) -> Path:
    """Read the inputs and write ``out_dir/index.html``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prof_dir = out_dir / "profiles"
    if prof_dir.is_dir():
        shutil.rmtree(prof_dir)
    inputs = load_all(asv=asv, gate=gate, bench=bench, logs=logs, profiles=profiles,
                      thresholds=thresholds)
    html = render(inputs, out_dir, base=base)
    index = out_dir / "index.html"
    tmp = index.with_name("index.html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, index)
    return index


__all__ = ["SECTIONS", "build_report", "render", "CSS"]
