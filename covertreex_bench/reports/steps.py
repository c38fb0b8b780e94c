"""Which commit changed a figure, by how much, on which machine: change points per series.

Each series (one benchmark on one machine in one environment, ``trends.series_name``) is taken
in commit order, one value per commit, and split into constant levels by asv's own change-point
detection (``asv.step_detect.detect_steps``, the Potts-model fit behind ``asv publish``'s
regression list), weighted as asv weights them: by the inverse width of each value's 99 %
interval from its samples (``asv._stats.get_weight``), the median weight where a value has
none. At every level change the first commit of the new level is the one that changed the
figure; the table gives the ratio of the two levels' medians with its 95 % bootstrap interval
and the one-sided Mann-Whitney p (covertreex_bench.gate.decide over the per-commit values of
each level), and the commit's date and subject from git.
"""

from __future__ import annotations

import math

import pandas as pd

from .html import cell, empty_block, fmt, short, table
from .loaders import git_commit_subjects

SECTIONS = (("steps-table", "table"),)
# Fewer commits than this in a series cannot show a level change on both sides.
MIN_COMMITS = 4
# Levels hold a handful of commits each: with 5 and 3 values the smallest one-sided
# Mann-Whitney p is 1/56 = 0.018, so the step table tests at 0.05, not the gate's 0.01.
STEP_ALPHA = 0.05


def series_levels(values: list, ci_99: list) -> list[tuple[int, int]]:
    """[(first, end)] index ranges of the constant levels of ``values`` (one float per commit,
    in commit order), found by asv.step_detect with asv's weights from ``ci_99`` [(low, high)]."""
    from asv._stats import get_weight
    from asv.step_detect import detect_steps

    weights = [get_weight({"ci_99_a": a, "ci_99_b": b}) if not (math.isnan(a) or math.isnan(b)) else None
               for a, b in ci_99]
    return [(left, right) for left, right, *_ in detect_steps(list(values), weights)]


def step_changes(points: pd.DataFrame, order: list) -> list[dict]:
    """Every level change of every series: {figure, series, machine, env, commit, before,
    after, ratio, ci_low, ci_high, p_value, status, unit}; status "slower" when the ratio's
    interval lies above 1 and Mann-Whitney p < STEP_ALPHA, "faster" when it lies below 1, else
    "within noise"."""
    from ..gate import decide

    pos = {c: i for i, c in enumerate(order)}
    out = []
    for (figure, series), g in points.groupby(["figure", "series"], sort=True):
        g = g.assign(x=g["commit"].map(pos)).sort_values(["x", "date"]).groupby("x").tail(1)
        g = g[g["value"].notna()]
        if len(g) < MIN_COMMITS:
            continue
        values = g["value"].tolist()
        levels = series_levels(values, g["ci_99"].tolist())
        for (b0, b1), (a0, a1) in zip(levels, levels[1:]):
            d = decide(figure, values[b0:b1], values[a0:a1], min_effect=1.0, alpha=STEP_ALPHA)
            if d.ratio is None:
                continue
            slower = d.status == "FAIL"
            faster = d.ci_high is not None and d.ci_high < 1.0
            row = g.iloc[a0]
            out.append({"figure": figure, "series": series, "machine": row["machine"],
                        "env": row["env"], "commit": row["commit"], "before": d.base_median,
                        "after": d.head_median, "ratio": d.ratio, "ci_low": d.ci_low,
                        "ci_high": d.ci_high, "p_value": d.p_value, "unit": row["unit"],
                        "status": "slower" if slower else "faster" if faster else "within noise"})
    return out


def section_steps(points: pd.DataFrame, order: list, factor: float) -> str:
    """The step-change table (one row per level change), or one line naming what fills it."""
    import importlib.util

    if importlib.util.find_spec("asv") is None:  # asv is a dev extra, not a bench one
        return empty_block("steps-table", "No change-point detection: it uses asv's "
                           "asv.step_detect; pip install asv (make venv installs it).", "table")
    changes = step_changes(points, order) if not points.empty else []
    if not changes:
        return empty_block("steps-table", f"No level change in any series of at least {MIN_COMMITS} "
                           "commits: run `make asv` on more commits (or `asv run NEW` on the "
                           "benchmark box) to build a history.", "table")
    info = git_commit_subjects(c["commit"] for c in changes)
    rows = []
    for c in changes:
        date, subject = info.get(c["commit"], ("(not in this repository)", ""))
        beyond = c["ratio"] > factor or c["ratio"] < 1 / factor
        cls = {"slower": "bad", "faster": "good"}.get(c["status"], "") if beyond else ""
        rows.append([c["figure"], c["machine"], c["series"], short(c["commit"]), date, subject,
                     f"{fmt(c['before'])} → {fmt(c['after'])} {c['unit']}",
                     cell(f"×{c['ratio']:.3f} ({c['ci_low']:.3f}-{c['ci_high']:.3f})", cls,
                          f"Mann-Whitney p={c['p_value']:.2g}"), cell(c["status"], cls)])
    return table("steps-table", ["figure", "machine", "series", "commit", "date", "subject",
                                 "level before → after", "ratio (95% CI)", "verdict"], rows,
                 caption="Change points per series (asv.step_detect), each series one machine and "
                         "environment; slower / faster: the ratio's 95% interval above / below 1; "
                         f"red / green beyond {factor:g} / 1/{factor:g}")
