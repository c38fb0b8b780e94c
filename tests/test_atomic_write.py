"""The harness's one file writer (covertreex_bench.common.write_atomic): concurrent writers of
one path never fail and a reader never sees a partial file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from covertreex_bench.common import write_atomic

# Each writer replaces the file with a ~400 kB JSON document naming itself, over and over.
WRITER = """
import json, sys
from covertreex_bench.common import write_atomic
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    write_atomic(path, json.dumps({"writer": name, "i": i, "pad": [name * 8] * 20000}))
"""


def test_concurrent_writers_and_a_reader(tmp_path):
    path = tmp_path / "out" / "figures.json"
    write_atomic(path, json.dumps({"writer": "init"}))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "150"],
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    reads, seen = 0, set()
    while any(w.poll() is None for w in writers):
        doc = json.loads(path.read_text(encoding="utf-8"))  # a partial file would not parse
        seen.add(doc["writer"])
        reads += 1
    for w in writers:
        assert w.wait() == 0, w.stderr.read()
    assert json.loads(path.read_text(encoding="utf-8"))["writer"] in {"a", "b"}
    assert reads > 10 and seen & {"a", "b"}, (reads, seen)
    assert [p.name for p in path.parent.iterdir()] == ["figures.json"]  # no temporary left over


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "figures.json"
    write_atomic(path, "old")

    with pytest.raises(TypeError):
        write_atomic(path, 42)  # not text: fails while writing the temporary
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["figures.json"]


def test_unwritable_target_raises_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    start = time.perf_counter()
    with pytest.raises(OSError):
        write_atomic(blocker / "x.json", "{}")
    assert time.perf_counter() - start < 1
