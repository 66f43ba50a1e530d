"""The NAS-Bench-201 canonical form: the 6,466 count, and that equivalent cells compute alike."""

import time

import numpy as np
import pytest

from nasgen.searchspace.canonical import (NB201_EDGES, canonical_map, canonical_nb201,
                                          distinct_nb201, unique_string)

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NOZERO_OPS = NB201_OPS[1:]


def test_nas_bench_201_counts_6466_distinct_cells():
    canonical_map.cache_clear()
    start = time.perf_counter()
    cmap = canonical_map(NB201_OPS)
    assert time.perf_counter() - start < 2.0  # generous: about 0.05 s on one core
    assert cmap.encodings.shape == (15625, 6) and cmap.n_classes == 6466
    assert len(distinct_nb201(NB201_OPS)) == 6466
    assert np.bincount(cmap.class_of).sum() == 15625 and np.bincount(cmap.class_of).min() >= 1
    # Every representative is its own canonical form and the smallest member of its class.
    for cid in (0, 1, 100, 6465):
        rep = cmap.representatives[cid]
        assert canonical_nb201(rep, NB201_OPS) == tuple(rep)
        assert min(map(tuple, cmap.members(rep).tolist())) == tuple(rep.tolist())


def test_nozero_ops_count():
    cmap = canonical_map(NOZERO_OPS)
    assert cmap.encodings.shape == (4096, 6) and cmap.n_classes == 3131


@pytest.mark.parametrize("a, b", [
    # node 1 = skip(0) = input, so a conv from node 0 or from node 1 is the same term
    ([1, 0, 0, 2, 0, 0], [1, 0, 0, 0, 2, 0]),
    # node 1 is zero: whatever reads it contributes a zero
    ([0, 0, 2, 0, 0, 0], [0, 0, 3, 0, 0, 0]),
    ([0, 1, 0, 0, 4, 3], [0, 1, 0, 0, 2, 3]),
    # sums commute: node 2 = conv1x1(0) + conv3x3(skip(0))
    ([1, 2, 3, 0, 0, 1], [1, 3, 2, 0, 0, 1]),
])
def test_equivalent_encodings_share_one_class(a, b):
    assert canonical_nb201(a, NB201_OPS) == canonical_nb201(b, NB201_OPS)
    assert unique_string(a, NB201_OPS) == unique_string(b, NB201_OPS)


def test_distinct_computations_stay_apart():
    # conv on the input vs conv on the all-zero node 2 (which NAS-Bench-201 keeps as '#+#')
    assert canonical_nb201([0, 0, 0, 2, 0, 0], NB201_OPS) != canonical_nb201([0, 0, 0, 0, 0, 2], NB201_OPS)
    assert canonical_nb201([3, 3, 3, 3, 3, 3], NB201_OPS) != canonical_nb201([2, 3, 3, 3, 3, 3], NB201_OPS)


def test_members_of_a_class_compute_the_same_function():
    """Give every op a random linear map (none = 0, skip = identity): every member of a
    class must then give the same output node; a wrong grouping would fail here."""
    cmap = canonical_map(NB201_OPS)
    rng = np.random.default_rng(0)
    d = 5
    maps = [np.zeros((d, d)), np.eye(d)] + [rng.normal(size=(d, d)) for _ in NB201_OPS[2:]]
    x = rng.normal(size=d)
    enc = cmap.encodings.astype(np.int64)
    nodes = [np.broadcast_to(x, (len(enc), d))]
    for target in (1, 2, 3):
        total = np.zeros((len(enc), d))
        for e, (node, source) in enumerate(NB201_EDGES):
            if node == target:
                total += np.einsum("nij,nj->ni", np.stack(maps)[enc[:, e]], nodes[source])
        nodes.append(total)
    out = nodes[3]
    first = np.zeros((cmap.n_classes, d))
    first[cmap.class_of[::-1]] = out[::-1]  # any member's output per class
    assert np.allclose(out, first[cmap.class_of], atol=1e-9), "a class mixes different functions"


def test_bad_encodings_are_refused():
    with pytest.raises(ValueError, match="outside 0..4"):
        canonical_nb201([0, 0, 0, 0, 0, 5], NB201_OPS)
    with pytest.raises(ValueError, match="6 integer op indices"):
        canonical_nb201([0, 0, 0], NB201_OPS)
    with pytest.raises(ValueError, match="distinct"):
        canonical_map(("none", "none"))


def test_the_nb201_spaces_use_the_canonical_form():
    from nasgen.nb1d import all_distinct, canonicalizer
    from nasgen.searchspace import get

    for name, count in (("nb201", 6466), ("nb201-nozero", 3131)):
        space = get(name)
        assert len(all_distinct(space)) == count, name
        assert canonicalizer(space)(np.array(space.choices) - 1) == canonical_nb201(
            np.array(space.choices) - 1, space.op_names)
