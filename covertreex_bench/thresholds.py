"""The one reader of the thresholds file, and the verdicts it gives.

The default file ships with the package (``covertreex_bench/thresholds.toml``, read through
importlib.resources), so ``covertreex bench --check`` judges its figures from any directory.
Schema (``version = 1``):

- a table that names ``presets`` is a gate; each of its sub-tables is one figure with
  ``op`` (required: <=, <, >=, >, ==), numbers (``audit``, ``machine``, ``issue``, ...),
  ``gate`` naming the number the verdict uses (default "audit") and an optional ``source``.
  ``gate = "calibrated"`` takes the number from this machine's file written by ``make
  calibrate`` (covertreex_bench.calibrate); without one the verdict is SKIP naming the command.
  ``stretch = true`` makes the entry a goal rather than a gate: its verdict is GOAL, noted
  "met" or "not met", and never fails a run;
  A figure name outside ``results.known_figures()`` is an error listing the known ones;
- ``[compare]`` drives perf/compare.py (covertreex_bench.gate) and the report's regression
  colours: ``min_effect`` (required, > 1: the smallest slowdown factor that fails), ``alpha``
  (the test's level, 0 < alpha < 1), ``preset``, ``rounds``, ``processes``, ``threads``,
  ``figures``.

Every consumer (bench verdicts, the pytest gate, the report, perf/compare.py) goes through
``load``, so a file one of them accepts the others accept too.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .common import BenchError

DEFAULT_RESOURCE = "thresholds.toml"
OPS = {
    "<=": lambda v, t: v <= t,
    "<": lambda v, t: v < t,
    ">=": lambda v, t: v >= t,
    ">": lambda v, t: v > t,
    "==": lambda v, t: v == t,
}
DEFAULT_GATE = "audit"
# Figures measured with --check only: recall and the single-row sample (covertreex_bench.bench).
CHECK_FIGURES = ("recall", "single_row_pairs_per_row", "single_row_sample", "blocked_over_single",
                 "single_row_mismatches")
CALIBRATED = "calibrated"


class ThresholdsError(BenchError):
    """The thresholds file is missing, unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class Threshold:
    """One gate: ``figure op limit``, where limit is the number named by ``gate``."""

    table: str
    figure: str
    op: str
    gate: str
    limits: dict        # every stated number: {"audit": ..., "issue": ..., "calibrated": ...}
    source: str = ""
    presets: tuple = ()
    stretch: bool = False  # a goal: judged and shown, never a failure

    @property
    def limit(self) -> float | None:
        """The gating number; None for a calibrated gate on an uncalibrated machine."""
        return self.limits.get(self.gate)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "presets": list(self.presets), "limit": self.limit}


@dataclass(frozen=True)
class Compare:
    """The [compare] table: how perf/compare.py measures (``rounds`` of A B, B A ... samples,
    spread over ``processes`` pairs of fresh worker processes, one a side) and what fails
    (covertreex_bench.gate.decide_paired: over the pairs' ratios of medians, Wilcoxon p < alpha
    and CI lower bound > min_effect)."""

    min_effect: float
    alpha: float = 0.01
    preset: str = "quick"
    rounds: int = 60
    processes: int = 20
    threads: int = 1
    figures: tuple = ("fit_wall_ms", "knn_wall_ms", "build_wall_ms", "query_wall_ms",
                      "traversal_ms", "whitened_block_ms", "kernel_provider_ms", "conflict_graph_ms")


@dataclass(frozen=True)
class Thresholds:
    path: str
    gates: tuple = ()
    compare: Compare | None = None
    raw: dict = field(default_factory=dict, repr=False)

    def for_preset(self, preset_name: str) -> list[Threshold]:
        """Every threshold of every table whose ``presets`` list holds ``preset_name``."""
        return [t for t in self.gates if preset_name in t.presets]


def default_path():
    """The packaged thresholds file (a Traversable; str() of it names it in messages)."""
    try:
        return resources.files("covertreex_bench").joinpath(DEFAULT_RESOURCE)
    except NotADirectoryError:
        # Python 3.11's resource reader refuses a namespace package whose path holds an entry
        # that is not a folder: what a setuptools editable install made while covertreex_bench
        # had no __init__.py maps it to. The file sits beside this module all the same.
        return Path(__file__).with_name(DEFAULT_RESOURCE)


def load(path=None, machine_file=None) -> Thresholds:
    """Read and check a thresholds file (default: the packaged one) and add this machine's
    calibrated limits (``machine_file``, default ``calibrate.machine_file()``, when it exists);
    ThresholdsError naming the file and what is wrong with it otherwise."""
    source = default_path() if path is None else Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ThresholdsError(f"thresholds file {source} does not exist") from None
    except IsADirectoryError:
        raise ThresholdsError(f"thresholds file {source} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ThresholdsError(f"cannot read thresholds file {source}: {exc}") from None
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"thresholds file {source} is not valid TOML: {exc}") from None
    from . import calibrate

    try:
        calibrated = calibrate.read_limits(machine_file)
    except BenchError as exc:
        raise ThresholdsError(str(exc)) from None
    return parse(config, str(source), calibrated)


def parse(config: dict, path: str = "<thresholds>", calibrated: dict | None = None) -> Thresholds:
    """Check a parsed thresholds document; ThresholdsError on the first malformed entry.
    ``calibrated``: {(table, figure): limit} of this machine (``calibrate.read_limits``)."""
    version = config.get("version", 1)
    if version != 1:
        raise ThresholdsError(f"thresholds file {path}: version {version!r} is not supported (1 is)")
    gates = []
    for name, table in config.items():
        if isinstance(table, dict) and "presets" in table:
            gates.extend(_table(path, name, table, calibrated or {}))
    compare = _compare(path, config["compare"]) if isinstance(config.get("compare"), dict) else None
    return Thresholds(path, tuple(gates), compare, config)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(path: str, name: str, table: dict, calibrated: dict) -> list[Threshold]:
    from .results import known_figures

    presets = table["presets"]
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise ThresholdsError(f"thresholds file {path} [{name}]: presets must be a list of names")
    out = []
    known = known_figures()
    for figure, entry in table.items():
        if not isinstance(entry, dict):
            continue
        where = f"thresholds file {path} [{name}.{figure}]"
        if figure not in known:
            raise ThresholdsError(f"{where}: unknown figure {figure!r}; known figures: {', '.join(known)}")
        op = entry.get("op")
        if op not in OPS:
            raise ThresholdsError(f"{where}: op must be one of {' '.join(OPS)}, got {op!r}")
        gate = entry.get("gate", DEFAULT_GATE)
        limits = {key: float(value) for key, value in entry.items() if _number(value)}
        if CALIBRATED in limits:
            raise ThresholdsError(f"{where}: a calibrated number is written by `make calibrate` "
                                  f"into the machine's file, not into the thresholds file")
        if (name, figure) in calibrated:
            limits[CALIBRATED] = calibrated[(name, figure)]
        if gate not in limits and gate != CALIBRATED:
            raise ThresholdsError(f"{where}: gate = {gate!r} names no number of the entry "
                                  f"(it has {', '.join(limits) or 'none'})")
        stretch = entry.get("stretch", False)
        if not isinstance(stretch, bool):
            raise ThresholdsError(f"{where}: stretch must be true or false, got {stretch!r}")
        out.append(Threshold(name, figure, op, gate, limits, str(entry.get("source", "")),
                             tuple(presets), stretch))
    return out


def _compare(path: str, table: dict) -> Compare:
    where = f"thresholds file {path} [compare]"
    effect = table.get("min_effect")
    if not _number(effect) or effect <= 1:
        raise ThresholdsError(f"{where}: min_effect must be a number > 1, got {effect!r}")
    settings = {"min_effect": float(effect)}
    alpha = table.get("alpha", Compare.alpha)
    if not _number(alpha) or not 0 < alpha < 1:
        raise ThresholdsError(f"{where}: alpha must be a number between 0 and 1, got {alpha!r}")
    settings["alpha"] = float(alpha)
    unknown = sorted(set(table) - {"min_effect", "alpha", "preset", "rounds", "processes", "threads",
                                   "figures"})
    if unknown:
        raise ThresholdsError(f"{where}: unknown key(s) {', '.join(unknown)}; known: min_effect, "
                              f"alpha, preset, rounds, processes, threads, figures")
    for key, kind in (("preset", str), ("rounds", int), ("processes", int), ("threads", int)):
        if key in table:
            value = table[key]
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
                raise ThresholdsError(f"{where}: {key} must be a "
                                      f"{'positive integer' if kind is int else 'name'}, got {value!r}")
            settings[key] = value
    if settings.get("processes", Compare.processes) < 2:
        raise ThresholdsError(f"{where}: processes must be >= 2 (the gate compares pairs of "
                              f"processes), got {settings['processes']}")
    if "figures" in table:
        figures = table["figures"]
        if not isinstance(figures, list) or not figures or not all(isinstance(f, str) for f in figures):
            raise ThresholdsError(f"{where}: figures must be a non-empty list of figure names")
        unknown = [f for f in figures if f not in Compare.figures]
        if unknown:
            raise ThresholdsError(f"{where}: unknown figure(s) {', '.join(unknown)}; the gate "
                                  f"measures {', '.join(Compare.figures)}")
        settings["figures"] = tuple(figures)
    return Compare(**settings)


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    table: str
    figure: str
    value: float | None
    op: str
    limit: float | None  # None: a calibrated gate on an uncalibrated machine (SKIP)
    gate: str
    limits: dict
    status: str          # "PASS", "FAIL", "SKIP" (figure not measured, or no limit here) or
                         # "GOAL" (a stretch goal, note "met" or "not met"; never a failure)
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def message(self) -> str:
        """One line naming the figure, its value and its threshold."""
        others = ", ".join(f"{k} {v:g}" for k, v in self.limits.items() if k != self.gate)
        value = "not measured" if self.value is None else f"{self.value:.6g}"
        limit = "(none)" if self.limit is None else f"{self.limit:g}"
        return (f"{self.figure} = {value}, threshold {self.op} {limit} "
                f"({self.gate}, table {self.table}{'; ' + others if others else ''}): {self.status}"
                + (f" ({self.note})" if self.note else ""))


def passes(op: str, value: float, limit: float) -> bool:
    return OPS[op](value, limit) and not math.isnan(value)


def evaluate(values: dict, thresholds) -> list[Verdict]:
    """One verdict per threshold over ``values`` ({figure: number}, results.figures() of a
    run); a figure the run did not measure is SKIP, never PASS."""
    out = []
    for t in thresholds:
        value = values.get(t.figure)
        if t.limit is None:
            from .calibrate import machine_name

            out.append(Verdict(t.table, t.figure, None if value is None else float(value), t.op, None,
                               t.gate, t.limits, "SKIP",
                               f"no calibrated limit for machine {machine_name()}: run `make calibrate`"))
            continue
        if value is None:
            if t.figure in CHECK_FIGURES or "reference" in t.figure or "ckdtree" in t.figure:
                note = "run with --check"
            elif t.figure.endswith("_dominated") and not values.get("dominated_batches"):
                note = "no dominated batches"
            else:
                note = "not measured in this run"
            out.append(Verdict(t.table, t.figure, None, t.op, t.limit, t.gate, t.limits, "SKIP", note))
            continue
        value = float(value)
        ok = passes(t.op, value, t.limit)
        status, note = ("GOAL", "met" if ok else "not met") if t.stretch else ("PASS" if ok else "FAIL", "")
        out.append(Verdict(t.table, t.figure, value, t.op, t.limit, t.gate, t.limits, status, note))
    return out


def failed(verdicts) -> list[Verdict]:
    return [v for v in verdicts if v.status == "FAIL"]
