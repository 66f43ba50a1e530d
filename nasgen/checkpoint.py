"""Atomic, checksummed checkpoints.

A checkpoint is written to a temporary file in the same folder and renamed over the old
one, so a crash never leaves a half-written file under the real name. The payload carries
its SHA-256, so a damaged file is refused on load instead of silently half-loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "nasgen-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or belongs to another run."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapper = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(wrapper, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    Only load checkpoints you trust: they are pickles (numpy generator states, optimiser
    state), read with ``weights_only=False``.

    Raises:
        CheckpointError: missing, unreadable, wrong format, or checksum mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        wrapper = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds on damaged files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(error).__name__})") from None
    if not isinstance(wrapper, dict) or wrapper.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nasgen checkpoint (expected format {FORMAT})")
    payload = wrapper.get("payload", b"")
    if hashlib.sha256(payload).hexdigest() != wrapper.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
