"""``--threads``: how many CPU threads torch may use, set before any work starts.

The supernets and controllers here are small: a second intra-op thread mostly adds
synchronisation, and on a shared machine every extra thread competes with the other
processes (README, "CPU threads", has the measurement behind the default).
"""

from __future__ import annotations

import argparse
import contextlib

#: torch intra-op threads when ``--threads`` is not given (measured: README, "CPU threads")
DEFAULT_THREADS = 1


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (default ``DEFAULT_THREADS``) to a command's parser."""
    from nasgen.validation import positive_int

    parser.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads of this process (default: {DEFAULT_THREADS}; "
                             f"see the README's 'CPU threads')")


def apply_threads(threads: int) -> None:
    """Set torch's intra-op threads to ``threads``, and its inter-op threads too where torch
    still allows it (only before the first parallel work of the process)."""
    import torch

    torch.set_num_threads(threads)
    # Inter-op threads are fixed once parallel work has run (e.g. in a test session).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
