"""Checkpoints: exact round trip of search states, no code run from a hostile file, a full
disk keeps the previous checkpoint."""

import hashlib
import io
import pickle
import resource
import signal
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from nasgen.checkpoint import (FORMAT, CheckpointError, CheckpointWriteError, load_checkpoint, remove_temporaries,
                               save_checkpoint, temporary_files)
from nasgen.cli import main


class Evil:
    """Unpickling this creates ``path``: the side effect a hostile file would have."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@contextmanager
def file_size_limit(limit: int):
    """A real write failure (EFBIG) past ``limit`` bytes, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an OSError instead of a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_states_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(7)
    theta = rng.normal(size=(3, 4))
    state = {"rng": rng.bit_generator.state, "legacy": np.random.RandomState(3).get_state(), "theta": theta,
             "mask": np.array([True, False]), "u32": np.arange(5, dtype=np.uint32),
             "f32": np.float32(0.25), "i64": np.int64(-3), "tensor": torch.arange(4.0), "big": 2**100 + 1,
             "nested": OrderedDict(a=[1, (2.5, None, "x")]), "empty": np.zeros((0, 2))}
    assert state["rng"]["state"]["state"] > 2**64  # PCG64's 128-bit ints must survive weights_only
    loaded = load_checkpoint(save_checkpoint(state, tmp_path / "checkpoint.pt"))
    assert loaded["rng"] == state["rng"] and loaded["big"] == 2**100 + 1
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["rng"]
    assert restored.random() == rng.random()
    legacy = np.random.RandomState()
    legacy.set_state(loaded["legacy"])
    assert legacy.random_sample() == np.random.RandomState(3).random_sample()
    for key in ("theta", "mask", "u32", "empty"):
        assert loaded[key].dtype == state[key].dtype and np.array_equal(loaded[key], state[key])
    assert type(loaded["f32"]) is np.float32 and loaded["f32"] == np.float32(0.25)
    assert type(loaded["i64"]) is np.int64 and loaded["i64"] == -3
    assert torch.equal(loaded["tensor"], state["tensor"])
    assert isinstance(loaded["nested"], OrderedDict) and loaded["nested"] == state["nested"]
    # The file is a header line and a torch archive that plain weights_only loading accepts.
    data = (tmp_path / "checkpoint.pt").read_bytes()
    header, payload = data.split(b"\n", 1)
    assert header == f"{FORMAT} {hashlib.sha256(payload).hexdigest()}".encode()
    torch.load(io.BytesIO(payload), weights_only=True)


def test_objects_that_cannot_be_stored_safely_are_refused_at_save(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\['x'\]\[0\]: object is not"):
        save_checkpoint({"x": [object()]}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="dtype object"):
        save_checkpoint({"x": np.array([None])}, tmp_path / "checkpoint.pt")
    assert not (tmp_path / "checkpoint.pt").exists() and not temporary_files(tmp_path / "checkpoint.pt")


def test_the_evil_payload_does_run_code_when_unpickled_unrestricted(tmp_path):
    """The hostile files below are real: loading them the old way creates the marker."""
    torch.load(io.BytesIO(torch_bytes({"x": Evil(tmp_path / "ran")})), weights_only=False)
    assert (tmp_path / "ran").exists()


def hostile_files(marker):
    evil_zip = torch_bytes({"config": {}, "step": 1, "controller": Evil(marker)})
    digest = hashlib.sha256(evil_zip).hexdigest()
    return {
        "plain pickle": pickle.dumps(Evil(marker)),
        "checkpoint-shaped zip": evil_zip,
        "old-format wrapper with a correct sha256": torch_bytes(
            {"format": "nasgen-checkpoint-1", "sha256": digest, "payload": evil_zip}),
        "this format with a correct sha256": f"{FORMAT} {digest}\n".encode() + evil_zip,
        "a correct sha256 over a plain pickle": (f"{FORMAT} {hashlib.sha256(pickle.dumps(Evil(marker))).hexdigest()}\n"
                                                 .encode() + pickle.dumps(Evil(marker))),
    }


@pytest.mark.parametrize("kind", list(hostile_files("m")))
def test_hostile_checkpoint_is_refused_without_running_code(tmp_path, kind, capsys):
    marker = tmp_path / "code-ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(hostile_files(marker)[kind])
    with pytest.raises(CheckpointError):
        load_checkpoint(run_dir / "checkpoint.pt")
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nothing was changed" in err, err
    assert not marker.exists()


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint({"step": 1}, tmp_path / "checkpoint.pt")
    with file_size_limit(4096), pytest.raises(CheckpointWriteError, match="File too large; the previous checkpoint"):
        save_checkpoint({"step": 2, "weights": torch.zeros(10_000)}, path)
    assert load_checkpoint(path) == {"step": 1}
    assert not temporary_files(path)


def test_a_full_disk_during_a_search_is_one_line_and_exit_1(tmp_path, capsys):
    argv = ["search", "--controller", "random", "--env", "nasgen/TeacherArch-v0", "--steps", "2", "--env-kwargs",
            "n_edges=3", "n_ops=3", "--logdir", str(tmp_path), "--no-progress"]
    with file_size_limit(200_000):  # the events file fits, the checkpoint (~0.7 MB) does not
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.strip().startswith("nasgen search: error: could not write checkpoint") and "File too large" in err
    assert len(err.strip().splitlines()) == 1
    (run_dir,) = tmp_path.iterdir()
    assert not temporary_files(run_dir / "checkpoint.pt") and not (run_dir / "checkpoint.pt").exists()


def test_leftover_temporaries_are_removed_on_resume(tmp_path, capsys):
    assert main(["search", "--controller", "random", "--env", "nasgen/TeacherArch-v0", "--steps", "2",
                 "--env-kwargs", "n_edges=3", "n_ops=3", "--logdir", str(tmp_path), "--no-progress"]) == 0
    (run_dir,) = tmp_path.iterdir()
    leftover = run_dir / ".checkpoint.pt.abc123.tmp"  # what a kill during a write leaves
    leftover.write_bytes(b"half a checkpoint")
    assert temporary_files(run_dir / "checkpoint.pt") == [leftover]
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 0
    assert not leftover.exists() and (run_dir / "checkpoint.pt").is_file()
    assert remove_temporaries(run_dir / "checkpoint.pt") == []


@pytest.mark.parametrize("content", [[1, 2], {"x": 1}, {"config": {"colour": 1}},
                                     {"config": {}, "t": {"__nasgen_ndarray__": torch.zeros(2, dtype=torch.bfloat16)}}],
                         ids=["a list", "no config", "bad config", "bad tagged array"])
def test_safe_but_foreign_checkpoint_is_one_line(tmp_path, content, capsys):
    payload = torch_bytes(content)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(f"{FORMAT} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload)
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nothing was changed" in err, err


def test_hostile_checkpoint_through_a_real_process_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    marker = tmp_path / "code-ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(hostile_files(marker)["a correct sha256 over a plain pickle"])
    result = subprocess.run([sys.executable, "-m", "nasgen", "search", "--resume", str(run_dir)], capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "refused without running it" in result.stderr and not marker.exists()


TINY = ["--controller", "credit", "--env", "nasgen/TeacherArch-v0", "--steps", "2",
        "--env-kwargs", "n_edges=3", "n_ops=3", "--no-progress"]


@pytest.mark.parametrize("damage", ["controller state of another shape", "env state missing"])
def test_safe_checkpoint_whose_states_do_not_fit_is_one_line_and_kept(tmp_path, damage, capsys):
    assert main(["search", "--logdir", str(tmp_path), *TINY]) == 0
    (run_dir,) = tmp_path.iterdir()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if damage == "env state missing":
        del state["env"]
    else:
        optimizer = state["controller"]["optimizer"]
        optimizer["theta"] = np.zeros((3, 2))
    save_checkpoint(state, run_dir / "checkpoint.pt")
    before = (run_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot load" in err and "Traceback" not in err, err
    assert (run_dir / "checkpoint.pt").read_bytes() == before
