"""`covertreex bench --dask`: bad specs fail fast; a run on a LocalCluster records the workers, the
bytes each holds and the speed-up, and its recall and query figures are the cluster's."""

from __future__ import annotations

import json

import pytest

from covertreex_bench.cli import main


@pytest.mark.parametrize("spec, fragment", [
    ("local:0", "expected local:N (N >= 1 worker processes)"),
    ("somewhere", "or a scheduler address such as tcp://host:8786"),
])
def test_a_bad_dask_spec_is_one_line_exit_2(capsys, spec, fragment):
    assert main(["bench", "--preset", "quick", "--dask", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "--dask" in err[0]


def test_dask_with_a_ladder_is_refused_before_any_work(capsys):
    assert main(["bench", "--preset", "quick", "--phases", "ladder", "--dask", "local:1"]) == 2
    assert "cannot be combined with --phases ladder" in capsys.readouterr().err


def test_bench_on_a_local_cluster_records_workers_bytes_and_speedup(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "dask.json"
    code = main(["bench", "--preset", "quick", "--n", "1500", "--check", "--quiet",
                 "--dask", "local:2", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    dask = result["dask"]
    assert len(dask["workers"]) == 2 and dask["threads_per_worker"] == [1]
    # Every worker holds the whole tree (V alone is n x m float64).
    v_bytes = 1500 * 256 * 8
    assert all(b > v_bytes for b in dask["bytes_per_worker"].values())
    assert result["recall"] == 1.0
    assert result["query_wall_ms"] == dask["cluster_query_ms"][0]
    # The local workers start without Dask's MALLOC_TRIM_THRESHOLD_ (dask_bench.UNTRIMMED).
    assert dask["malloc_trim_threshold"] == {w: None for w in dask["workers"]}
    assert dask["query_speedup_vs_local"] == pytest.approx(
        dask["local_query_ms"][0] / dask["cluster_query_ms"][0])
    # The queries' telemetry was gathered from the workers' blocks.
    assert result["query"]["whitened_block_ms"] > 0
    assert "dask           2 worker(s)" in capsys.readouterr().out


def _dask_entry(trims):
    return {"workers": list(trims), "bytes_per_worker": {w: 2**20 for w in trims},
            "cluster_query_ms": [12.0], "local_query_ms": [10.0], "query_speedup_vs_local": 0.83,
            "malloc_trim_threshold": trims}


def test_the_summary_notes_workers_that_run_with_dasks_trim_threshold():
    from covertreex_bench.console import dask_lines

    untrimmed = dask_lines(_dask_entry({"tcp://a:1": None, "tcp://b:1": None}))
    assert len(untrimmed) == 1 and "2 worker(s)" in untrimmed[0]
    trimmed = dask_lines(_dask_entry({"tcp://a:1": "65536", "tcp://b:1": None}))
    assert len(trimmed) == 2
    assert "MALLOC_TRIM_THRESHOLD_=65536" in trimmed[1] and "Worker memory settings" in trimmed[1]
