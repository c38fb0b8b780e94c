"""Saving, loading and pickling fitted trees (covertreex/persist.py): a loaded or unpickled tree
answers bit for bit as the saved one and is as immutable; every bad file raises a ValueError
naming the file and the problem; a failed save leaves no file behind."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from covertreex import CoverTree, Phases, Runtime
from covertreex import persist

from conftest import dataset, fitted, gaussian, matern_backend, rbf_backend

K = 7


@pytest.fixture(scope="module")
def points():
    return gaussian(600, 3, seed=31)


@pytest.fixture(scope="module")
def trees(points):
    """Fitted trees by case name: both Euclidean traversals, residual RBF and Matern52 with
    per-dimension lengthscales, and a residual tree with non-default runtime settings."""
    rbf = rbf_backend(points, 48)
    matern = matern_backend(points, 40, lengthscale=(0.5, 1.0, 2.0), variance=1.5)
    odd = Runtime(metric="residual_correlation", phases=Phases(float32_staging=False),
                  batch_size=64, batch_order="random", seed=7, query_block=100, query_split=3,
                  query_seeds=3, query_brute=500, threads=2, blas_threads=1)
    return {
        "euclidean-pointwise": CoverTree(Runtime()).fit(points),
        "euclidean-blocked": CoverTree(Runtime(traversal="blocked", query_block=64)).fit(points),
        "residual-rbf": CoverTree(Runtime(metric="residual_correlation")).fit(rbf),
        "residual-matern-perdim": CoverTree(Runtime(metric="residual_correlation")).fit(matern),
        "residual-settings": CoverTree(odd).fit(rbf),
    }


def _query_cases(tree):
    """(queries, predecessor_mode) pairs that cover every query path of the tree's metric."""
    if tree.runtime.metric == "euclidean":
        return [(gaussian(50, 3, seed=32), False), (None, False), (None, True)]
    return [(None, False), (None, True), (np.array([5, 3, tree.n - 1, 0, 3]), False),
            (np.arange(100, 0, -3), True)]


def assert_same_answers(a, b):
    for queries, predecessor_mode in _query_cases(a):
        ia, da = a.knn(queries, K, return_distances=True, predecessor_mode=predecessor_mode)
        ib, db = b.knn(queries, K, return_distances=True, predecessor_mode=predecessor_mode)
        np.testing.assert_array_equal(ia, ib)
        # Bitwise: the same float64 bits, infinities of padded slots included.
        np.testing.assert_array_equal(da.view(np.int64), db.view(np.int64))


def _saved(tree, tmp_path, name="tree.npz"):
    path = tmp_path / name
    tree.save(path)
    return path


CASES = ["euclidean-pointwise", "euclidean-blocked", "residual-rbf", "residual-matern-perdim",
         "residual-settings"]


@pytest.mark.parametrize("case", CASES)
def test_save_load_round_trip_answers_bitwise(trees, case, tmp_path):
    tree = trees[case]
    loaded = CoverTree.load(_saved(tree, tmp_path))
    assert loaded.runtime == tree.runtime
    assert loaded.runtime.describe() == tree.runtime.describe()
    assert loaded.build_report == tree.build_report
    assert loaded.n == tree.n
    if tree.runtime.metric == "residual_correlation":
        assert loaded.metric.backend.kernel == tree.metric.backend.kernel
        np.testing.assert_array_equal(loaded.metric.backend.inducing_ids,
                                      tree.metric.backend.inducing_ids)
    assert (loaded.layout is None) == (tree.layout is None)
    assert_same_answers(tree, loaded)


def test_path_given_as_str_is_used_as_given(trees, tmp_path):
    path = str(tmp_path / "no-suffix")
    trees["euclidean-pointwise"].save(path)
    assert os.listdir(tmp_path) == ["no-suffix"]
    assert CoverTree.load(path).n == 600


def test_save_replaces_an_existing_file(trees, tmp_path):
    path = _saved(trees["euclidean-pointwise"], tmp_path)
    trees["residual-rbf"].save(path)
    assert CoverTree.load(path).runtime.metric == "residual_correlation"
    assert os.listdir(tmp_path) == ["tree.npz"]


@pytest.mark.parametrize("case", ["euclidean-pointwise", "residual-matern-perdim"])
def test_loaded_tree_is_immutable(trees, case, tmp_path):
    loaded = CoverTree.load(_saved(trees[case], tmp_path))
    arrays = [getattr(loaded.arrays, f) for f in persist._TREE_FIELDS]
    if case.startswith("residual"):
        backend = loaded.metric.backend
        arrays += [getattr(backend, f) for f in persist._BACKEND_FIELDS]
    else:
        arrays.append(loaded.metric.data)
        arrays += [v for v in loaded.layout if isinstance(v, np.ndarray)]
    for arr in arrays:
        assert not arr.flags.writeable
    with pytest.raises(Exception):
        loaded.arrays = None


def test_saved_file_is_plain_numbers_and_json(trees, tmp_path):
    path = _saved(trees["residual-matern-perdim"], tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__meta__"].tobytes())
        assert all(npz[name].dtype.kind in "iuf" for name in npz.files)
    assert meta["format"] == "covertreex.tree" and meta["version"] == persist.VERSION
    assert meta["kernel"] == {"type": "Matern52", "lengthscale": [0.5, 1.0, 2.0],
                              "variance": 1.5}
    assert meta["runtime"]["traversal"] == "blocked"


# --- pickling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["euclidean-pointwise", "euclidean-blocked", "residual-rbf"])
def test_pickle_round_trip(trees, case):
    tree = trees[case]
    back = pickle.loads(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.runtime == tree.runtime and back.build_report == tree.build_report
    assert_same_answers(tree, back)


def test_pickle_ships_no_derived_copies(trees):
    """The pickle holds the saved form, not the layout's gathered copies of the points nor
    the residual metric's derived arrays."""
    for case in ("euclidean-pointwise", "residual-rbf"):
        tree = trees[case]
        size = len(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
        saved = sum(a.nbytes for a in persist.tree_state(tree)[1].values())
        assert saved <= size <= saved + 64 * 1024, (case, size, saved)


def test_unfitted_tree_pickles():
    tree = CoverTree(Runtime(metric="residual_correlation", seed=3))
    back = pickle.loads(pickle.dumps(tree))
    assert back.arrays is None and back.runtime == tree.runtime


# --- bad saves ------------------------------------------------------------------------------------


def test_unfitted_tree_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        CoverTree(Runtime()).save(tmp_path / "t.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["missing-dir", "parent-is-file", "is-dir"])
def test_unwritable_path_raises_naming_it(trees, tmp_path, where, monkeypatch):
    (tmp_path / "file").write_text("x")
    path = {"missing-dir": tmp_path / "nope" / "t.npz",
            "parent-is-file": tmp_path / "file" / "t.npz", "is-dir": tmp_path}[where]
    state_calls = []
    real_write = persist.write_npz
    monkeypatch.setattr(persist, "write_npz", lambda *a: state_calls.append(1) or real_write(*a))
    with pytest.raises(OSError) as info:
        trees["euclidean-pointwise"].save(path)
    assert str(path) in str(info.value)
    assert state_calls == []  # failed before any serialisation
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_raises(trees, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="ro"):
            trees["euclidean-pointwise"].save(ro / "t.npz")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(trees, tmp_path, monkeypatch):
    path = _saved(trees["euclidean-pointwise"], tmp_path)
    before = path.read_bytes()

    def half_write(fh, meta_json, arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persist, "write_npz", half_write)
    with pytest.raises(OSError, match="No space"):
        trees["residual-rbf"].save(path)
    assert os.listdir(tmp_path) == ["tree.npz"]
    assert path.read_bytes() == before


def test_interrupted_write_leaves_no_partial_file(trees, tmp_path, monkeypatch):
    def interrupted(fh, meta_json, arrays):
        fh.write(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(persist, "write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trees["euclidean-pointwise"].save(tmp_path / "t.npz")
    assert os.listdir(tmp_path) == []


# --- bad files ------------------------------------------------------------------------------------


def _entries(tree):
    meta_json, arrays = persist.tree_state(tree)
    return json.loads(meta_json), dict(arrays)


def _write(path, meta, arrays):
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        CoverTree.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.01])
def test_truncated_file(trees, tmp_path, keep):
    path = _saved(trees["residual-rbf"], tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="tree.npz.*(truncated|not a covertreex)"):
        CoverTree.load(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("levels,parents\n1,2\n")
    with pytest.raises(ValueError, match="notes.txt.*not an .npz archive"):
        CoverTree.load(path)


def test_npy_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(5))
    with pytest.raises(ValueError, match="not an .npz archive"):
        CoverTree.load(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, levels=np.arange(3), weights=np.ones((2, 2)))
    with pytest.raises(ValueError, match="foreign.npz.*no __meta__ metadata"):
        CoverTree.load(path)


def test_foreign_npz_with_object_array(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, __meta__=np.array([{"format": "covertreex.tree"}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):
        CoverTree.load(path)


def test_foreign_format_name(trees, tmp_path):
    meta, arrays = _entries(trees["euclidean-pointwise"])
    meta["format"] = "somebody.else"
    with pytest.raises(ValueError, match="not a covertreex.tree file .format 'somebody.else'"):
        CoverTree.load(_write(tmp_path / "t.npz", meta, arrays))


def test_newer_version(trees, tmp_path):
    meta, arrays = _entries(trees["euclidean-pointwise"])
    meta["version"] = persist.VERSION + 1
    with pytest.raises(ValueError, match=f"version {persist.VERSION + 1}.*reads version "
                                         f"{persist.VERSION}"):
        CoverTree.load(_write(tmp_path / "t.npz", meta, arrays))


@pytest.mark.parametrize("case, entry, bad, message", [
    ("euclidean-pointwise", "tree.child_ptr", lambda a: a[:-1], "shape"),
    ("euclidean-pointwise", "tree.levels", lambda a: a[:-1], "shape"),
    ("euclidean-pointwise", "tree.radii", lambda a: a.astype(np.float32), "float64"),
    ("euclidean-pointwise", "tree.parents", lambda a: a.astype(np.int32), "int64"),
    ("euclidean-pointwise", "points", lambda a: a[:, None, :], "shape"),
    ("euclidean-pointwise", "points", lambda a: a[:-2], "shape"),
    ("residual-rbf", "backend.v_matrix", lambda a: a[:-1], "shape"),
    ("residual-rbf", "backend.p_diag", lambda a: -a, "> 0"),
    ("residual-rbf", "backend.coords", lambda a: np.where(a > 1, np.nan, a), "NaN"),
    ("euclidean-pointwise", "tree.child_idx", lambda a: a[::-1], "child_idx"),
    ("euclidean-pointwise", "tree.parents", lambda a: np.where(a == -1, 0, a), "parents"),
    ("euclidean-pointwise", "tree.levels", lambda a: -a, "level"),
])
def test_wrong_arrays(trees, tmp_path, case, entry, bad, message):
    meta, arrays = _entries(trees[case])
    arrays[entry] = bad(np.array(arrays[entry]))
    with pytest.raises(ValueError, match=message) as info:
        CoverTree.load(_write(tmp_path / "t.npz", meta, arrays))
    assert "t.npz" in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda m, a: a.pop("tree.radii"), "missing \\['tree.radii'\\]"),
    (lambda m, a: a.update(extra=np.zeros(3)), "unexpected \\['extra'\\]"),
    (lambda m, a: m["runtime"].update(batch_order="sideways"), "batch_order"),
    (lambda m, a: m.update(n=m["n"] + 1), "shape"),
    (lambda m, a: m.update(root=-1), "root"),
    (lambda m, a: m.update(kernel={"type": "Cosine"}), "kernel"),
])
def test_wrong_metadata(trees, tmp_path, change, message):
    meta, arrays = _entries(trees["residual-rbf"])
    change(meta, arrays)
    with pytest.raises(ValueError, match=message):
        CoverTree.load(_write(tmp_path / "t.npz", meta, arrays))


def test_load_never_unpickles(trees, tmp_path, monkeypatch):
    path = _saved(trees["residual-rbf"], tmp_path)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    CoverTree.load(path)


def test_to_bytes_matches_saved_form(trees, tmp_path):
    tree = trees["euclidean-blocked"]
    data = persist.to_bytes(tree)
    assert zipfile.is_zipfile(io.BytesIO(data))
    loaded = CoverTree(**persist.read_npz(io.BytesIO(data), "bytes"))
    assert_same_answers(tree, loaded)


def test_shared_fixture_trees_round_trip(tmp_path):
    """A tree with exact duplicates (floor-level nodes) keeps its answers through a file."""
    tree = fitted("residual_correlation", "duplicates", "all-phases")
    assert dataset("residual_correlation", "duplicates").n == tree.n
    loaded = CoverTree.load(_saved(tree, tmp_path))
    np.testing.assert_array_equal(loaded.arrays.levels, tree.arrays.levels)
    assert_same_answers(tree, loaded)


@pytest.mark.parametrize("setting", ["query_split", "query_seeds", "query_brute"])
def test_a_file_written_before_a_later_setting_loads_with_its_default(trees, tmp_path, setting):
    """query_split, query_seeds and query_brute came after format version 1: a file that lacks
    one loads with its default, answering as the saved tree did."""
    tree = trees["residual-rbf"]
    meta, arrays = _entries(tree)
    del meta["runtime"][setting]
    meta["sources"] = [s for s in meta["sources"] if s[0] != setting]
    loaded = CoverTree.load(_write(tmp_path / "old.npz", meta, arrays))
    assert getattr(loaded.runtime, setting) == getattr(Runtime(metric=tree.runtime.metric), setting)
    np.testing.assert_array_equal(loaded.knn(None, 5), tree.knn(None, 5))
    meta["runtime"]["query_bloc"] = 3  # a misspelt setting is still refused
    with pytest.raises(ValueError, match="runtime settings"):
        CoverTree.load(_write(tmp_path / "bad.npz", meta, arrays))
