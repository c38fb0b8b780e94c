"""Check the compressed-cover-tree invariants of docs/design.md, "Tree invariants", on a built tree.

``check_invariants(tree_arrays, distance_matrix_fn)`` returns one message per violated invariant
(an empty list when the tree is valid); ``assert_invariants`` raises them as one AssertionError.

The checks, for node v with parent u = parents[v]:
- structure: exactly one root (``parents == -1`` at ``root`` only), parents in range, every node
  reachable from the root, the CSR children (``child_ptr``, ``child_idx``) equal to the children
  the parents imply, ``min_id_below[v]`` the smallest id in the subtree of v, levels >= floor_level;
- covering: levels[v] < levels[u] and d(v, u) <= 2**(levels[v] + 1);
- separation: for every level l > floor_level the nodes with levels >= l, and the root, are
  pairwise more than 2**l apart;
- radius: radii[v] >= d(v, w) for every descendant w.

Distances come from ``distance_matrix_fn(rows, cols)``, which maps two int64 id arrays to their
(len(rows), len(cols)) float64 distance matrix. The checks cost O(n^2) distances in the worst
case, meant for trees of a few thousand points.
"""

from __future__ import annotations

import numbers

import numpy as np

# Covering and radius bounds get an absolute slack as well as rtol, so that distances that should
# be 0 (duplicates) but come out at round-off size still pass.
_ATOL = 1e-12
# Rows of the separation distance matrix evaluated at once.
_SEPARATION_ENTRIES = 1 << 20
_EXAMPLES = 5


def check_invariants(tree_arrays, distance_matrix_fn, rtol=1e-9) -> list[str]:
    """Return the violated invariants of ``tree_arrays`` (a ``TreeArrays``) as messages.

    distance_matrix_fn(rows (r,) int64, cols (c,) int64) -> (r, c) float64 distances between
    dataset ids. rtol relaxes every distance bound by that relative amount.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 <= rtol < 1:
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
    arrays, problems = _read_arrays(tree_arrays)
    if problems:
        return problems
    levels, parents, radii, root = arrays["levels"], arrays["parents"], arrays["radii"], arrays["root"]
    n = levels.shape[0]

    bad_parent = (parents < -1) | (parents >= n) | (parents == np.arange(n))
    _add(problems, bad_parent, "parents out of [-1, n) or pointing at the node itself", parent=parents)
    roots = np.flatnonzero(parents == -1)
    if roots.tolist() != [root]:
        problems.append(
            f"expected exactly one root, node {root} (parents == -1); "
            f"found parents == -1 at {roots[:10].tolist()}"
        )
    below_floor = levels < arrays["floor_level"]
    _add(problems, below_floor, f"levels below floor_level = {arrays['floor_level']}", level=levels)
    bad_radius = ~(radii >= 0) | ~np.isfinite(radii)
    _add(problems, bad_radius, "radii negative, NaN or infinite", radius=radii)

    has_parent = (parents >= 0) & ~bad_parent
    _check_csr(problems, arrays, has_parent)
    preorder, subtree_size = _preorder(root, parents, has_parent)
    unreachable = np.ones(n, dtype=bool)
    unreachable[preorder] = False
    _add(problems, unreachable, "nodes not reachable from the root (cycles or broken parents)",
         parent=parents)

    parent_level = np.where(has_parent, levels[np.where(has_parent, parents, 0)], np.iinfo(np.int64).max)
    _add(problems, levels >= parent_level, "child level not below its parent's level",
         level=levels, parent=parents, parent_level=parent_level)
    _check_min_id_below(problems, arrays["min_id_below"], preorder, parents)
    _check_distances(problems, distance_matrix_fn, levels, parents, radii, preorder, subtree_size, rtol)
    _check_separation(problems, distance_matrix_fn, levels, root, arrays["floor_level"], rtol)
    return problems


def assert_invariants(tree_arrays, distance_matrix_fn, rtol=1e-9) -> None:
    """Raise AssertionError listing every violated invariant (see ``check_invariants``)."""
    problems = check_invariants(tree_arrays, distance_matrix_fn, rtol)
    if problems:
        raise AssertionError("cover tree invariants violated:\n- " + "\n- ".join(problems))


def _read_arrays(tree_arrays):
    """The tree's arrays as int64/float64 numpy values, or the shape problems that stop the check."""
    problems = []
    try:
        levels = np.asarray(tree_arrays.levels)
        n = levels.shape[0] if levels.ndim == 1 else -1
        arrays = {
            name: np.asarray(getattr(tree_arrays, name))
            for name in ("levels", "parents", "radii", "child_ptr", "child_idx", "min_id_below")
        }
        root, floor_level = tree_arrays.root, tree_arrays.floor_level
    except AttributeError as exc:
        return None, [f"tree_arrays lacks a TreeArrays field: {exc}"]
    if n < 1:
        return None, [f"levels must be a non-empty 1-D array, got shape {levels.shape}"]
    shapes = {"levels": (n,), "parents": (n,), "radii": (n,), "child_ptr": (n + 1,),
              "child_idx": (n - 1,), "min_id_below": (n,)}
    for name, shape in shapes.items():
        arr = arrays[name]
        if arr.shape != shape:
            problems.append(f"{name} has shape {arr.shape}, expected {shape} for n = {n}")
        elif name != "radii" and not np.issubdtype(arr.dtype, np.integer):
            problems.append(f"{name} must hold integers, got dtype {arr.dtype}")
        elif name == "radii" and not np.issubdtype(arr.dtype, np.floating):
            problems.append(f"radii must hold floats, got dtype {arr.dtype}")
    for name, value in (("root", root), ("floor_level", floor_level)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            problems.append(f"{name} must be an integer, got {value!r}")
    if not problems and not 0 <= root < n:
        problems.append(f"root = {root} is outside [0, {n})")
    if problems:
        return None, problems
    out = {name: arr.astype(np.float64 if name == "radii" else np.int64) for name, arr in arrays.items()}
    out["root"], out["floor_level"] = int(root), int(floor_level)
    return out, problems


def _check_csr(problems, arrays, has_parent):
    """child_ptr/child_idx must list exactly the children that parents imply."""
    ptr, children, parents = arrays["child_ptr"], arrays["child_idx"], arrays["parents"]
    n = parents.shape[0]
    if ptr[0] != 0 or ptr[-1] != children.shape[0] or (np.diff(ptr) < 0).any():
        problems.append(
            f"child_ptr must rise from 0 to len(child_idx) = {children.shape[0]}, "
            f"got {ptr[:5].tolist()} ... {ptr[-5:].tolist()}"
        )
        return
    outside = (children < 0) | (children >= n)
    if outside.any():
        problems.append(f"child_idx has ids outside [0, {n}): {children[outside][:5].tolist()}")
        return
    owner = np.repeat(np.arange(n), np.diff(ptr))
    misplaced = parents[children] != owner
    if misplaced.any():
        e = np.flatnonzero(misplaced)[:_EXAMPLES]
        problems.append(
            f"CSR children disagree with parents at {int(misplaced.sum())} entries, e.g. child_idx lists "
            + ", ".join(f"{children[i]} under {owner[i]} (parent {parents[children[i]]})" for i in e)
        )
    listed = np.bincount(children, minlength=n)
    _add(problems, listed != has_parent, "nodes not listed exactly once in child_idx as their parent's child",
         times_listed=listed, parent=parents)


def _preorder(root, parents, has_parent):
    """Depth-first preorder of the nodes reachable from root (int64) and subtree sizes by node (n,).

    Children come from ``parents``, so a broken CSR does not hide the other checks; the subtree of
    v is preorder[position of v : position of v + size[v]].
    """
    n = parents.shape[0]
    kids = np.flatnonzero(has_parent)
    kids = kids[np.argsort(parents[kids], kind="stable")]
    starts = np.searchsorted(parents[kids], np.arange(n + 1))
    seen = np.zeros(n, dtype=bool)
    order = []
    stack = [root]
    while stack:
        v = stack.pop()
        if seen[v]:  # a root that is also some node's child would loop forever
            continue
        seen[v] = True
        order.append(v)
        stack.extend(kids[starts[v] : starts[v + 1]][::-1].tolist())
    preorder = np.asarray(order, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    for v in preorder[:0:-1]:
        size[parents[v]] += size[v]
    return preorder, size


def _check_min_id_below(problems, min_id_below, preorder, parents):
    expected = np.arange(parents.shape[0])
    for v in preorder[:0:-1]:
        p = parents[v]
        expected[p] = min(expected[p], expected[v])
    wrong = np.zeros(parents.shape[0], dtype=bool)
    wrong[preorder] = min_id_below[preorder] != expected[preorder]
    _add(problems, wrong, "min_id_below differs from the smallest id in the subtree",
         min_id_below=min_id_below, expected=expected)


def _check_distances(problems, distance_matrix_fn, levels, parents, radii, preorder, subtree_size, rtol):
    """Covering (child to parent) and subtree radius, one distance row per inner node."""
    n = levels.shape[0]
    parent_dist = np.zeros(n)
    farthest = np.zeros(n)
    position = np.empty(n, dtype=np.int64)
    position[preorder] = np.arange(preorder.shape[0])
    for v in preorder[subtree_size[preorder] > 1]:
        below = preorder[position[v] + 1 : position[v] + subtree_size[v]]
        row = _distances(distance_matrix_fn, np.array([v]), below)[0]
        farthest[v] = row.max()
        children = parents[below] == v
        parent_dist[below[children]] = row[children]
    reached = np.zeros(n, dtype=bool)
    reached[preorder[1:]] = True
    cover = 2.0 ** (levels + 1)
    uncovered = reached & ~(parent_dist <= cover * (1 + rtol) + _ATOL)
    _add(problems, uncovered, "covering violated: d(v, parent) > 2**(level[v] + 1)",
         parent=parents, level=levels, distance=parent_dist, bound=cover)
    short = ~(radii >= farthest * (1 - rtol) - _ATOL)
    _add(problems, short, "subtree radius below the farthest descendant distance",
         radius=radii, farthest=farthest)


def _check_separation(problems, distance_matrix_fn, levels, root, floor_level, rtol):
    """Nodes a != b present at level l > floor_level are more than 2**l apart.

    A pair is present at every level up to min(level[a], level[b]) (the root at every level), and
    2**l grows with l, so checking each pair at that level covers every level.
    """
    top = levels.astype(np.float64)
    top[root] = np.inf
    nodes = np.flatnonzero(top > floor_level)
    if nodes.shape[0] < 2:
        return
    worst = {}
    step = max(1, _SEPARATION_ENTRIES // nodes.shape[0])
    for start in range(0, nodes.shape[0], step):
        rows = nodes[start : start + step]
        dist = _distances(distance_matrix_fn, rows, nodes)
        level = np.minimum(top[rows][:, None], top[nodes][None, :])
        # Upper triangle only: each pair once, never a node with itself.
        pair = np.arange(start, start + rows.shape[0])[:, None] < np.arange(nodes.shape[0])[None, :]
        bound = 2.0**level
        bad = pair & ~(dist > bound * (1 - rtol))
        r, c = np.nonzero(bad)
        level_of, ratio = level[r, c], dist[r, c] / bound[r, c]
        for lv in np.unique(level_of):
            at = np.flatnonzero(level_of == lv)
            i = at[np.argmin(ratio[at])]
            entry = worst.setdefault(int(lv), {"count": 0, "ratio": np.inf})
            entry["count"] += at.shape[0]
            if ratio[i] < entry["ratio"]:
                entry.update(ratio=ratio[i], a=rows[r[i]], b=nodes[c[i]], d=dist[r[i], c[i]])
    for lv in sorted(worst, reverse=True):
        e = worst[lv]
        problems.append(
            f"separation violated at level {lv}: {e['count']} pair(s) within 2**{lv} = {2.0**lv:g}, "
            f"closest nodes {e['a']} and {e['b']} (levels {levels[e['a']]}, {levels[e['b']]}) "
            f"at distance {e['d']:.6g}"
        )


def _distances(distance_matrix_fn, rows, cols):
    out = np.asarray(distance_matrix_fn(rows, cols), dtype=np.float64)
    if out.shape != (rows.shape[0], cols.shape[0]):
        raise ValueError(
            f"distance_matrix_fn returned shape {out.shape} for {rows.shape[0]} rows and "
            f"{cols.shape[0]} columns"
        )
    return out


def _add(problems, mask, what, **columns):
    """Append a message for the nodes flagged in mask (n,), with their values in ``columns``."""
    nodes = np.flatnonzero(mask)
    if nodes.size == 0:
        return
    examples = "; ".join(
        f"node {v} (" + ", ".join(f"{name} {values[v]:.6g}" if np.issubdtype(values.dtype, np.floating)
                                  else f"{name} {values[v]}" for name, values in columns.items()) + ")"
        for v in nodes[:_EXAMPLES]
    )
    problems.append(f"{what}: {nodes.size} node(s), e.g. {examples}")
