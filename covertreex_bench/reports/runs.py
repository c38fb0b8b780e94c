"""Report sections over single runs: one verdict per threshold, the gate's decisions, and the
telemetry logs."""

from __future__ import annotations

import os

import pandas as pd

from ..thresholds import OPS, passes
from . import svg
from .environments import Environments, bench_env
from .html import cell, chart_block, empty_block, empty_group, fmt, short, table
from .loaders import Inputs, threshold_entries

SECTIONS = (
    ("verdicts-table", "table"),
    ("gate-table", "table"),
    ("telemetry-chart", "chart"),
    ("telemetry-table", "table"),
)


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
            if value is None or t["limit"] is None or t["op"] not in OPS:
                status, note = "SKIP", "figure not measured in this run"
            else:
                ok = passes(t["op"], float(value), t["limit"])
                # A stretch goal is shown, never failed, as the bench itself judges it.
                status = "GOAL" if t.get("stretch") else ("PASS" if ok else "FAIL")
                note = ("met, " if ok else "not met, ") if t.get("stretch") else ""
                note += "judged by the report (the JSON holds no verdict)"
        env_id = bench_env(envs, r)
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
                             f"{r['machine']} ({bench_env(envs, r)})",
                             v.get("note") or os.path.basename(r["file"])])
    if not rows:
        why = inputs.missing.get("thresholds") or "thresholds file lists no threshold"
        return empty_block("verdicts-table", f"No audit thresholds to judge ({why}) and no verdicts "
                           "in the bench / gate JSON: run `make bench`.", "table")
    return table("verdicts-table", ["table", "figure", "preset", "value", "threshold",
                                    "other limits", "verdict", "commit", "machine (env)", "note / file"],
                 rows, caption="One verdict per audit threshold, from the newest run of its presets "
                               f"({inputs.thresholds_path or 'no thresholds file'}).")


def _others(t) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in t["limits"].items() if k != t["gate"]) or "–"


def section_gate(inputs: Inputs) -> str:
    """One row a figure of every ``perf/compare.py`` decision read (``compare.json``): the
    base's and the head's medians, their ratio with its 95 % interval, the p-value and the
    verdict, under the comparison's preset, commits, rounds (and the worker processes they were
    spread over, where the file says) and whether the results matched."""
    rows = []
    for path, doc in inputs.comparisons:
        head = short(doc.get("head")) + (" (dirty)" if doc.get("head_dirty") else "")
        same = doc.get("results_identical")
        for d in doc["decisions"]:
            if not isinstance(d, dict):
                continue
            status = str(d.get("status", "?"))
            low, high = d.get("ci_low"), d.get("ci_high")
            rows.append([cell(os.path.basename(os.path.dirname(path)) or path, "", path),
                         doc.get("preset", "?"),
                         short(doc.get("base")), head,
                         doc.get("rounds") if doc.get("processes") is None else
                         f"{doc.get('rounds')} in {doc['processes']} processes a side",
                         "–" if same is None else ("yes" if same else "NO"), d.get("figure", "?"),
                         d.get("base_median"), d.get("head_median"), d.get("ratio"),
                         "–" if low is None or high is None else f"{fmt(low)}-{fmt(high)}",
                         d.get("p_value"),
                         cell(status, {"PASS": "pass", "FAIL": "fail"}.get(status, "skip"))])
    return table("gate-table", ["in folder", "preset", "base", "head", "rounds", "results identical",
                                "figure", "base median", "head median", "head / base",
                                "95 % CI", "p", "verdict"], rows,
                 caption="The gate's decisions (perf/compare.py): base and candidate measured in "
                         "one job, in alternating rounds",
                 empty="No gate decisions (compare.json of perf/compare.py) among the gate and "
                       "bench inputs: `make gate` writes out/gate/compare.json.")


def section_telemetry(inputs: Inputs) -> str:
    b, builds, queries = inputs.batches, inputs.builds, inputs.queries
    if builds.empty and b.empty:
        return empty_group([("telemetry-chart", "chart"), ("telemetry-table", "table")],
                           f"No telemetry records ({inputs.missing.get('logs', 'no logs')}): run "
                           "`make bench` (writes out/bench/quick.jsonl).")
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
