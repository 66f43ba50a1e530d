import pickle
import struct

import numpy as np
import pytest
import torch

from nasgen.searchspace import BatchStream, DataNotFoundError, load_dataset


def test_digits_split_is_fixed_and_normalised():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 359, 360)
    torch.testing.assert_close(a.val.x, b.val.x)
    assert a.in_channels == 1 and a.image_size == 8 and a.n_classes == 10
    assert abs(a.train.x.mean().item()) < 1e-4
    c = load_dataset("digits", split_seed=1)
    assert not torch.equal(a.val.y, c.val.y)


def test_unknown_dataset_lists_known():
    with pytest.raises(KeyError, match="known: digits, cifar10, mnist, fashion_mnist"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name", ["cifar10", "mnist", "fashion_mnist"])
def test_missing_folder_says_what_to_put_where(name, tmp_path):
    with pytest.raises(DataNotFoundError, match="download"):
        load_dataset(name, tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="data folder"):
        load_dataset(name, None)


def _write_cifar(root, n_per_batch=6, n_test=8, rng=np.random.default_rng(0)):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": n_per_batch}, f)
    return folder


def test_cifar10_reads_real_pickle_batches(tmp_path):
    _write_cifar(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    assert len(data.train) + len(data.val) == 30 and len(data.test) == 8
    assert data.train.x.shape[1:] == (3, 32, 32) and data.in_channels == 3 and data.image_size == 32
    assert data.train.y.dtype == torch.long


def _write_idx(path, array):
    kind = 0x08
    header = struct.pack(">HBB", 0, kind, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_reads_real_idx_files(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, 20))
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 6))
    data = load_dataset(name, tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (18, 2, 6)
    assert data.train.x.shape[1:] == (1, 28, 28)
    small = load_dataset(name, tmp_path, limit=4)
    assert len(small.train) == 4 and len(small.test) == 4


def test_batch_stream_resumes_exactly():
    data = load_dataset("digits")
    a = BatchStream(data.train, 100, torch.Generator().manual_seed(1))
    for _ in range(12):  # crosses an epoch boundary (10 batches per epoch)
        a.next()
    state = a.state_dict()
    expected = [a.next()[1] for _ in range(15)]
    b = BatchStream(data.train, 100, torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    for y in expected:
        torch.testing.assert_close(b.next()[1], y)
    assert a.epochs == pytest.approx(2.7)
