"""What ``covertreex bench`` prints on stdout: the result, verdict and ladder tables (progress
lines on stderr are ``covertreex_bench.progress``)."""

from __future__ import annotations

import math

from .common import LADDER_FIGURES, TABLE_FIGURES
from .results import figures


def _fmt(value, spec="{:.1f}"):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return spec.format(value)


def fmt_recall(value) -> str:
    """1.000000 only when exact: truncated, never rounded up, so 0.9999996 never shows as 1."""
    if value is None:
        return "- (use --check)"
    return "1.000000" if value >= 1.0 else f"{math.floor(value * 1e6) / 1e6:.6f}"


def _table(rows, align=None) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    align = align or ["<"] + [">"] * (len(widths) - 1)
    lines = []
    for r, row in enumerate(rows):
        lines.append("  ".join(f"{str(c):{a}{w}}" for c, w, a in zip(row, widths, align)).rstrip())
        if r == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_result(result: dict) -> str:
    """The short console table of one run: walls, q/s, recall (and how the reference was
    sampled), the query figures, batch medians, verdicts."""
    s = result["summary"]
    head = (f"{result['preset']}: {result['metric']}, n={result['n']}, d={result['d']}, "
            f"k={result['k']}, queries={result['queries']}"
            + (", predecessor mode" if result["predecessor_mode"] else "")
            + f"; phases {result['phases_label']}; repeat {result['repeat']}"
            + ("; SCALED (not the named preset)" if result.get("scaled") else ""))
    lines = [head]
    runs = f" (median of {result['repeat']})" if result["repeat"] > 1 else ""
    lines += [
        f"  warm-up (JIT)  {_fmt(result.get('warmup_ms'), '{:.0f}')} ms, not counted below",
        f"  build wall     {_fmt(result['build_wall_ms'])} ms{runs}",
        f"  query wall     {_fmt(result['query_wall_ms'])} ms{runs}",
        f"  queries/s      {_fmt(result['queries_per_s'], '{:.0f}')}",
        *_check_lines(result, runs),
        *_query_lines(result),
        f"  batches        {s['batches']} ({s['dominated_batches']} dominated)",
    ]
    if result.get("dask") is not None:
        lines += dask_lines(result["dask"])
    lines.append("")
    rows = [("batch figure", "median", "median dominated", "sum")]
    for name in TABLE_FIGURES:
        rows.append((name, _fmt(s[f"{name}_median"], "{:.2f}"),
                     _fmt(s[f"{name}_median_dominated"], "{:.2f}"), _fmt(s[f"{name}_sum"], "{:.1f}")))
    lines += ["  " + line for line in _table(rows)]
    if result["metric"] == "residual_correlation":
        share = s.get("tile_share_of_traversal")
        lines.append(f"  tile share of traversal {_fmt(share, '{:.3f}')}, pairwise not reused after "
                     f"the first batch {s.get('pairwise_not_reused_after_first')}")
    if result.get("verdicts") is not None:
        lines += ["", format_verdicts(result["verdicts"], result.get("thresholds_file"),
                                      informational=result.get("scaled", False))]
    return "\n".join(lines)


def dask_lines(dask: dict) -> list[str]:
    """The summary's lines for a result's "dask" entry (covertreex_bench.dask_bench.on_cluster),
    with a note when the workers ran with Dask's MALLOC_TRIM_THRESHOLD_."""
    held = max(dask["bytes_per_worker"].values(), default=0)
    lines = [f"  dask           {len(dask['workers'])} worker(s), {held / 2**20:.1f} MiB of tree "
             f"each; queries {min(dask['cluster_query_ms']):.1f} ms on the cluster, "
             f"{min(dask['local_query_ms']):.1f} ms here: speed-up "
             f"{_fmt(dask['query_speedup_vs_local'], '{:.2f}')}x"]
    trimmed = sorted({v for v in dask.get("malloc_trim_threshold", {}).values() if v})
    if trimmed:
        lines.append(f"  note           the workers ran with MALLOC_TRIM_THRESHOLD_="
                     f"{', '.join(trimmed)}, which slows the walks (docs/distributed.md, "
                     f"\"Worker memory settings\")")
    return lines


def _check_lines(result: dict, runs: str) -> list[str]:
    """The recall line with the reference's time; a sampled reference gets a line of its own
    saying what it ran and that its time is scaled."""
    recall = f"  recall         {fmt_recall(result['recall'])}"
    sampling = result.get("reference_sampling")
    if result.get("reference_ms") is None:
        return [recall]
    if sampling is not None:
        return [recall + f" on the {sampling['rows_checked']} query rows the sampled reference ran",
                f"  reference      {result['reference_ms']:.1f} ms SAMPLED AND SCALED: "
                f"{sampling['blocks_timed']} of {sampling['blocks_total']} row blocks (1 in "
                f"{sampling['every']}) took {sampling['timed_ms']:.1f} ms, scaled to all rows by "
                f"rows x columns"]
    ref = f"   reference ({result['reference']}) {result['reference_ms']:.1f} ms"
    if result.get("ckdtree_query_ms") is not None:
        ref += f", cKDTree queries {result['ckdtree_query_ms']:.1f} ms{runs}"
    return [recall + ref]


def _query_lines(result: dict) -> list[str]:
    """Pairs per row against the brute force's, the tiles' share of the DGEMM rate, blocked
    against single-row walks and the peak memory, where measured."""
    q = result.get("query") or {}
    lines = []
    if q.get("pairs_per_row") is not None:
        lines.append(f"  pairs/row      {q['pairs_per_row']:.1f}, "
                     f"{_fmt(q.get('pairs_over_brute'), '{:.3f}')}x the brute force's "
                     f"{_fmt(q.get('brute_pairs_per_row'))}")
    if q.get("tile_gflops") is not None:
        lines.append(f"  GEMM share     {_fmt(q.get('gemm_share'), '{:.3f}')}: query tiles "
                     f"{q['tile_gflops']:.1f} GFLOP/s, DGEMM of a tile chunk's shape "
                     f"{_fmt(q.get('dgemm_gflops'))} GFLOP/s, both on the walk's threads")
    brute = (result.get("runtime") or {}).get("query_brute")
    if brute is None and result.get("n"):
        from covertreex.runtime import auto_brute

        brute = auto_brute(result["metric"], result["n"])
    if result.get("predecessor_mode") and brute:
        lines.append(f"  brute rows     rows with at most {brute} candidates (ids below their own) "
                     "scanned, not walked (Runtime.query_brute)")
    if q.get("blocked_over_single") is not None:
        lines.append(f"  blocked/single {q['blocked_over_single']:.3f}: {q['single_row_pairs_per_row']:.1f} "
                     f"pairs/row walking {q['single_row_sample']} sampled rows one a block; "
                     f"{result.get('single_row_mismatches')} of them answer otherwise")
    if result.get("peak_rss_mb") is not None:
        lines.append(f"  peak RSS       {result['peak_rss_mb']:.0f} MB, after the builds and queries")
    return lines


def _fmt_value(value) -> str:
    """4 significant digits, without exponents for the magnitudes timings take."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_verdicts(verdicts, path=None, informational=False) -> str:
    if not verdicts:
        return f"no thresholds for this preset in {path or 'the thresholds file'}"
    rows = [("threshold", "value", "limit", "gate", "audit", "verdict")]
    for v in verdicts:
        v = v if isinstance(v, dict) else v.as_dict()
        audit = v["limits"].get("audit")
        audit_text = "-" if audit is None else f"{v['op']} {audit:g}"
        rows.append((f"[{v['table']}] {v['figure']}", _fmt_value(v["value"]),
                     "-" if v["limit"] is None else f"{v['op']} {v['limit']:g}", v["gate"], audit_text,
                     v["status"] + (f" ({v['note']})" if v["note"] else "")))
    lines = _table(rows, ["<", ">", ">", "<", ">", "<"])
    counts = {s: sum(1 for v in verdicts if (v if isinstance(v, dict) else v.as_dict())["status"] == s)
              for s in ("PASS", "FAIL", "SKIP", "GOAL")}
    tail = f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP"
    if counts["GOAL"]:
        tail += f", {counts['GOAL']} GOAL (stretch goals: shown, never failing)"
    if path:
        tail += f" (thresholds: {path})"
    if informational:
        tail += "; scaled run: verdicts are informational and do not set the exit code"
    return "\n".join(["  " + line for line in lines] + ["  " + tail])


def format_ladder(ladder: dict) -> str:
    """One row per step; each figure with its ratio against the step before."""
    steps = ladder["steps"]
    head = ["step"] + [h for _, h in LADDER_FIGURES] + ["recall"]
    rows = [tuple(head)]
    previous = None
    for step in steps:
        vals = figures(step)
        row = [step["step"]]
        for key, _ in LADDER_FIGURES:
            value = vals.get(key)
            cell = _fmt(value, "{:.1f}")
            if previous is not None and value is not None and previous.get(key):
                cell += f" ({value / previous[key]:.2f}x)"
            row.append(cell)
        row.append(fmt_recall(step.get("recall")) if step.get("recall") is not None else "-")
        rows.append(tuple(row))
        previous = vals
    title = (f"phase ladder on {ladder['preset']} (sums over batches; (r x) = ratio to the step "
             f"before, < 1 is faster)")
    if ladder.get("reference_ms") is not None:
        title += f"; reference {ladder['reference_ms']:.1f} ms"
    return "\n".join([title] + ["  " + line for line in _table(rows)])
