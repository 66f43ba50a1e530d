"""The stacked trainer of NAS-Bench-1D: K NB201 networks as one model compute what each
network computes alone, and a table row never depends on the group it was trained in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasgen.nb1d import Recipe
from nasgen.nb1d.recipe import train_architecture, train_group
from nasgen.nb1d.stacked import StackedNB201, avg_pool_3, clip_per_architecture
from nasgen.searchspace import Network, get

SPACE = get("nb201")
ARCHS = np.array([[3, 1, 2, 4, 0, 3], [0, 0, 0, 0, 0, 0], [4, 4, 4, 4, 4, 4], [3, 3, 3, 3, 3, 3],
                  [1, 2, 0, 3, 4, 1]])


def stacked(archs, C=4, dims=1, seed=0, in_channels=1):
    return StackedNB201(np.asarray(archs), SPACE.op_names, SPACE.edges, SPACE.n_nodes, C, 1, in_channels,
                        10, dims, seed)


def copy_network_into(model: StackedNB201, k: int, net: Network, arch) -> None:
    """Put the weights and statistics of the ordinary ``net`` into architecture ``k`` of ``model``."""
    src = net.state_dict()
    dst = model.state_dict()

    def put(dst_prefix, src_prefix, bn=False):
        for field in (("weight", "bias", "running_mean", "running_var") if bn else ("weight",)):
            dst[f"{dst_prefix}.{field}"][k] = src[f"{src_prefix}.{field}"]

    put("stem_conv", "net.stem.0")
    put("stem_bn", "net.stem.1", bn=True)
    for r in range(2):
        for part in ("conv_a", "conv_b"):
            put(f"reductions.{r}.{part}.conv", f"net.reductions.{r}.{part}.body.1")
            put(f"reductions.{r}.{part}.bn", f"net.reductions.{r}.{part}.body.2", bn=True)
        put(f"reductions.{r}.shortcut", f"net.reductions.{r}.shortcut.1")
    for stage in range(3):
        for e, op in enumerate(arch):
            name = SPACE.op_names[op]
            if name.startswith("nor_conv"):
                put(f"stages.{stage}.0.convs.{e}_{name}.conv", f"net.stages.{stage}.0.edge_ops.{e}.0.body.1")
                put(f"stages.{stage}.0.convs.{e}_{name}.bn", f"net.stages.{stage}.0.edge_ops.{e}.0.body.2", bn=True)
    put("head_bn", "net.head.0", bn=True)
    dst["classifier_weight"][k] = src["net.classifier.weight"]
    dst["classifier_bias"][k] = src["net.classifier.bias"]
    model.load_state_dict(dst)


@pytest.mark.parametrize("dims,shape", [(1, (16, 1, 40)), (2, (8, 3, 8, 8))])
def test_each_stacked_network_computes_the_ordinary_network(dims, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    model = stacked(ARCHS, dims=dims, in_channels=shape[1])
    nets = []
    for k, arch in enumerate(ARCHS):
        net = Network(SPACE, arch, C=4, n_cells=1, in_channels=shape[1], n_classes=10, dims=dims)
        with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
            for name, value in net.state_dict().items():
                if name.endswith(("running_mean", "bias")):
                    value.uniform_(-0.5, 0.5)
                elif name.endswith("running_var") or (name.endswith("weight") and value.dim() == 1):
                    value.uniform_(0.5, 1.5)
        copy_network_into(model, k, net, arch)
        nets.append(net)
    for training in (True, False):
        model.train(training)
        logits = model(x)
        for k, net in enumerate(nets):
            net.train(training)
            assert torch.allclose(logits[:, k], net(x), atol=1e-5), (training, k)
    # Training mode updated each network's statistics as the ordinary one did.
    assert torch.allclose(model.head_bn.running_mean[2], nets[2].net.head[0].running_mean, atol=1e-6)


def test_gradients_and_clip_are_per_architecture():
    model = stacked(ARCHS[:3])
    x, y = torch.randn(16, 1, 40), torch.randint(0, 10, (16,))
    logits = model(x)
    losses = F.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, 3), reduction="none").mean(0)
    losses[1].backward()  # only architecture 1's loss
    params = [p for p in model.parameters() if p.grad is not None]
    for p in params:
        assert p.grad[0].abs().max() == 0 and p.grad[2].abs().max() == 0
    norms = clip_per_architecture(params, 3, max_norm=1e-3)
    assert norms[0] == 0 and norms[1] > 1e-3
    after = torch.sqrt(sum(p.grad[1].pow(2).sum() for p in params))
    assert after == pytest.approx(1e-3, rel=1e-3)


def test_avg_pool_3_matches_torch_pooling():
    for shape in [(2, 3, 40), (2, 3, 1), (2, 3, 7, 5)]:
        x = torch.randn(*shape)
        pool = F.avg_pool1d if len(shape) == 3 else F.avg_pool2d
        assert torch.allclose(avg_pool_3(x), pool(x, 3, 1, 1, count_include_pad=False), atol=1e-6)


def test_initial_weights_depend_on_the_seed_only():
    a, b = stacked(ARCHS[:2], seed=5), stacked(ARCHS[::-1], seed=5)
    assert torch.equal(a.stem_conv.weight[0], b.stem_conv.weight[3])
    assert torch.equal(a.stages[1][0].convs["2_nor_conv_1x1"].conv.weight[1],
                       b.stages[1][0].convs["2_nor_conv_1x1"].conv.weight[0])
    assert not torch.equal(a.stem_conv.weight, stacked(ARCHS[:2], seed=6).stem_conv.weight)


def test_a_row_does_not_depend_on_its_group():
    recipe = Recipe(train_size=128, val_size=64, test_size=64, epochs=2, batch_size=32, C=4)
    group = train_group(SPACE, ARCHS[:3], 1, "mnist1d", recipe)
    alone = train_architecture(SPACE, ARCHS[2], 1, "mnist1d", recipe)
    reordered = train_group(SPACE, ARCHS[[2, 0]], 1, "mnist1d", recipe)
    for row in (group[2], reordered[0]):
        assert row["error"] is None and row["arch"] == alone["arch"]
        assert row["params"] == alone["params"] and row["flops"] == alone["flops"]
        for metric in ("train_loss", "val_loss", "test_loss"):
            assert np.allclose(row[metric], alone[metric], rtol=1e-3), metric
    assert group[0]["test_loss"] != group[2]["test_loss"]
    other_seed = train_architecture(SPACE, ARCHS[2], 2, "mnist1d", recipe)
    assert other_seed["test_loss"] != alone["test_loss"]
    # The stand-alone size, as the ordinary network counts it.
    net = Network(SPACE, ARCHS[2], C=4, n_cells=1, in_channels=1, n_classes=10, dims=1)
    assert alone["params"] == sum(p.numel() for p in net.parameters())


def test_the_op_indices_move_with_the_model():
    model = stacked(ARCHS).to("meta")  # a device without storage: every tensor must follow
    cell = model.stages[0][0]
    indices = [getattr(cell, name) for uses in cell.plan for name in uses.values()]
    assert indices and all(index.device.type == "meta" for index in indices)
    assert not any(name.startswith("uses_") for name in model.state_dict())  # not saved: rebuilt from archs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_row_trained_on_cuda_matches_the_cpu_row():
    from nasgen.nb1d import build

    recipe = Recipe(train_size=256, val_size=256, test_size=256, epochs=2, batch_size=64, C=4)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    on_cpu = train_group(SPACE, ARCHS, 3, "mnist1d", recipe)
    on_gpu = train_group(SPACE, ARCHS, 3, "mnist1d", recipe, device="cuda")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags  # restored
    for cpu_row, gpu_row in zip(on_cpu, on_gpu):
        assert gpu_row["error"] is None and gpu_row["params"] == cpu_row["params"]
        for metric in ("train_loss", "val_loss", "test_loss"):
            assert np.allclose(gpu_row[metric], cpu_row[metric], rtol=1e-3), (metric, gpu_row[metric], cpu_row[metric])
    with pytest.raises(ValueError, match="trains in this process: use local=True"):
        build(SPACE, "mnist1d", [0], recipe, "unused", device="cuda", limit_archs=1, progress=False)
