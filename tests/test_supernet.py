import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasgen import searchspace
from nasgen.searchspace import DARTS_V2, Network, Supernet, TrainConfig, taylor_credit, train_network


def _supernet(name="small", C=4, n_cells=3, size=8, in_channels=1, seed=0):
    torch.manual_seed(seed)
    return Supernet(searchspace.get(name), C=C, n_cells=n_cells, in_channels=in_channels, image_size=size)


@pytest.mark.parametrize("name", ["small", "darts"])
@pytest.mark.parametrize("size,in_channels", [(8, 1), (28, 1), (32, 3)])
def test_supernet_shapes_and_reductions(name, size, in_channels):
    net = _supernet(name, size=size, in_channels=in_channels)
    assert net.net.cell_types == ["normal", "reduce", "reduce"]
    x = torch.randn(3, in_channels, size, size)
    arch = net.space.sample(np.random.default_rng(0))
    assert net(x, arch).shape == (3, 10)
    weights = torch.softmax(torch.randn(net.space.n_decisions, len(net.space.op_names)), 1)
    assert net(x, weights=weights).shape == (3, 10)


def test_eight_cells_like_darts():
    net = _supernet("darts", C=4, n_cells=8)
    assert [i for i, t in enumerate(net.net.cell_types) if t == "reduce"] == [2, 5]
    assert net(torch.randn(2, 1, 8, 8), net.space.from_genotype(DARTS_V2)).shape == (2, 10)


def test_bad_inputs():
    net = _supernet()
    arch = net.space.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"input must be \[N, 1, 8, 8\], got \[2, 3, 8, 8\]"):
        net(torch.randn(2, 3, 8, 8), arch)
    with pytest.raises(ValueError, match="exactly one of arch"):
        net(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"weights must have shape \(18, 5\)"):
        net(torch.randn(2, 1, 8, 8), weights=torch.ones(18, 4))
    with pytest.raises(ValueError, match=r"arch\[0\] = 9 is out of range"):
        net(torch.randn(2, 1, 8, 8), np.full(18, 9))
    with pytest.raises(TypeError, match="needs a cell space"):
        Supernet(searchspace.SearchSpace("flat", [3, 3]))


@pytest.mark.parametrize("seed", range(3))
def test_single_path_equals_one_hot_weight_forward(seed):
    net = _supernet("darts", seed=seed)
    arch = net.space.sample(np.random.default_rng(seed))
    x = torch.randn(4, 1, 8, 8)
    one_hot = F.one_hot(torch.as_tensor(arch), len(net.space.op_names)).float()
    torch.testing.assert_close(net(x, arch), net(x, weights=one_hot), rtol=1e-5, atol=1e-5)


def test_zero_op_edges_are_skipped_not_multiplied():
    net = _supernet("darts")
    calls = []
    for cell in net.net.cells:
        for ops in cell.edge_ops:
            for j, op in enumerate(ops):
                op.register_forward_hook(lambda m, i, o, j=j: calls.append(j))
    arch = net.space.from_genotype(DARTS_V2)
    net(torch.randn(2, 1, 8, 8), arch)
    assert 0 not in calls
    assert len(calls) == 3 * 8  # three cells, eight active edges each


def test_gates_of_one_change_nothing():
    net = _supernet()
    arch = net.space.sample(np.random.default_rng(1))
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(net(x, arch), net(x, arch, gates=torch.ones(18)))


def assert_gate_gradient_matches_finite_differences(net, arch, x, decisions):
    """d loss / d gate from one backward equals central differences on ``decisions``, and the
    Taylor credit is minus that gradient (reward = -loss)."""
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(0))

    def loss_of(gates):
        return F.cross_entropy(net(x, arch, gates=gates), y)

    gates = torch.ones(net.space.n_decisions, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss_of(gates), gates)
    eps = 1e-5
    for i in decisions:
        up, down = torch.ones_like(grad), torch.ones_like(grad)
        up[i] += eps
        down[i] -= eps
        with torch.no_grad():
            numeric = (loss_of(up) - loss_of(down)).item() / (2 * eps)
        assert grad[i].item() == pytest.approx(numeric, rel=1e-4, abs=1e-8)
    credit = taylor_credit(loss_of, np.ones(len(arch), dtype=bool))
    assert credit.evaluations == 1
    np.testing.assert_allclose(credit.credit, -grad.numpy(), rtol=1e-6)


def test_gate_gradient_matches_finite_differences():
    net = _supernet("small", C=4, n_cells=3).double()
    arch = net.space.sample(np.random.default_rng(4))
    arch[arch == 0] = 3  # every edge on
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    assert_gate_gradient_matches_finite_differences(net, arch, x, (0, 5, 9, 17))


# --- the NAS-Bench-201 cell on 1-D signals ------------------------------------------------------
def _nb201_supernet(name="nb201", C=4, N=1, length=40, seed=0):
    torch.manual_seed(seed)
    return Supernet(searchspace.get(name), C=C, n_cells=N, in_channels=1, image_size=length, dims=1)


@pytest.mark.parametrize("name", ["nb201", "nb201-nozero"])
@pytest.mark.parametrize("seed", range(2))
def test_nb201_single_path_equals_one_hot_weight_forward(name, seed):
    net = _nb201_supernet(name, N=2, seed=seed)
    arch = net.space.sample(np.random.default_rng(seed))
    x = torch.randn(4, 1, 40)
    one_hot = F.one_hot(torch.as_tensor(arch), len(net.space.op_names)).float()
    torch.testing.assert_close(net(x, arch), net(x, weights=one_hot), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net(x, arch), net(x, arch, gates=torch.ones(6)))


def test_nb201_skeleton_and_modes():
    net = _nb201_supernet(N=2)
    assert len(net.net.cells) == 6 and net.net.cell_types == ["cell"] * 6
    assert len(net.net.reductions) == 2 and net.net.classifier.in_features == 16  # 4C after two doublings
    x = torch.randn(3, 1, 40)
    # Every op of a cell runs natively in 1-D: no 2-D module anywhere.
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) for m in net.modules())
    weights = torch.softmax(torch.randn(6, 5), 1)
    assert net(x, weights=weights).shape == (3, 10)
    with pytest.raises(ValueError, match=r"input must be \[N, 1, 40\], got \[3, 1, 40, 40\]"):
        net(torch.randn(3, 1, 40, 40), np.zeros(6, dtype=int))
    # An all-zero cell (no path from input to output) is valid: it passes zeros on.
    assert torch.isfinite(net(x, np.zeros(6, dtype=int))).all()


def test_nb201_zero_op_is_skipped_and_nozero_runs_op_zero():
    for name, arch, expected in (("nb201", np.array([0, 3, 0, 2, 0, 1]), [3, 2, 1]),
                                 ("nb201-nozero", np.zeros(6, dtype=int), [0] * 6)):
        net = _nb201_supernet(name)
        calls = []
        for ops in net.net.cells[0].edge_ops:
            for j, op in enumerate(ops):
                op.register_forward_hook(lambda m, i, o, j=j: calls.append(j))
        net(torch.randn(2, 1, 40), arch)
        assert calls == expected


def test_nb201_gate_gradient_matches_finite_differences():
    net = _nb201_supernet(N=1).double()
    arch = np.array([3, 1, 2, 4, 3, 2])  # every edge on, every non-zero op used
    x = torch.randn(8, 1, 40, dtype=torch.float64)
    assert_gate_gradient_matches_finite_differences(net, arch, x, range(6))


def test_nb201_network_is_the_chosen_path():
    space = searchspace.get("nb201")
    arch = space.from_genotype("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|")
    model = Network(space, arch, C=4, n_cells=2, in_channels=1, dims=1)
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)
    convs = [m for m in model.net.cells[0].modules() if isinstance(m, torch.nn.Conv1d)]
    assert sorted(tuple(c.weight.shape) for c in convs) == [(4, 4, 1), (4, 4, 3)]  # 3 taps, not 3x3


def test_parameter_count_matches_a_standalone_path():
    net = _supernet("darts", C=4, n_cells=3)
    arch = net.space.from_genotype(DARTS_V2)
    count = net.parameter_count(arch)
    assert 0 < count < sum(p.numel() for p in net.parameters())
    zero = np.zeros_like(arch)
    assert net.parameter_count(zero) < count


def test_evaluate_reward_is_negative_cross_entropy():
    net = _supernet()
    arch = net.space.sample(np.random.default_rng(0))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    result = searchspace.evaluate(net, x, y, arch)
    assert result.reward == pytest.approx(-F.cross_entropy(net(x, arch), y).item(), rel=1e-5)
    assert 0.0 <= result.accuracy <= 1.0


def test_network_from_genotype_trains_on_digits():
    data = searchspace.load_dataset("digits", limit=300)
    space = searchspace.get("darts")
    torch.manual_seed(0)
    model = Network.from_genotype(space, DARTS_V2, C=4, n_cells=3, in_channels=1)
    result = train_network(model, data, TrainConfig(epochs=8, batch_size=32, lr=0.05),
                           torch.Generator().manual_seed(0))
    assert result.test_accuracy > 0.6  # chance is 0.1
    assert len(result.history) == 8 and result.parameters > 0


def test_network_accepts_any_number_of_inputs_per_node():
    space = searchspace.get("small")
    arch = np.zeros(space.n_decisions, dtype=int)
    arch[2:5] = 3  # node 3 takes all three inputs; the other nodes take none
    model = Network(space, arch, C=4, n_cells=3, in_channels=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_augmentation_crop_flip_and_cutout():
    from nasgen.searchspace import augment_batch

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1  # no zero pixel
    off = TrainConfig()
    assert augment_batch(x, off, torch.Generator().manual_seed(0)) is x  # nothing on: untouched

    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    augment_batch(x, off, generator)
    assert torch.equal(generator.get_state(), before)  # and draws nothing

    # Crop: every image is an 8x8 window of its zero-padded self.
    crop = TrainConfig(crop_padding=2)
    out = augment_batch(x, crop, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert any(torch.equal(out[i], padded[i, :, r:r + 8, c:c + 8]) for r in range(5) for c in range(5))
    assert torch.equal(out, augment_batch(x, crop, torch.Generator().manual_seed(1)))  # same seed, same crop

    # Flip: each image is itself or its mirror, and over many images both happen.
    many = torch.rand(64, 1, 8, 8)
    flipped = augment_batch(many, TrainConfig(flip=True), torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(a, b.flip(2)) for a, b in zip(flipped, many)])
    same = torch.tensor([torch.equal(a, b) for a, b in zip(flipped, many)])
    assert bool((mirrored | same).all()) and 0 < int(mirrored.sum()) < 64

    # Cutout: one square of side <= 4 per image, zero on every channel, the rest untouched.
    cut = augment_batch(x, TrainConfig(cutout=4), torch.Generator().manual_seed(2))
    for i in range(2):
        zero = cut[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows, cols = zero[0].nonzero(as_tuple=True)
        assert 0 < len(rows) <= 16 and len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert torch.equal(cut[i][~zero], x[i][~zero])

    with pytest.raises(ValueError, match="cutout must be an int >= 0, got -1"):
        TrainConfig(cutout=-1)


def test_augmented_training_is_repeatable_and_still_learns():
    data = searchspace.load_dataset("digits", limit=300)
    space = searchspace.get("small")
    arch = space.sample(np.random.default_rng(0))
    config = TrainConfig(epochs=6, batch_size=32, lr=0.05, crop_padding=1, cutout=2)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Network(space, arch, C=4, n_cells=3, in_channels=1)
        results.append(train_network(model, data, config, torch.Generator().manual_seed(0)))
    assert results[0].history == results[1].history
    assert results[0].test_accuracy > 0.4  # chance is 0.1


@pytest.mark.parametrize("name", ["small", "darts"])
def test_darts_cells_run_natively_on_1d_signals(name):
    torch.manual_seed(0)
    net = Supernet(searchspace.get(name), C=4, n_cells=3, in_channels=1, image_size=40, dims=1)
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) for m in net.modules())
    arch = net.space.sample(np.random.default_rng(0))
    x = torch.randn(4, 1, 40)
    one_hot = F.one_hot(torch.as_tensor(arch), len(net.space.op_names)).float()
    torch.testing.assert_close(net(x, arch), net(x, weights=one_hot), rtol=1e-5, atol=1e-5)
    zero = np.zeros_like(arch)
    assert net(x, zero).shape == (4, 10)  # every node off: zeros of the reduced length
    model = Network.from_genotype(net.space if name == "darts" else searchspace.get("darts"), DARTS_V2,
                                  C=4, n_cells=3, in_channels=1, dims=1)
    assert model(x).shape == (4, 10)


def test_a_short_retraining_is_evaluated_with_its_own_batchnorm_statistics():
    """Two epochs of a DARTS network on digits (34 steps): the running statistics of the
    training steps would score it as chance; recomputed with the final weights it is far above."""
    from nasgen.searchspace import (DARTS_V2, Network, TrainConfig, evaluate_split, get, load_dataset,
                                    recalibrate_batchnorm, train_network)

    torch.manual_seed(0)
    data = load_dataset("digits")
    space = get("darts")
    model = Network(space, space.from_genotype(DARTS_V2), C=8, n_cells=5, in_channels=1, n_classes=10, dims=2)
    result = train_network(model, data, TrainConfig(epochs=2), torch.Generator().manual_seed(0))
    assert result.val_accuracy > 0.5 and result.history[0]["val_accuracy"] > 0.3
    with torch.no_grad():  # the statistics are the final weights': a second pass changes nothing
        before = evaluate_split(model, data.val)[0]
        recalibrate_batchnorm(model, data.train)
        assert evaluate_split(model, data.val)[0] == before
