"""Reading CIFAR-10's python batches (``cifar-10-batches-py/``) without trusting them.

The batches are pickles, and unpickling a file can run any code it names. Two guards, each
enough on its own against a hostile folder:

1. **Integrity before unpickling.** Every file's MD5 must equal the one torchvision
   publishes for CIFAR-10 (``CIFAR10.train_list``/``test_list``/``meta``). A trimmed or
   home-made copy (our tests, a subset for a laptop) cannot match those; it may carry its
   own manifest, ``MD5SUMS`` next to the batches in ``md5sum`` format
   (``md5sum data_batch_* test_batch batches.meta > MD5SUMS``), and then every file must
   match that manifest instead. A manifest is written by whoever wrote the folder, so it
   only detects accidents; it is what makes the second guard necessary.
2. **A restricted unpickler.** ``find_class`` allows exactly what a CIFAR batch is made of,
   numpy's array reconstruction (``_reconstruct`` or, for pickle protocol 5, ``_frombuffer``;
   ``ndarray``; ``dtype``), and refuses every other class or function, so even a file that
   passes the first check cannot run code. Such a file is refused with one line.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, DataNotFoundError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

MANIFEST = "MD5SUMS"


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles of protocol <= 2 use it for bytes; latin1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"it calls _codecs.encode with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a class or function other than numpy's array reconstruction."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Plain pickle data plus numpy arrays; every other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ARRAY_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"it names {module}.{name}, which a CIFAR-10 batch never does") from None


def load_plain_pickle(data: bytes) -> Any:
    """Unpickle ``data`` allowing only plain data and numpy arrays (latin1 for Python 2 pickles).

    Raises:
        UnsafePickleError: the pickle names any other class or function.
        pickle.UnpicklingError, EOFError, ValueError, ...: not a pickle.
    """
    return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_manifest(folder: Path) -> dict[str, str] | None:
    """``{file name: md5}`` of ``folder/MD5SUMS`` (``md5sum`` output), or None when absent.

    Raises:
        ValueError: a line is not ``<32 hex digits>  <name>``.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return None
    entries = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest.lower()) or not name:
            raise ValueError(f"{path} line {number} is not '<md5>  <file name>' (md5sum output): {line[:80]!r}")
        entries[name] = digest.lower()
    return entries


def _verify(folder: Path, names_md5: list[tuple[str, str]]) -> dict[str, bytes]:
    """The bytes of every file, after checking them against the published MD5s or MD5SUMS."""
    contents = {name: (folder / name).read_bytes() for name, _ in names_md5}
    official = [(name, expected, md5(contents[name])) for name, expected in names_md5]
    if all(expected == got for _, expected, got in official):
        return contents
    try:
        manifest = read_manifest(folder)
    except ValueError as error:
        raise DataError(str(error)) from None
    if manifest is None:
        name, expected, got = next(row for row in official if row[1] != row[2])
        raise DataError(f"{folder / name} does not match CIFAR-10's published MD5 (expected {expected}, got {got}): "
                        f"a damaged or foreign file; download again (--download), or, for a trimmed copy you made, "
                        f"list every file's MD5 in {folder / MANIFEST} (md5sum output)")
    for name, _, got in official:
        if name not in manifest:
            raise DataError(f"{folder / MANIFEST} does not list {name}; it must list every batch file and batches.meta")
        if manifest[name] != got:
            raise DataError(f"{folder / name} does not match its MD5 in {folder / MANIFEST} "
                            f"(expected {manifest[name]}, got {got}): a damaged file")
    return contents


def _unpickle(path: Path, data: bytes) -> Any:
    try:
        return load_plain_pickle(data)
    except UnsafePickleError as error:
        raise DataError(f"{path} was refused without unpickling it further: {error}") from None
    except Exception as error:  # garbage: pickle raises many kinds
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(error).__name__}: "
                        f"{str(error)[:80]})") from None


def _batch(path: Path, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(path, data)
    images = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get("labels") if isinstance(entry, dict) else None
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
            or images.shape[1] != 3 * 32 * 32 or not isinstance(labels, list)
            or len(labels) != len(images) or not all(type(y) is int and 0 <= y < 10 for y in labels)):
        raise DataError(f"{path} is not a CIFAR-10 python batch (expected a dict with 'data' uint8 [N, 3072] "
                        f"and 'labels', N ints in 0..9)")
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def read_cifar10(root: str, download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 from ``root/cifar-10-batches-py``, verified before it is unpickled.

    Args:
        root: the folder holding ``cifar-10-batches-py/``.
        download: fetch (and MD5-check) torchvision's archive when files are missing, or
            when they do not match CIFAR-10's published MD5s and there is no ``MD5SUMS`` (a
            trimmed copy with its manifest is never overwritten; a mismatch is an error).

    Returns:
        Train images ``[50000, 32, 32, 3]`` uint8, train labels, test images, test labels.

    Raises:
        DataNotFoundError: files missing.
        DataError: a file fails its MD5 check, names anything but numpy arrays, or is not a batch.
    """
    from torchvision.datasets import CIFAR10

    folder = Path(root) / CIFAR10.base_folder
    names_md5 = [(name, digest) for name, digest in CIFAR10.train_list + CIFAR10.test_list]
    names_md5.append((CIFAR10.meta["filename"], CIFAR10.meta["md5"]))
    present = all((folder / n).is_file() for n, _ in names_md5)
    if download and not (present and ((folder / MANIFEST).is_file()
                                      or all(md5((folder / n).read_bytes()) == d for n, d in names_md5))):
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CIFAR10.url, root, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    missing = [name for name, _ in names_md5 if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 not found in {root}: put cifar-10-batches-py/ (data_batch_1..5, "
                                f"test_batch, batches.meta) there, or download=True (--download); "
                                f"missing: {', '.join(missing)}")
    contents = _verify(folder, names_md5)
    meta_name = CIFAR10.meta["filename"]
    meta = _unpickle(folder / meta_name, contents[meta_name])
    names = meta.get(CIFAR10.meta["key"]) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, str) for n in names):
        raise DataError(f"{folder / meta_name} is not CIFAR-10's batches.meta (expected 10 label names)")
    train = [_batch(folder / n, contents[n]) for n, _ in CIFAR10.train_list]
    test = [_batch(folder / n, contents[n]) for n, _ in CIFAR10.test_list]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test]))
