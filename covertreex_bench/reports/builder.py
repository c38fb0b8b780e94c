"""Build the static HTML report: one self-contained ``index.html`` (inline CSS and SVG, no
script, no request of any kind) plus copies of the pyinstrument pages under ``profiles/``.

One module per group of sections (``trends``, ``steps``, ``scaling``, ``runs``, ``profiles``,
``environments``); each declares the ``data-section`` ids it writes, and ``SECTIONS`` lists them
all in page order.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..common import write_atomic
from . import environments, profiles, runs, scaling, steps, trends
from .html import cell, table
from .loaders import Inputs, load_all
from .templates import CSS, page

# data-section ids of every chart and table, with their kind, in page order.
SECTIONS = (*trends.SECTIONS, *steps.SECTIONS, *scaling.SECTIONS, *runs.SECTIONS, *profiles.SECTIONS,
            *environments.SECTIONS, ("inputs-table", "table"))


def section_inputs(inputs: Inputs) -> str:
    rows = [[kind, path, cell("read", "pass"), note] for kind, path, note in inputs.read]
    rows += [[kind, path, cell("skipped", "fail"), reason] for kind, path, reason in inputs.skipped]
    rows += [[kind, "–", cell("none", "skip"), why] for kind, why in inputs.missing.items()]
    return table("inputs-table", ["input", "path", "status", "note"], rows,
                 caption="Every input looked for", empty="No input was given.")


# --------------------------------------------------------------------------- the page


def render(inputs: Inputs, out_dir: Path, *, base: str | None = None, title: str = "covertreex performance report") -> str:
    envs = environments.Environments()
    hrefs = profiles.copy_profiles(inputs, out_dir) if inputs.profiles else {}
    points = trends.trend_points(inputs, envs)
    order = trends.commit_order(points, base)
    if not inputs.runs.empty:
        for _, r in inputs.runs.iterrows():
            environments.bench_env(envs, r)
    blocks = [
        ("trends", "Trends per commit", trends.section_trends(points, order, inputs)),
        ("ladder", "Phase ladder", trends.section_ladder(inputs)),
        ("regressions", "Regressions", trends.section_regressions(points, order, inputs.factor, base)),
        ("steps", "Which commit changed what", steps.section_steps(points, order, inputs.factor)),
        ("scaling", "Scaling with n", scaling.section_scaling(inputs, envs)),
        ("verdicts", "Audit thresholds", runs.section_verdicts(inputs, envs)),
        ("gate", "Gate decisions", runs.section_gate(inputs)),
        ("telemetry", "Telemetry logs", runs.section_telemetry(inputs)),
        ("profiles", "Profiles, Python callouts and GIL", profiles.section_profiles(inputs, hrefs)),
    ]
    blocks.append(("environment", "Machines and environments",
                   environments.section_environment(envs, inputs)))
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
    write_atomic(index, html)
    return index




__all__ = ["SECTIONS", "build_report", "render", "CSS"]
