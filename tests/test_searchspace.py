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


# --- 1-D ops and the NAS-Bench-201 cell --------------------------------------------------------
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_builds_its_native_1d_form(name, stride):
    op = make_op(name, 6, stride, affine=False, search=True, dims=1)
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d))
                   for m in op.modules()), name
    for length in (40, 39):
        out = op(torch.randn(2, 6, length))
        expected = length if stride == 1 else (length + 1) // 2
        assert out.shape == (2, 6, expected), name
    # A k-tap kernel holds k weights per channel pair, not k x k.
    for conv in (m for m in op.modules() if isinstance(m, torch.nn.Conv1d)):
        assert conv.weight.dim() == 3


def test_one_d_ops_match_their_height_one_image_form():
    # With the same weights, the 1-D op on a signal equals the 2-D op on it as a 1 x L image
    # wherever the 2-D kernel meets only one row there. (Not the strided skip_connect: its 2-D
    # form shifts rows too, so on a height-1 image half its channels see only padding.)
    torch.manual_seed(0)
    for name in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3"):
        for stride in (1, 2):
            flat, image = make_op(name, 4, stride, True, dims=1), make_op(name, 4, stride, True, dims=2)
            with torch.no_grad():
                for p1, p2 in zip(flat.parameters(), image.parameters()):
                    p1.copy_(p2[..., p2.shape[-2] // 2, :] if p2.dim() == 4 else p2)
            x = torch.randn(2, 4, 40)
            torch.testing.assert_close(flat(x), image(x[:, :, None])[:, :, 0], msg=f"{name} stride {stride}")
    with pytest.raises(ValueError, match="dims must be one of"):
        make_op("conv_3x3", 4, 1, False, dims=3)


def test_nb201_presets():
    space = searchspace.get("nb201")
    assert isinstance(space, searchspace.NB201SearchSpace) and isinstance(space, searchspace.CellSpace)
    assert space.edges == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert space.op_names == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert space.zero_op and space.choices == (5,) * 6 and np.prod(space.choices) == 15_625
    nozero = searchspace.get("nb201-nozero")
    assert nozero.op_names == space.op_names[1:] and not nozero.zero_op and np.prod(nozero.choices) == 4_096
    assert set(space.op_names) <= set(OPS)  # one registry
    with pytest.raises(KeyError, match="known: darts, small, nb201, nb201-nozero"):
        searchspace.get("nb202")


def test_nb201_string_round_trip_and_errors():
    space = searchspace.get("nb201")
    arch = np.array([3, 0, 1, 4, 2, 3])
    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    assert space.to_genotype(arch) == text and space.describe(arch) == text
    np.testing.assert_array_equal(space.from_genotype(text), arch)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = space.sample(rng)
        np.testing.assert_array_equal(space.from_genotype(space.to_genotype(a)), a)
    nozero = searchspace.get("nb201-nozero")
    assert nozero.to_genotype(np.zeros(6, dtype=int)).count("skip_connect") == 6
    for bad, message in (("|nor_conv_3x3~0|+|none~0|skip_connect~1|", "has 2 nodes"),
                         ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "op 'conv' .* is not an op of space"),
                         ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "expected op~0, got 'none~1'"),
                         ("|none~0|+|none~0|+|none~0|none~1|none~2|", r"node 2 .* must read \|op~0\|...\|op~1\|")):
        with pytest.raises(ValueError, match=message):
            space.from_genotype(bad)
    with pytest.raises(ValueError, match="op 'none' .* is not an op of space 'nb201-nozero'"):
        nozero.from_genotype(text)


def test_nb201_derive_is_argmax_per_edge_zero_op_allowed():
    space = searchspace.get("nb201")
    probs = np.full((6, 5), 0.1)
    probs[np.arange(6), [0, 0, 3, 0, 0, 2]] = 0.6  # no path from input to output: still valid
    np.testing.assert_array_equal(space.derive(probs), [0, 0, 3, 0, 0, 2])
    arch = np.array([0, 1, 3, 4, 0, 2])
    assert space.parameter_free_share(arch) == {"cell": pytest.approx(2 / 4)}
    with pytest.raises(ValueError, match="must be op 0"):
        searchspace.NB201SearchSpace("bad", ("skip_connect", "none"))


def test_nb201_cell_diagram(tmp_path):
    space = searchspace.get("nb201")
    path = searchspace.plot_cell(space, np.array([3, 0, 1, 4, 2, 3]), "cell", tmp_path / "cell.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["darts", "small", "nb201"])
def test_cell_diagrams_never_draw_an_edge_through_a_node(name):
    """Every possible edge of the cell is drawn clear of every node it does not join."""
    import numpy as np

    from nasgen.searchspace import get
    from nasgen.searchspace import plot as cell_plot

    space = get(name)
    positions, _, edges, _, _ = cell_plot._layout(space)
    width = max(x for x, _ in positions.values())
    scale = np.array([2.2 * (width + 1) / (width + 1.0), 3.6])
    nodes = {k: np.array(xy) * scale for k, xy in positions.items()}
    for to, src in edges:
        curve = cell_plot._clear_curve(nodes, src, to)
        others = np.array([xy for k, xy in nodes.items() if k not in (src, to)])
        assert np.min(np.linalg.norm(curve[:, None] - others[None], axis=2)) > cell_plot._CLEARANCE, (src, to)
