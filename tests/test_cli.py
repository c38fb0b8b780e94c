"""The `covertreex` command: help, one-line errors with exit status 2, and the bench JSON / log.

Bench runs use the undocumented ``--n`` option (a scaled-down copy of the preset, marked
``"scaled": true`` in the JSON) so that they take seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from covertreex_bench.cli import main
from covertreex.telemetry import read_jsonl

JSON_FIELDS = (
    "preset", "metric", "n", "d", "k", "queries", "phases", "build_wall_ms", "query_wall_ms",
    "recall", "reference_ms", "summary", "verdicts", "environment", "git_commit", "scaled",
    "warmup_ms", "queries_per_s", "repeat", "peak_rss_mb", "reference_sampling",
    "single_row_mismatches", "dgemm_gflops_rounds",
)
# result["query"]: the query-phase figures the report and asv read (covertreex_bench.results).
QUERY_FIELDS = (
    "pairs_per_row", "brute_pairs_per_row", "pairs_over_brute", "tile_ms", "tile_gflops",
    "dgemm_gflops", "gemm_share", "single_row_pairs_per_row", "single_row_sample",
    "blocked_over_single",
)
SUMMARY_FIELDS = (
    "traversal_ms_sum", "traversal_ms_median", "traversal_ms_median_dominated",
    "whitened_block_ms_sum", "kernel_provider_ms_median", "conflict_graph_ms_median_dominated",
    "pairwise_not_reused_after_first", "tile_share_of_traversal", "batches", "dominated_batches",
)
ENV_FIELDS = ("python", "numpy", "numba", "scipy", "threadpools", "numba_threads", "cpu_model", "hostname")


@pytest.fixture
def restore_threads():
    """The thread guard sets *_NUM_THREADS and Numba's thread count: undo both after the test."""
    saved = dict(os.environ)
    threads = numba.get_num_threads()
    yield
    os.environ.clear()
    os.environ.update(saved)
    numba.set_num_threads(threads)


def _one_error_line(capsys, *fragments):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{captured.err}"
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- help ----------------------------------------------------------------------------------------


def test_top_level_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("bench", "diagnostics", "profile", "report"):
        assert command in out


def test_bench_help_teaches(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--preset", "--phases", "--repeat", "--check", "--json", "--log", "--threads",
                 "examples:", "covertreex bench --preset quick --check", "ladder",
                 "OMP_NUM_THREADS", "never overridden", "exit status", "gold-d3", "euclid-32k"):
        assert text in out, text
    assert "--n " not in out  # the scaling option stays undocumented


def test_diagnostics_help(capsys):
    assert main(["diagnostics", "--help"]) == 0
    out = capsys.readouterr().out
    assert "conflict_pairwise_reused=0" in out and "examples:" in out


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "covertreex_bench", "bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "covertreex bench" in proc.stdout


# --- errors --------------------------------------------------------------------------------------


def test_unknown_preset_is_one_line_exit_2(capsys):
    assert main(["bench", "--preset", "gold-d5"]) == 2
    _one_error_line(capsys, "covertreex bench: error:", "unknown preset 'gold-d5'", "quick")


@pytest.mark.parametrize("argv, fragment", [
    (["bench", "--preset", "quick", "--phases", "block_gemm=2"], "must be 0 or 1"),
    (["bench", "--preset", "quick", "--phases", "warp_drive=1"], "unknown phase 'warp_drive'"),
    (["bench", "--preset", "quick", "--repeat", "0"], "positive integer"),
    (["bench", "--preset", "quick", "--repeat", "x"], "positive integer"),
    (["bench", "--preset", "quick", "--threads", "-1"], "positive integer"),
    (["bench", "--preset", "quick", "--frobnicate"], "unrecognized arguments"),
    (["bench"], "--preset"),
    (["bench-all"], "invalid choice"),
    ([], "COMMAND"),
])
def test_bad_requests_are_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    _one_error_line(capsys, fragment)


def test_bad_paths_are_one_line_exit_2(tmp_path, capsys):
    assert main(["bench", "--preset", "quick", "--json", str(tmp_path)]) == 2
    _one_error_line(capsys, "--json", "is a directory")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--preset", "quick", "--log", str(blocker / "x.jsonl")]) == 2
    _one_error_line(capsys, "--log", "cannot create folder")
    assert main(["bench", "--preset", "quick", "--thresholds", str(tmp_path / "none.toml")]) == 2
    _one_error_line(capsys, "does not exist")
    bad = tmp_path / "bad.toml"
    bad.write_text('[quick]\npresets = ["quick"]\n[quick.recall]\nop = "~"\naudit = 1.0\n')
    assert main(["bench", "--preset", "quick", "--thresholds", str(bad)]) == 2
    _one_error_line(capsys, "op must be one of")


@pytest.mark.parametrize("text, fragment", [
    ('[quick\npresets = ["quick"]\n', "is not valid TOML"),
    ('[quick]\npresets = ["quick"]\n[quick.recall]\nop = ">="\naudit = 1.0\ngate = "issue"\n',
     "gate = 'issue' names no number"),
    # A misspelled figure is an error listing the known ones, never SKIP (not measured).
    ('[quick]\npresets = ["quick"]\n[quick.recal]\nop = ">="\naudit = 1.0\n',
     "unknown figure 'recal'; known figures: batches"),
    ('[quick]\npresets = ["quick"]\n[quick.build_wall_ms]\nop = "<="\ncalibrated = 9.0\n',
     "written by `make calibrate`"),
    ('[compare]\nmin_effect = 1.2\nfigures = ["fit_wall"]\n', "unknown figure(s) fit_wall"),
    ('[compare]\nmin_effect = 1.2\nslowdown_factor = 1.5\n', "unknown key(s) slowdown_factor"),
    ('[quick]\npresets = "quick"\n', "presets must be a list"),
    ('[compare]\nmin_effect = "fast"\n', "min_effect must be a number > 1"),
    ('[compare]\nmin_effect = 1.2\nalpha = 2\n', "alpha must be a number between 0 and 1"),
    ('[compare]\nmin_effect = 1.2\nprocesses = 1\n', "processes must be >= 2"),
    ('version = 2\n', "version 2 is not supported"),
])
def test_malformed_thresholds_file_is_one_line_exit_2(tmp_path, capsys, text, fragment):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["bench", "--preset", "quick", "--thresholds", str(bad)]) == 2
    _one_error_line(capsys, "covertreex bench: error:", str(bad), fragment)


def test_unreadable_thresholds_path_is_one_line_exit_2(tmp_path, capsys):
    assert main(["bench", "--preset", "quick", "--thresholds", str(tmp_path)]) == 2
    _one_error_line(capsys, str(tmp_path), "is a directory")


def test_bad_phase_environment_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("COVERTREEX_PHASE_BLOCK_GEMM", "maybe")
    assert main(["bench", "--preset", "quick"]) == 2
    _one_error_line(capsys, "COVERTREEX_PHASE_BLOCK_GEMM")


# --- profile and report ------------------------------------------------------------------------


@pytest.mark.parametrize("command, text", [
    ("profile", "--preset"), ("report", "--asv"),
])
def test_profile_and_report_parse_their_own_arguments(command, text, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"covertreex {command}" in out and text in out


def test_report_with_nothing_to_report_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no asv_bench/results, out/gate, out/bench, profiling/out here
    assert main(["report", "--quiet"]) == 2
    line = _one_error_line(capsys, "covertreex report: error: nothing to report")
    for option in ("--asv", "--gate", "--bench", "--logs", "--profiles"):
        assert option in line, option
    assert not (tmp_path / "reports").exists()


def test_bench_outside_the_repository_prints_verdicts(tmp_path):
    """From an empty folder: the packaged thresholds file judges the run."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "covertreex_bench", "bench", "--preset", "quick",
                           "--n", "300", "--check", "--quiet", "--threads", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "[quick] recall" in proc.stdout and "PASS" in proc.stdout
    thresholds = proc.stdout.split("(thresholds: ", 1)[1].split(")", 1)[0]
    assert Path(thresholds).name == "thresholds.toml"
    assert Path(thresholds).parent.name == "covertreex_bench"
    assert list(tmp_path.iterdir()) == []  # it wrote nothing where it ran


# --- bench runs (scaled down) --------------------------------------------------------------------


def test_bench_json_and_log(tmp_path, capsys, restore_threads):
    out, log = tmp_path / "out" / "quick.json", tmp_path / "quick.jsonl"
    rc = main(["bench", "--preset", "quick", "--n", "600", "--check", "--repeat", "2",
               "--json", str(out), "--log", str(log), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err  # scaled runs never fail on thresholds
    for text in ("build wall", "query wall", "queries/s", "recall", "traversal_ms",
                 "whitened_block_ms", "kernel_provider_ms", "conflict_graph_ms", "median dominated",
                 "PASS", "SCALED"):
        assert text in captured.out, text
    data = json.loads(out.read_text())
    for field in JSON_FIELDS:
        assert field in data, field
    for field in SUMMARY_FIELDS:
        assert field in data["summary"], field
    for field in QUERY_FIELDS:
        assert data["query"][field] is not None, field
    assert data["reference_sampling"] is None and data["peak_rss_mb"] > 0
    for text in ("pairs/row", "GEMM share", "blocked/single", "peak RSS"):
        assert text in captured.out, text
    for field in ENV_FIELDS:
        assert field in data["environment"], field
    assert data["scaled"] is True and data["preset"] == "quick@n=600" and data["n"] == 600
    assert data["metric"] == "residual_correlation" and data["k"] == 50
    assert data["repeat"] == 2 and len(data["build_wall_ms_runs"]) == 2
    assert data["recall"] == 1.0 and data["reference_ms"] > 0
    assert data["phases"]["block_gemm"] is True and data["phases_label"] == "all"
    assert data["git_commit"] is None or len(data["git_commit"]) == 40
    verdicts = {v["figure"]: v for v in data["verdicts"]}
    assert "recall" in verdicts and verdicts["recall"]["status"] == "PASS"
    for v in data["verdicts"]:
        assert v["status"] in ("PASS", "FAIL", "SKIP") and "limit" in v and "limits" in v
    records = read_jsonl(log)  # every record validates
    kinds = [r["kind"] for r in records]
    assert kinds.count("build") == 2 and kinds.count("query") == 2
    assert all(r["preset"] == "quick@n=600" for r in records)
    assert [r["recall"] for r in records if r["kind"] == "query"] == [1.0, 1.0]
    assert main(["diagnostics", str(log)]) == 0


def test_bench_without_check_has_null_recall(tmp_path, capsys, restore_threads):
    out = tmp_path / "e.json"
    rc = main(["bench", "--preset", "euclid-32k", "--n", "500", "--json", str(out), "--quiet",
               "--phases", "all", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["recall"] is None and data["reference_ms"] is None
    assert data["metric"] == "euclidean" and data["runtime"]["threads"] == 1
    skipped = [v for v in data["verdicts"] if v["figure"] == "recall"]
    assert skipped and skipped[0]["status"] == "SKIP"


def test_bench_ladder_has_one_object_per_step(tmp_path, capsys, restore_threads):
    from covertreex.phases import Phases

    out = tmp_path / "ladder.json"
    rc = main(["bench", "--preset", "quick", "--n", "300", "--phases", "ladder", "--check",
               "--json", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    data = json.loads(out.read_text())
    labels = [label for label, _ in Phases.ladder()]
    assert [s["step"] for s in data["steps"]] == labels
    for step, (_, phases) in zip(data["steps"], Phases.ladder()):
        assert step["phases"] == phases.as_dict()
        assert step["recall"] == 1.0
        assert "build_wall_ms" in step and "summary" in step
    assert "environment" in data and "git_commit" in data and data["reference_sampling"] is None
    assert all(step["query"]["single_row_sample"] and step["peak_rss_mb"] for step in data["steps"])
    for label in labels:
        assert label in captured.out
    assert "x)" in captured.out  # ratios against the step before
