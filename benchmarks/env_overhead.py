"""Env overhead over a bare supernet forward, and OneShotNAS env steps per second.

What is timed, on the same supernet (the env's own ``env.unwrapped.model``), the same
architectures and the same batch size:

- reward path: ``env.step(arch)`` of an env made with ``train_weights=False`` against the
  bare reward: ``cross_entropy(model(x, arch), y).item()`` under ``torch.no_grad`` on a
  fixed batch.
- full step: ``env.step(arch)`` with ``train_weights=True`` against the bare reward plus a
  bare weight step (forward, backward, gradient clipping, SGD step) on a fixed batch.

The env does more than the bare code on purpose (validation of the action, drawing fresh
batches, accuracy, parameter count, info and observation); the overhead is that extra
time. Bare and env calls are interleaved round by round so load on the machine hits both
alike; each figure is the median over all calls, and the ratio of the fastest calls is shown
too (on a busy machine the minimum is the steadier estimate of the intrinsic cost). Ratios
are from one run; absolute times depend on the machine.

Usage::

    python benchmarks/env_overhead.py            # the CPU default sizes (digits, C=8, 5 cells)
    python benchmarks/env_overhead.py --quick    # fewer rounds, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import nasgen.envs  # noqa: F401  (registers the ids)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_reward(model, x, y, arch) -> float:
    with torch.no_grad():
        return -F.cross_entropy(model(x, arch), y).item()


def bare_train(model, optimizer, x, y, arch, clip: float) -> float:
    model.train()
    loss = F.cross_entropy(model(x, arch), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def measure(env_kwargs: dict, rounds: int, steps_per_round: int, seed: int) -> dict[str, float]:
    """Median seconds per call of the bare and the env paths (see the module docstring)."""
    results: dict[str, list[float]] = {"bare_reward": [], "env_reward": [], "bare_full": [], "env_full": []}
    reward_env = gym.make("nasgen/OneShotNAS-v0", train_weights=False, **env_kwargs)
    full_env = gym.make("nasgen/OneShotNAS-v0", train_weights=True, **env_kwargs)
    reward_env.reset(seed=seed)
    full_env.reset(seed=seed)
    u = full_env.unwrapped
    rng = np.random.default_rng(seed)
    archs = [u.space.sample(rng) for _ in range(steps_per_round)]
    x, y = reward_env.unwrapped.next_val_batch()
    xt, yt = u.next_train_batch()
    bare_model = reward_env.unwrapped.model
    bare_optimizer = torch.optim.SGD(u.model.parameters(), **u.weight_hparams)

    # Warm-up of every path (first calls allocate and pick kernels).
    for arch in archs[:2]:
        bare_reward(bare_model, x, y, arch)
        reward_env.reset()
        reward_env.step(arch)
        full_env.reset()
        full_env.step(arch)
        bare_train(u.model, bare_optimizer, xt, yt, arch, u.grad_clip)

    for _ in range(rounds):
        for arch in archs:
            results["bare_reward"].append(timed(lambda: bare_reward(bare_model, x, y, arch)))
            reward_env.reset()  # one architecture per episode; the (cheap) reset is not timed
            results["env_reward"].append(timed(lambda: reward_env.step(arch)))
            results["bare_full"].append(timed(lambda: (bare_reward(u.model, x, y, arch),
                                                       bare_train(u.model, bare_optimizer, xt, yt, arch, u.grad_clip))))
            full_env.reset()
            results["env_full"].append(timed(lambda: full_env.step(arch)))
    return {**{k: statistics.median(v) for k, v in results.items()},
            **{f"{k}_min": min(v) for k, v in results.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--C", type=int, default=8, help="supernet channels (default 8)")
    parser.add_argument("--n-cells", type=int, default=5, help="supernet cells (default 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="rounds over the architectures")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (2 if args.quick else 10)
    steps_per_round = 10 if args.quick else 20
    env_kwargs = dict(dataset="digits", space="small", C=args.C, n_cells=args.n_cells,
                      batch_size=args.batch_size, warmup_epochs=0)
    t = measure(env_kwargs, rounds, steps_per_round, args.seed)

    print(f"OneShotNAS-v0 on digits, space small, C={args.C}, {args.n_cells} cells, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {rounds * steps_per_round} calls per figure (medians)")
    header = (f"{'path':<34}{'bare ms':>9}{'env ms':>9}{'env/bare':>10}{'overhead':>10}"
              f"{'min ratio':>11}{'env steps/s':>13}")
    print(header)
    print("-" * len(header))
    for label, key in (("reward only (train_weights=False)", "reward"), ("full step (train_weights=True)", "full")):
        bare, env = t[f"bare_{key}"], t[f"env_{key}"]
        ratio, min_ratio = env / bare, t[f"env_{key}_min"] / t[f"bare_{key}_min"]
        print(f"{label:<34}{bare * 1e3:>9.2f}{env * 1e3:>9.2f}{ratio:>10.3f}{(ratio - 1) * 100:>9.1f}%"
              f"{min_ratio:>11.3f}{1 / env:>13.1f}")
    print("target: overhead <= 5% (env/bare <= 1.05); env steps/s from the median env call")


if __name__ == "__main__":
    main()
