"""Data-parallel search with torch.distributed: two gloo processes on the CPU.

One ``torch.multiprocessing.spawn`` of two ranks runs every scenario in the same process
group (the imports dominate the cost): a black-box controller (``credit``, with warm-up),
the same run interrupted and resumed from its checkpoint, and a gradient controller
(``darts``). Each rank saves what it ended with; the tests compare the ranks.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

ONESHOT = "nasgen/OneShotNAS-v0"
TINY = {"C": 4, "n_cells": 3, "limit": 64, "warmup_epochs": 0, "space": "small", "dataset": "digits"}
TINY_FLAGS = ["--env-kwargs", "C=4", "n_cells=3", "limit=64", "space=small", "dataset=digits", "--warmup-epochs", "0"]
DEADLINE_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Stop(Exception):
    """Raised inside a run to simulate a crash after a checkpoint."""


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from nasgen import controllers
    from nasgen.distributed import DistributedSearch, init_distributed
    from nasgen.search import SearchConfig, resume_state, seed_everything

    ctx = init_distributed("gloo")
    records = {}

    class Interrupted(DistributedSearch):
        def _one_step(self):
            if self.step == 4:
                raise _Stop
            return super()._one_step()

    def run(name, controller, steps, env_kwargs=TINY, cls=DistributedSearch, resume=False):
        config = SearchConfig(controller=controller, env=ONESHOT, steps=steps, seed=0, env_kwargs=dict(env_kwargs),
                              checkpoint_every=3)
        run_dir = Path(out) / name
        seed_everything(0)
        search = cls(config, run_dir, ctx)
        try:
            result = search.run(resume_state=resume_state(run_dir) if resume else None)
        except _Stop:
            dist.barrier()  # rank 0 has written the step-3 checkpoint before anyone reads it
            return search
        alpha = getattr(search.controller, "alpha", None)
        records[name] = {
            "weights": {k: v.clone() for k, v in search.env.unwrapped.model.state_dict().items()},
            "alpha": None if alpha is None else alpha.detach().clone(),
            "alpha_init": (controllers.make(controller, search.space, seed=0).alpha.detach().clone()
                           if alpha is not None else None),
            "paths": list(search.trained_paths), "shards": search.replica.shard_index,
            "result": result, "step": search.step}
        return search

    with_warmup = {**TINY, "warmup_epochs": 2}
    run("credit", "credit", 6, env_kwargs=with_warmup)
    run("credit-cut", "credit", 6, env_kwargs=with_warmup, cls=Interrupted)
    run("credit-cut", "credit", 6, env_kwargs=with_warmup, resume=True)
    darts = run("darts", "darts", 4)
    # The check is a real check: a perturbed rank is caught, on every rank.
    if rank == 1:
        with torch.no_grad():
            next(darts.env.unwrapped.model.parameters()).add_(1e-3)
    try:
        darts.check_in_sync()
        records["perturbed"] = "not detected"
    except RuntimeError as error:
        records["perturbed"] = str(error)
    torch.save(records, Path(out) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run the scenarios on two gloo ranks; returns (rank-0 records, rank-1 records, out dir)."""
    out = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two-rank run did not finish in {DEADLINE_S} s (deadlock?)")
    records = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return records[0], records[1], out


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_black_box_controller_trains_one_path_with_identical_weights_on_every_rank(two_ranks):
    zero, one, out = two_ranks
    a, b = zero["credit"], one["credit"]
    assert a["step"] == b["step"] == 6
    assert a["paths"] == b["paths"] and len(a["paths"]) == 6  # both ranks trained rank 0's paths
    assert _same_weights(a["weights"], b["weights"])
    # Each rank drew its own data: the shards are disjoint halves.
    for stream in ("train_stream", "val_stream"):
        first, second = set(a["shards"][stream].tolist()), set(b["shards"][stream].tolist())
        assert first and first.isdisjoint(second) and len(first) == len(second)
    assert a["result"]["derived_arch"] == b["result"]["derived_arch"]
    # Rank 0 alone wrote the results.
    run_dir = out / "credit"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch_size": 64}
    assert result["steps"] == 6 and result["best_reward"] is not None
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "normal.png").is_file()


def test_resumed_run_equals_the_uninterrupted_one(two_ranks):
    zero, one, _ = two_ranks
    whole, resumed = zero["credit"], zero["credit-cut"]
    assert resumed["step"] == 6
    assert resumed["paths"] == whole["paths"][3:]  # it restarted after the step-3 checkpoint
    assert resumed["result"]["derived_arch"] == whole["result"]["derived_arch"]
    assert resumed["result"]["best_reward"] == whole["result"]["best_reward"]
    assert _same_weights(resumed["weights"], whole["weights"])
    assert _same_weights(one["credit-cut"]["weights"], whole["weights"])


def test_gradient_controller_keeps_identical_alpha_on_every_rank(two_ranks):
    zero, one, _ = two_ranks
    a, b = zero["darts"], one["darts"]
    assert a["step"] == b["step"] == 4
    assert torch.equal(a["alpha"], b["alpha"])
    assert not torch.equal(a["alpha"], a["alpha_init"])  # alpha did move
    assert _same_weights(a["weights"], b["weights"])
    assert a["result"]["derived_arch"] == b["result"]["derived_arch"]


def test_divergence_between_ranks_is_detected(two_ranks):
    zero, one, _ = two_ranks
    for records in (zero, one):
        assert "supernet weights differ between ranks" in records["perturbed"]


def test_resume_with_another_number_of_processes_is_refused(two_ranks, capsys):
    from nasgen.cli.distributed import main

    _, _, out = two_ranks
    assert main(["--resume", str(out / "credit"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "written by 2 processes" in err and "--nproc_per_node=2" in err and len(err.splitlines()) == 1


def test_env_without_a_supernet_is_refused(capsys):
    from nasgen.cli.distributed import main

    assert main(["--env", "nasgen/TeacherArch-v0", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nasgen/OneShotNAS-v0" in err and len(err.splitlines()) == 1


@pytest.mark.slow  # 10-25 s: two fresh interpreters under torchrun; the spawn tests above cover the logic
def test_torchrun_command_line(tmp_path):
    """The user's way in: torchrun -m nasgen.distributed with search flags; rank 0 writes."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               "-m", "nasgen.distributed", "--controller", "reinforce", "--steps", "3", "--no-progress",
               "--logdir", str(tmp_path), *TINY_FLAGS]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(runs) == 1 and "on 2 processes (gloo)" in done.stdout
    assert len(list(runs[0].glob("events.out.tfevents.*"))) == 1  # one writer: rank 0
    assert json.loads((runs[0] / "result.json").read_text())["distributed"]["world_size"] == 2
