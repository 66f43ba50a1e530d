"""Where work runs: the torch CPU threads of a process, the device of its models, and the
folder its outputs go to.

The supernets and controllers here are small: a second intra-op thread mostly adds
synchronisation, and on a shared machine every extra thread competes with the other
processes, so one thread is the default (the measurement: docs, "CPU threads").
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from nasgen.checks import InputError, short

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: torch intra-op threads when ``--threads`` is not given
DEFAULT_THREADS = 1
#: The longest file name and path most file systems take (Linux: 255 and 4096 bytes).
NAME_MAX, PATH_MAX = 255, 4096


def apply_threads(threads: int) -> None:
    """Set torch's intra-op threads to ``threads``, and its inter-op threads too where torch
    still allows it (only before the first parallel work of the process)."""
    torch.set_num_threads(threads)
    # Inter-op threads are fixed once parallel work has run (e.g. in a test session).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def check_device(device: str) -> str:
    """``device`` when torch can use it here; ValueError naming what is available otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {str(device)[:80]!r}; choose from: cpu, cuda, cuda:N") from None
    if parsed.type == "cpu":
        return device
    if parsed.type != "cuda":
        raise ValueError(f"unknown device {str(device)[:80]!r}; choose from: cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} but CUDA is not available here; use --device cpu")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_creatable_dir(path: str | Path, flag: str) -> None:
    """Refuse a folder that cannot be created or written: it is a file, or its nearest
    existing ancestor is a file or not writable. Creates nothing.

    Raises:
        ValueError: one line naming ``flag`` and the path.
    """
    path = Path(path)
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise ValueError(f"{flag} {short(str(path))}: the folder name {short(part, 40)} is longer than "
                             f"{NAME_MAX} bytes, the most a file system takes")
    if len(os.fsencode(str(path))) > PATH_MAX:
        raise ValueError(f"{flag} {short(str(path))} is longer than {PATH_MAX} bytes")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"{flag} {str(path)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {str(path)!r} cannot be written: no write permission in {str(existing)!r}")


def memory_bytes() -> Optional[int]:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's and torch's global generators (the CLI's one call)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def isolated_seed(seed: int) -> Iterator[None]:
    """Python's, numpy's and torch's global generators seeded to ``seed`` inside the block and
    put back after it: what runs inside does not depend on what ran before, nor leaks out."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        seed_everything(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def load_average() -> list[float]:
    """The 1/5/15-minute load averages, rounded (NaNs where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [math.nan] * 3


@contextlib.contextmanager
def folder_lock(folder: str | Path, name: str, what: str, holder: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the ``with`` block: an ``flock`` on
    ``folder/name``, taken without waiting. The kernel drops it when its process exits however
    that ends, so a killed holder never leaves the folder locked (the file stays, with the last
    holder's pid). A folder this call created is removed again if only the lock file is in it
    at the end (work refused before it wrote anything).

    Args:
        folder: the folder (created if missing).
        name: the lock file's name.
        what, holder: for the message: "``what`` FOLDER is in use by another ``holder`` (pid N)".

    Yields:
        ``folder`` as a Path.

    Raises:
        InputError: another process holds the lock (one line with its pid).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:  # no flock on Windows: the work runs unlocked there
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
                raise InputError(f"{what} {folder} is in use by another {holder} "
                                 f"(pid {pid if pid.isdigit() else 'unknown'})") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield folder
        finally:
            if created and os.listdir(folder) == [name]:
                (folder / name).unlink()
                folder.rmdir()
    finally:
        os.close(fd)  # releases the lock


# --- Ray (an optional dependency: the caller imports it and passes the module) ------------------
#: Seconds to wait for a cluster's port to answer (Ray itself retries an unreachable one for minutes).
CONNECT_TIMEOUT_S = 10.0


def append_synced(path: str | Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if missing) in one write, synced, under a blocking
    ``flock`` of the file: several processes appending whole lines never interleave them."""
    with open(path, "ab") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def error_line(error: BaseException) -> str:
    """The last meaningful line of a (Ray-wrapped) exception, e.g. ``ValueError: lr must be > 0``."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    line = next((line for line in reversed(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b",
                                                                line)), lines[-1] if lines else type(error).__name__)
    return line if len(line) <= 300 else line[:297] + "..."


def worker_environment() -> dict:
    """Ray's ``runtime_env`` for the workers: this process's import path, so a plug-in given as
    a ``module:Class`` reference imports in every worker as it does here (an installed plug-in
    is found through its entry point anyway). On a cluster the path must exist on every node."""
    own = tuple(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix))
    path = [p for p in dict.fromkeys([os.getcwd(), *sys.path])
            if p and os.path.isdir(p) and not os.path.realpath(p).startswith(own)]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(path)}}


def ray_as_completed(ray, pending: dict) -> Iterator[tuple[Any, Any, Optional[Exception]]]:
    """``(key, result, None)``, or ``(key, None, error)`` when the task failed or its worker
    died, for each Ray task of ``pending`` (object ref -> key) as it finishes; finished refs
    leave ``pending``. Left early (an interrupt, a stop), the unfinished tasks are cancelled:
    they must not run on in a joined cluster."""
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                key = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:
                    yield key, None, error
                    continue
                yield key, result, None
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def start_ray(ray, address: Optional[str] = None, num_cpus: Optional[int] = None,
              num_gpus: Optional[int] = None) -> bool:
    """Join the cluster at ``address`` (``auto`` or ``HOST:PORT``) or start a local instance
    with ``num_cpus``/``num_gpus``, unless Ray is up already; returns whether this call started it.
    A ``HOST:PORT`` that does not answer within ``CONNECT_TIMEOUT_S`` is refused at once.

    Raises:
        InputError: Ray could not start or the cluster could not be joined (one line).
    """
    if ray.is_initialized():
        return False
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    if address and address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError) as error:
            raise InputError(f"could not join {where}: {type(error).__name__}: {error}") from None
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "runtime_env": worker_environment()}
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
        raise InputError(f"could not start or join {where}: {error_line(error)}") from None
    for number, handler in handlers.items():  # Ray's core replaces SIGTERM's with one that exits at once
        if handler is not None:
            signal.signal(number, handler)
    return True
