import numpy as np
import pytest
import torch

from nasgen import searchspace
from nasgen.searchspace import DARTS_V2, OPS, CellSearchSpace, Genotype, SearchSpace, make_op


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_applies_stride(name, stride):
    op = make_op(name, 6, stride, affine=False, search=True)
    for size in (8, 7):
        out = op(torch.randn(2, 6, size, size))
        expected = size if stride == 1 else (size + 1) // 2
        assert out.shape == (2, 6, expected, expected), name


def test_darts_ops_are_a_slice_of_the_registry_with_zero_first():
    assert searchspace.DARTS_OPS == ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3",
                                     "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert tuple(OPS)[: len(searchspace.DARTS_OPS)] == searchspace.DARTS_OPS


def test_unknown_op_lists_known_ops():
    with pytest.raises(KeyError, match="known ops: none, skip_connect"):
        make_op("conv_9x9", 4, 1, False)


def test_presets():
    assert set(searchspace.names()) >= {"darts", "small"}
    darts = searchspace.get("darts")
    assert darts.n_decisions == 28 and darts.choices == (8,) * 28 and darts.n_edges == 14
    assert darts.op_names[0] == "none" and darts.zero_op
    small = searchspace.get("small")
    assert small.n_edges == 9 and small.n_decisions == 18 and len(small.op_names) == 5
    with pytest.raises(KeyError, match="known: darts, small"):
        searchspace.get("nope")


@pytest.mark.parametrize("name", ["darts", "small"])
def test_sample_is_valid_and_seeded(name):
    space = searchspace.get(name)
    a = space.sample(np.random.default_rng(3))
    b = space.sample(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert space.validate(a).dtype == np.int64
    draws = np.stack([space.sample(np.random.default_rng(s)) for s in range(200)])
    assert set(np.unique(draws)) == set(range(len(space.op_names)))


def test_validate_messages():
    space = searchspace.get("darts")
    good = np.zeros(28, dtype=int)
    with pytest.raises(ValueError, match=r"vector of 28 ints, got shape \(27,\)"):
        space.validate(good[:27])
    with pytest.raises(ValueError, match=r"arch\[5\] = 8 is out of range for normal edge 4<-0: allowed 0..7"):
        bad = good.copy(); bad[5] = 8; space.validate(bad)
    with pytest.raises(ValueError, match=r"arch\[0\] = -1 is out of range"):
        bad = good.copy(); bad[0] = -1; space.validate(bad)
    with pytest.raises(ValueError, match="must hold integers, got dtype float64"):
        space.validate(good.astype(float))
    with pytest.raises(ValueError, match=r"arch\[2\] = nan is not an integer"):
        bad = good.astype(float); bad[2] = np.nan; space.validate(bad)
    with pytest.raises(ValueError, match="must hold integers, got dtype bool"):
        space.validate(good.astype(bool))
    with pytest.raises(ValueError, match="must hold integers"):
        space.validate(["a"] * 28)


def test_mixed_choice_space():
    space = SearchSpace("mixed", [2, 5, 3])
    assert space.choice_mask().sum() == 10
    with pytest.raises(ValueError, match=r"arch\[2\] = 3 is out of range for decision 2: allowed 0..2"):
        space.validate([1, 4, 3])
    probs = np.zeros((3, 5)); probs[0, 4] = 9; probs[0, 1] = 1; probs[1, 3] = 1; probs[2, 2] = 1
    np.testing.assert_array_equal(space.derive(probs), [1, 3, 2])  # a missing choice never wins


def _same_pairs_per_node(a, b, per_node=2):
    return all(sorted(a[i:i + per_node]) == sorted(b[i:i + per_node]) for i in range(0, len(a), per_node))


def test_darts_v2_round_trip():
    space = searchspace.get("darts")
    arch = space.from_genotype(DARTS_V2)
    assert (arch != 0).sum() == 16
    genotype = space.to_genotype(arch)
    # The order of the two pairs inside a node carries no meaning in DARTS genotypes.
    assert _same_pairs_per_node(genotype.normal, DARTS_V2.normal)
    assert _same_pairs_per_node(genotype.reduce, DARTS_V2.reduce)
    assert genotype.normal_concat == DARTS_V2.normal_concat == genotype.reduce_concat
    np.testing.assert_array_equal(space.from_genotype(genotype), arch)


def test_genotype_errors():
    space = searchspace.get("darts")
    with pytest.raises(ValueError, match="has 0 active inputs"):
        space.to_genotype(np.zeros(28, dtype=int))
    bad = Genotype([("conv_9x9", 0)] + DARTS_V2.normal[1:], [2, 3, 4, 5], DARTS_V2.reduce, [2, 3, 4, 5])
    with pytest.raises(ValueError, match="'conv_9x9' is not a non-zero op"):
        space.from_genotype(bad)
    twice = Genotype([("sep_conv_3x3", 0), ("skip_connect", 0)] + DARTS_V2.normal[2:], [2, 3, 4, 5],
                     DARTS_V2.reduce, [2, 3, 4, 5])
    with pytest.raises(ValueError, match="uses input 0 twice"):
        space.from_genotype(twice)
    with pytest.raises(ValueError, match="input 5 is out of range"):
        space.from_genotype(Genotype([("sep_conv_3x3", 5)] + DARTS_V2.normal[1:], [2, 3, 4, 5],
                                     DARTS_V2.reduce, [2, 3, 4, 5]))


def test_derive_keeps_two_strongest_non_zero_inputs():
    space = searchspace.get("darts")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=28)
    probs[:, 0] = 0.99  # the zero op is ignored by the DARTS rule however strong
    arch = space.derive(probs)
    genotype = space.to_genotype(arch)
    assert len(genotype.normal) == 8 and len(genotype.reduce) == 8
    for cell in space.cell_types:
        base = space.cell_slice(cell).start
        for node in range(space.n_nodes):
            ids = [base + e for e, (n, _) in enumerate(space.edges) if n == node]
            strength = {d: probs[d, 1:].max() for d in ids}
            kept = {d for d in ids if arch[d]}
            assert kept == set(sorted(ids, key=lambda d: -strength[d])[:2])
            for d in kept:
                assert arch[d] == probs[d, 1:].argmax() + 1


def test_parameter_free_share_and_describe():
    space = searchspace.get("darts")
    arch = space.from_genotype(DARTS_V2)
    shares = space.parameter_free_share(arch)
    assert shares["normal"] == pytest.approx(2 / 8) and shares["reduce"] == pytest.approx(1.0)
    assert "5<-2:dil_conv_3x3" in space.describe(arch)


def test_space_dict_round_trip_and_equality():
    for name in searchspace.names():
        space = searchspace.get(name)
        assert searchspace.from_dict(space.to_dict()) == space
    assert searchspace.get("small") != searchspace.get("darts")
    custom = CellSearchSpace("custom", ("none", "conv_1x1", "conv_3x3"), n_nodes=2)
    assert custom.n_decisions == 2 * 5
    with pytest.raises(ValueError, match="op 0 must be the zero op"):
        CellSearchSpace("bad", ("conv_1x1", "none"))


def test_cell_diagrams(tmp_path):
    space = searchspace.get("darts")
    paths = searchspace.plot_genotype(space, DARTS_V2, tmp_path)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
