"""Machine limits: ``make calibrate`` measures this machine and writes its limits to its own file.

The thresholds file's entries with ``gate = "calibrated"`` (covertreex_bench.thresholds) take
their number from ``<machine dir>/<machine name>.toml``: machine dir ``$COVERTREEX_MACHINE_DIR``
or ``~/.covertreex/machines``; machine name ``$COVERTREEX_MACHINE``, else the one machine of
``~/.asv-machine.json`` (so asv and the gates agree), else the host name. No number is copied
by hand: ``covertreex calibrate`` runs each calibrated table's preset ``runs`` times and writes,
per figure, the worst run times ``MARGIN`` (for an upper limit) or divided by it (for a lower
one), with the runs, the commit, the date and the load average beside it.

``MARGIN`` is 3: the quick preset's timings on the 2-core machine kind were 2-3x higher with
three or four other jobs running than on a quiet machine (perf/README.md), and an absolute
limit should catch only a large loss (a lost audit phase is worth 2x to 50x); change of
everyday size is the per-PR gate's job (perf/compare.py).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import tomllib
from pathlib import Path

from .common import BenchError, check_writable, write_atomic

MARGIN = 3.0
DEFAULT_RUNS = 5


def machine_name() -> str:
    """This machine's name (see the module docstring for the order of the sources)."""
    if os.environ.get("COVERTREEX_MACHINE"):
        return os.environ["COVERTREEX_MACHINE"]
    try:
        machines = [k for k in json.loads((Path.home() / ".asv-machine.json").read_text())
                    if k != "version"]
    except (OSError, ValueError):
        machines = []
    return machines[0] if len(machines) == 1 else socket.gethostname()


def machine_file(name: str | None = None) -> Path:
    """The file holding the calibrated limits of machine ``name`` (default: this machine)."""
    folder = os.environ.get("COVERTREEX_MACHINE_DIR") or Path.home() / ".covertreex" / "machines"
    return Path(folder) / f"{name or machine_name()}.toml"


def read_limits(path=None) -> dict:
    """{(table, figure): limit} of a machine file (default: this machine's); {} when there is
    none. BenchError naming the file when it exists but is malformed."""
    path = Path(path) if path is not None else machine_file()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BenchError(f"machine limits file {path} is unreadable ({exc}); rerun `make calibrate`") from None
    out = {}
    for table, entries in doc.items():
        for figure, entry in (entries.items() if isinstance(entries, dict) else ()):
            limit = entry.get("calibrated") if isinstance(entry, dict) else None
            if not isinstance(limit, (int, float)) or isinstance(limit, bool):
                raise BenchError(f"machine limits file {path} [{table}.{figure}] has no number "
                                 f"'calibrated'; rerun `make calibrate`")
            out[(table, figure)] = float(limit)
    return out


def limit_of(op: str, runs: list) -> float:
    """The calibrated limit of one figure from its values ``runs`` (one per run): the worst run
    times MARGIN for <= / <, divided by MARGIN for >= / >."""
    if op in ("<=", "<"):
        return max(runs) * MARGIN
    if op in (">=", ">"):
        return min(runs) / MARGIN
    raise BenchError(f"cannot calibrate a figure with op {op!r}")


def calibrate(runs: int = DEFAULT_RUNS, thresholds_path=None, out=None, say=print) -> Path:
    """Measure every preset of a table holding a calibrated gate ``runs`` times (one build and
    query each, after a warm-up) and write the machine file; returns its path."""
    from . import bench, results, thresholds

    config = thresholds.load(thresholds_path, machine_file=os.devnull)
    gated = [t for t in config.gates if t.gate == thresholds.CALIBRATED]
    if not gated:
        raise BenchError(f"thresholds file {config.path} has no entry with gate = \"calibrated\"")
    out = Path(out) if out is not None else machine_file()
    check_writable(out, "machine limits")
    values: dict = {}
    for preset_name in sorted({p for t in gated for p in t.presets}):
        preset, _ = bench.resolve_preset(preset_name)
        for run in range(runs):
            result = bench.run_preset(preset, warm=run == 0, progress=False)
            figures = results.figures(result)
            say(f"calibrate {preset_name} run {run + 1}/{runs}: " + ", ".join(
                f"{t.figure} {figures.get(t.figure)}" for t in gated if preset_name in t.presets))
            for t in gated:
                if preset_name in t.presets and figures.get(t.figure) is not None:
                    values.setdefault((t.table, t.figure, t.op), []).append(float(figures[t.figure]))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"# Machine limits of {machine_name()}, written by `make calibrate` (covertreex calibrate "
             f"--runs {runs}) on {datetime.datetime.now().isoformat(timespec='seconds')}, commit "
             f"{commit or 'unknown'}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}.",
             f"# Each limit is the worst of the runs times (or divided by) {MARGIN:g}; do not edit by hand."]
    for (table, figure, op), vals in sorted(values.items()):
        lines += ["", f"[{table}.{figure}]", f"calibrated = {limit_of(op, vals):.6g}",
                  f"op = \"{op}\"", f"runs = [{', '.join(f'{v:.6g}' for v in vals)}]"]
    write_atomic(out, "\n".join(lines) + "\n")
    return out
