"""perf/gate_trials.py's plants still apply to today's sources: each patch finds its anchors
once, changes the file and leaves valid Python. A plant whose anchor moved would otherwise
surface only when somebody next proves the gate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gate_trials", ROOT / "perf" / "gate_trials.py")
trials = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trials)

PATCHES = [(name, rel, patch) for plants in (trials.PLANTS, trials.BASE_PLANTS)
           for name, files in plants.items() for rel, patch in files.items()]


@pytest.mark.parametrize("name, rel, patch", PATCHES, ids=[f"{n}:{r}" for n, r, _ in PATCHES])
def test_every_plant_applies_to_the_current_sources(name, rel, patch):
    source = (ROOT / rel).read_text()
    planted = patch(source)
    assert planted != source
    compile(planted, rel, "exec")


def test_every_planted_scenario_has_an_expected_verdict():
    assert set(trials.PLANTS) | set(trials.BASE_PLANTS) | {"aa-self"} == set(trials.EXPECT)
    assert set(trials.BASE_PLANTS) <= set(trials.PLANTS)
