import hashlib
import io
import pickle
import struct

import numpy as np
import pytest
import torch

from nasgen.searchspace import BatchStream, DataError, DataNotFoundError, load_dataset


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


def _md5sums(folder):
    """An ``MD5SUMS`` manifest of the batch files, as ``md5sum`` writes it."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    lines = [f"{hashlib.md5((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (folder / "MD5SUMS").write_text("\n".join(lines) + "\n")


def _write_cifar(root, n_per_batch=6, n_test=8, rng=np.random.default_rng(0), manifest=True, protocol=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            if protocol == "python2":
                _dump_py2(batch, f)
            else:
                pickle.dump(batch, f, protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": n_per_batch}, f)
    if manifest:
        _md5sums(folder)
    return folder


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as CIFAR-10's own cPickle files do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _py2_string(self, data: bytes):
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    dispatch[bytes] = lambda self, obj: self._py2_string(obj)
    dispatch[str] = lambda self, obj: self._py2_string(obj.encode("latin1"))


def _dump_py2(obj, f):
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    f.write(buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


@pytest.mark.parametrize("protocol", ["python2", 2, 4, 5])
def test_cifar10_reads_real_pickle_batches(tmp_path, protocol):
    _write_cifar(tmp_path, protocol=protocol)
    data = load_dataset("cifar10", tmp_path)
    assert len(data.train) + len(data.val) == 30 and len(data.test) == 8
    assert data.train.x.shape[1:] == (3, 32, 32) and data.in_channels == 3 and data.image_size == 32
    assert data.train.y.dtype == torch.long


def test_cifar10_without_a_manifest_must_match_the_published_md5s(tmp_path):
    folder = _write_cifar(tmp_path, manifest=False)
    with pytest.raises(DataError, match="data_batch_1 does not match CIFAR-10's published MD5 .*MD5SUMS"):
        load_dataset("cifar10", tmp_path)
    _md5sums(folder)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:-1] + b"\x00")  # damaged after
    with pytest.raises(DataError, match="test_batch does not match its MD5 in .*MD5SUMS"):
        load_dataset("cifar10", tmp_path)


class _Evil:
    """Unpickling this creates ``path``: the side effect a hostile file would have."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_unpickling_the_evil_object_does_run_code(tmp_path):
    """The hostile files below are real: an unrestricted load creates the marker."""
    pickle.loads(pickle.dumps(_Evil(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("victim", ["data_batch_3", "batches.meta"])
def test_evil_cifar_file_is_refused_even_with_a_matching_manifest(tmp_path, victim):
    folder = _write_cifar(tmp_path / "data")
    marker = tmp_path / "code-ran"
    evil = {"data": _Evil(marker), "labels": [0]} if victim != "batches.meta" else {"label_names": _Evil(marker)}
    (folder / victim).write_bytes(pickle.dumps(evil))
    _md5sums(folder)  # the attacker writes the manifest too
    with pytest.raises(DataError, match=f"{victim} was refused without unpickling it further: it names .*open"):
        load_dataset("cifar10", tmp_path / "data")
    assert not marker.exists()


def test_garbage_cifar_and_mnist_files_are_one_line_errors(tmp_path, capsys):
    from nasgen.cli import main

    folder = _write_cifar(tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(b"\x80\x04 not a pickle at all" * 10)
    _md5sums(folder)
    with pytest.raises(DataError, match="data_batch_2 is not a CIFAR-10 python batch"):
        load_dataset("cifar10", tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]}))
    _md5sums(folder)
    with pytest.raises(DataError, match="data_batch_2 is not a CIFAR-10 python batch .*uint8"):
        load_dataset("cifar10", tmp_path / "cifar")
    assert main(["search", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"), "--logdir",
                 str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "data_batch_2 is not a CIFAR-10 python batch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()

    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"garbage, not an idx file")
    with pytest.raises(DataError, match="MNIST files in .* are not valid idx files"):
        load_dataset("mnist", tmp_path / "mnist")
    assert main(["search", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--logdir",
                 str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "are not valid idx files" in err and len(err.strip().splitlines()) == 1


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


def test_the_cifar_unpickler_allows_numpy_arrays_and_nothing_else():
    from nasgen.searchspace.cifar_files import UnsafePickleError, load_plain_pickle

    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for protocol in (2, 4, 5):
        assert np.array_equal(load_plain_pickle(pickle.dumps({"a": array}, protocol=protocol))["a"], array)
    for hostile in (b"cos\nsystem\n(Vtrue\ntR.", b"c_codecs\nencode\n(Vx\nVrot13\ntR.",
                    b"cbuiltins\neval\n(V1\ntR.", b"cnumpy\nload\n(Vx\ntR."):
        with pytest.raises(UnsafePickleError):
            load_plain_pickle(hostile)
