"""MNIST-1D through the mnist1d package's generator: offline, deterministic, sized on request."""

import random
import socket

import numpy as np
import pytest
import torch

from nasgen import searchspace
from nasgen.searchspace import MNIST1DOptions, load_dataset


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_published_setting_offline_and_deterministic(no_network):
    searchspace.data._generate_mnist1d.cache_clear()  # generate here, with the network refused
    np.random.seed(123)
    random.seed(123)
    global_state = (np.random.get_state()[1].copy(), random.getstate())
    data = load_dataset("mnist1d")
    # The generator seeds the global generators; the loader puts them back.
    assert np.array_equal(np.random.get_state()[1], global_state[0]) and random.getstate() == global_state[1]
    assert data.name == "mnist1d" and data.n_classes == 10 and data.dims == 1 and data.image_size == 40
    assert data.train.x.shape == (3200, 1, 40) and data.val.x.shape == (800, 1, 40)
    assert data.test.x.shape == (1000, 1, 40) and data.train.x.dtype == torch.float32
    assert set(data.val.y.tolist()) == set(range(10))
    # The published arrays: the package's own generator with its default arguments.
    from mnist1d.data import get_dataset_args, make_dataset

    published = make_dataset(get_dataset_args())
    np.testing.assert_allclose(data.test.x[:, 0].numpy(), published["x_test"].astype(np.float32))
    np.testing.assert_array_equal(data.test.y.numpy(), published["y_test"])
    train_and_val = torch.cat([data.train.x, data.val.x])[:, 0].numpy()
    assert sorted(map(bytes, train_and_val)) == sorted(map(bytes, published["x"].astype(np.float32)))


def test_same_arguments_give_identical_tensors():
    options = {"n_train": 400, "n_test": 100, "seed": 3}
    first = load_dataset("mnist1d", options=options)
    searchspace.data._generate_mnist1d.cache_clear()  # generated afresh, not served from the cache
    again = load_dataset("mnist1d", options=options)
    for a, b in ((first.train, again.train), (first.val, again.val), (first.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    first.train.x.add_(1.0)  # a caller's in-place change does not reach the next load
    assert not torch.equal(first.train.x, load_dataset("mnist1d", options=options).train.x)


def test_sizes_seed_and_split_seed_are_settable():
    data = load_dataset("mnist1d", limit=50, options={"n_train": 300, "n_test": 200, "n_val": 100, "seed": 7})
    assert (len(data.train), len(data.val), len(data.test)) == (50, 50, 50)
    full = load_dataset("mnist1d", options=dict(n_train=300, n_test=200, val_fraction=0.5, seed=7))
    assert (len(full.train), len(full.val), len(full.test)) == (150, 150, 200)
    other_seed = load_dataset("mnist1d", options=dict(n_train=300, n_test=200, val_fraction=0.5, seed=8))
    assert not torch.equal(full.test.x, other_seed.test.x)
    other_split = load_dataset("mnist1d", split_seed=1, options=dict(n_train=300, n_test=200, val_fraction=0.5, seed=7))
    assert torch.equal(full.test.x, other_split.test.x) and not torch.equal(full.val.x, other_split.val.x)


@pytest.mark.parametrize("options,message", [
    ({"n_test": 5}, "test split would hold 5 signals"),
    ({"n_train": 12}, "training split would hold 10|validation split would hold 2 signals"),
    ({"n_val": 3995}, "training split would hold 5 signals"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1.0"),
    ({"val_fraction": 0}, r"val_fraction must be in \(0, 1\), got 0"),
    ({"n_train": 100.5}, "n_train must be an int, got 100.5"),
    ({"size": 3}, "unknown mnist1d option 'size'; known: n_train, n_test, val_fraction, n_val, seed"),
])
def test_bad_sizes_raise_one_line(options, message):
    with pytest.raises(ValueError, match=message) as info:
        load_dataset("mnist1d", options=options)
    assert "\n" not in str(info.value)


def test_options_are_a_typed_dataclass_and_only_mnist1d_takes_them():
    assert MNIST1DOptions() == searchspace.dataset_options("mnist1d")
    assert MNIST1DOptions().n_val_signals == 800
    with pytest.raises(ValueError, match="dataset 'digits' takes no options, got n_test"):
        load_dataset("digits", options={"n_test": 10})
    assert "mnist1d" in searchspace.dataset_names()
    with pytest.raises(KeyError, match="known: digits, cifar10, mnist, fashion_mnist, mnist1d"):
        load_dataset("mnist2d")


def test_generator_settings_reach_the_generator_and_default_to_the_published_ones():
    published = load_dataset("mnist1d")
    spelled_out = load_dataset("mnist1d", options={"iid_noise_scale": 0.02, "corr_noise_scale": 0.25,
                                                   "max_translation": 48, "shear_scale": 0.75,
                                                   "scale_coeff": 0.4})
    assert torch.equal(published.test.x, spelled_out.test.x)
    noisier = load_dataset("mnist1d", options={"iid_noise_scale": 0.3})
    assert not torch.equal(published.test.x, noisier.test.x)
    assert torch.equal(published.test.y, noisier.test.y)  # same draws of classes, other signals


@pytest.mark.parametrize("name, value", [("iid_noise_scale", -0.1), ("shear_scale", float("nan")),
                                         ("max_translation", 1.5)])
def test_bad_generator_settings_are_one_line(name, value):
    with pytest.raises(ValueError, match=name) as error:
        load_dataset("mnist1d", options={name: value})
    assert "\n" not in str(error.value)
