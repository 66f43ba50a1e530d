"""Atomic, checksummed checkpoints that never run code when read.

File layout: one header line ``nasgen-checkpoint-2 <sha256 hex>\\n``, then the payload, a
``torch.save`` archive of the state. Loading reads the bytes, checks the header and the
SHA-256 of the payload *before* anything is deserialised, then unpickles the payload with
``torch.load(weights_only=True)``: torch's restricted unpickler, which builds tensors and
plain containers (dict, list, tuple, str, int, float, bool, None, bytes) and refuses every
other class or function, so a hostile file cannot run code.

The checksum sits in the same file as the payload, so it only detects accidents (a torn or
bit-flipped file); anyone who can write a file can also write a matching checksum. The
protection against a hostile checkpoint is ``weights_only=True``, not the checksum.

States hold numpy arrays and scalars (controller parameters, generator states); they are
stored as tensors under a one-key tag (``{"__nasgen_ndarray__": tensor}``) and turned back
into numpy on load, so no numpy class has to be allowed through the unpickler. Python ints
of any size (a PCG64 state has 128-bit ones) are plain pickle data and round-trip as they are.

A checkpoint is written to a temporary file in the same folder and renamed over the old
one, so a crash or a full disk never leaves a half-written file under the real name.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasgen import jsonfile
from nasgen.checks import InputError

FORMAT = "nasgen-checkpoint-2"
_MAGIC = FORMAT.encode() + b" "
_HEADER_LENGTH = len(_MAGIC) + 64 + 1  # magic, hex digest, newline
_NDARRAY = "__nasgen_ndarray__"
_NPSCALAR = "__nasgen_npscalar__"
_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.Size, torch.dtype, torch.device)


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, unsafe, or belongs to another run."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, no permission); the previous one is kept."""


class StateError(CheckpointError, InputError):
    """A state holds an object that is not plain data (a plug-in controller's, say): the run
    is refused at its first checkpoint, naming the key."""


def _encode(value: Any, where: str) -> Any:
    """``value`` with numpy arrays and scalars as tagged tensors; CheckpointError on anything
    that ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.dtype.kind in "USVMm":
            raise CheckpointError(f"cannot checkpoint {where}: numpy array of dtype {value.dtype}")
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        if isinstance(value, (np.str_, np.bytes_)):
            return value.item()
        return {_NPSCALAR: torch.from_numpy(np.asarray(value).copy())}
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, dict):
        if any(isinstance(k, str) and k in (_NDARRAY, _NPSCALAR) for k in value):
            raise CheckpointError(f"cannot checkpoint {where}: it uses the reserved key {_NDARRAY!r}")
        items = ((k, _encode(v, f"{where}[{k!r}]")) for k, v in value.items())
        return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise StateError(f"cannot checkpoint {where}: {type(value).__name__} is not plain data; a state holds "
                     f"tensors, numpy arrays, numbers, strings, lists and dicts only")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _NDARRAY in value and isinstance(value[_NDARRAY], torch.Tensor):
            return value[_NDARRAY].numpy()
        if len(value) == 1 and _NPSCALAR in value and isinstance(value[_NPSCALAR], torch.Tensor):
            return value[_NPSCALAR].numpy()[()]
        items = ((k, _decode(v)) for k, v in value.items())
        return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


def temporary_files(path: str | Path) -> list[Path]:
    """The temporary files ``save_checkpoint`` leaves when killed mid-write."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def remove_temporaries(path: str | Path) -> list[Path]:
    """Delete the leftovers of writes to ``path`` that were killed; returns what was removed."""
    removed = temporary_files(path)
    for leftover in removed:
        leftover.unlink(missing_ok=True)
    return removed


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename).

    Args:
        state: tensors, numpy arrays and scalars, and plain containers of them.
        path: the checkpoint file.

    Returns:
        ``path``.

    Raises:
        CheckpointError: ``state`` holds an object that cannot be stored safely.
        CheckpointWriteError: the file could not be written; the previous checkpoint is kept.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(_encode(state, "state"), buffer)
    payload = buffer.getvalue()
    header = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        jsonfile.replace_file(path, header + payload)
    except OSError as error:
        kept = "the previous checkpoint is kept" if path.is_file() else "no checkpoint was written"
        raise CheckpointWriteError(f"could not write checkpoint {path}: {error.strerror or error}; {kept}") from None
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``, without running code from it.

    The header and the SHA-256 are checked before anything is deserialised; the payload is
    then read with ``torch.load(weights_only=True)``. The checksum only catches accidents
    (see the module docstring); ``weights_only`` is what makes a hostile file harmless.

    Raises:
        CheckpointError: missing, unreadable, not a checkpoint of this format, checksum
            mismatch, or holding anything but tensors and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    header, payload = data[:_HEADER_LENGTH], data[_HEADER_LENGTH:]
    if not (header.startswith(_MAGIC) and header.endswith(b"\n")):
        raise CheckpointError(f"{path} is not a nasgen checkpoint of format {FORMAT} (older nasgen "
                              f"checkpoints are not read: they need unrestricted unpickling)")
    if hashlib.sha256(payload).hexdigest().encode() != header[len(_MAGIC):-1]:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the error says enough
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds; UnpicklingError for a refused object
        first = str(error).strip().splitlines()
        detail = next((line.strip().split(" was not an allowed")[0] for line in first if "Unsupported" in line),
                      type(error).__name__)
        raise CheckpointError(f"checkpoint {path} holds more than tensors and plain data and was refused "
                              f"without running it ({detail[:160]})") from None
    try:
        if not isinstance(state, dict):
            raise TypeError(type(state).__name__)
        return _decode(state)
    except Exception as error:  # e.g. a tagged array that is not a plain tensor
        raise CheckpointError(f"checkpoint {path} does not hold a nasgen state ({type(error).__name__})") from None
