"""make calibrate (covertreex_bench.calibrate): per-machine limits measured here, never copied by
hand, read by the thresholds file's gate = "calibrated" entries."""

from __future__ import annotations

import time

import pytest

from covertreex_bench import calibrate, thresholds
from covertreex_bench.cli import main


@pytest.fixture
def machine_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COVERTREEX_MACHINE_DIR", str(tmp_path / "machines"))
    monkeypatch.setenv("COVERTREEX_MACHINE", "testbox")
    return tmp_path / "machines"


def test_uncalibrated_machine_skips_naming_the_command(machine_dir):
    gates = [t for t in thresholds.load().for_preset("quick") if t.gate == thresholds.CALIBRATED]
    assert gates, "the quick table has calibrated gates"
    (verdict,) = thresholds.evaluate({gates[0].figure: 1.0}, gates[:1])
    assert verdict.status == "SKIP" and "machine testbox: run `make calibrate`" in verdict.note


def test_calibrate_writes_this_machines_limits(machine_dir, capsys):
    assert main(["calibrate", "--runs", "2"]) == 0
    path = machine_dir / "testbox.toml"
    assert str(path) in capsys.readouterr().out
    limits = calibrate.read_limits(path)
    assert {("quick", "build_wall_ms"), ("quick", "query_wall_ms"), ("quick", "tile_share_of_traversal")} <= set(limits)
    text = path.read_text()
    assert "written by `make calibrate`" in text and "runs = [" in text
    config = thresholds.load()
    build = next(t for t in config.for_preset("quick") if t.figure == "build_wall_ms")
    assert build.limit == limits[("quick", "build_wall_ms")] > 0
    # A calibrated machine judges the figure instead of skipping it.
    (verdict,) = thresholds.evaluate({"build_wall_ms": build.limit * 2}, [build])
    assert verdict.status == "FAIL"


def test_limit_is_the_worst_run_with_the_margin():
    assert calibrate.limit_of("<=", [100.0, 120.0, 110.0]) == 120.0 * calibrate.MARGIN
    assert calibrate.limit_of(">=", [0.8, 0.7, 0.9]) == pytest.approx(0.7 / calibrate.MARGIN)


def test_calibrate_bad_output_exits_2_at_once(machine_dir, capsys):
    start = time.perf_counter()
    assert main(["calibrate", "--out", "/proc/limits.toml"]) == 2
    assert "cannot be written" in capsys.readouterr().err
    assert time.perf_counter() - start < 5


def test_malformed_machine_file_is_an_error_naming_it(machine_dir):
    machine_dir.mkdir()
    (machine_dir / "testbox.toml").write_text("[quick.build_wall_ms]\ncalibrated = 'fast'\n")
    with pytest.raises(thresholds.ThresholdsError, match="testbox.toml.*rerun `make calibrate`"):
        thresholds.load()
