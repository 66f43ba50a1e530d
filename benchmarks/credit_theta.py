"""``credit``'s theta optimiser settings on the teacher toy: the authors' against others.

On ``nasgen/TeacherArch-v0`` (10 edges x 10 ops, Taylor credit, one reward per step) each
setting runs a fixed horizon of ``--steps`` updates, with ``total_steps`` set to that horizon
so a cosine schedule anneals over the whole run, as in ``nasgen search``. Reported per
setting over the seeds: in how many the derived architecture equals the teacher at the end,
in how many it did at some step, the median step of the first recovery, and the median final
held-out score (0 = the teacher).

Usage::

    python benchmarks/credit_theta.py                    # 8 seeds, 3,000 steps
    python benchmarks/credit_theta.py --seeds 3 --steps 500
"""

from __future__ import annotations

import argparse
import math
import statistics

import gymnasium as gym
import numpy as np
import torch

import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import controllers

#: label -> credit keyword arguments
SETTINGS = {
    "authors: lr 3e-4 cosine, wd 3e-3, clip 1": dict(lr=3e-4, weight_decay=3e-3, grad_clip=1.0, lr_schedule="cosine"),
    "lr 1e-3 cosine, wd 3e-3, clip 1": dict(lr=1e-3, weight_decay=3e-3, grad_clip=1.0, lr_schedule="cosine"),
    "lr 0.01 cosine, wd 3e-3, clip 1": dict(lr=0.01, weight_decay=3e-3, grad_clip=1.0, lr_schedule="cosine"),
    "lr 0.01 constant (old default)": dict(lr=0.01, weight_decay=0.0, grad_clip=None, lr_schedule="constant"),
    "lr 0.01 cosine, no wd, no clip": dict(lr=0.01, weight_decay=0.0, grad_clip=None, lr_schedule="cosine"),
    "lr 0.01 cosine, no wd, clip 1": dict(lr=0.01, weight_decay=0.0, grad_clip=1.0, lr_schedule="cosine"),
    "lr 3e-4 cosine, no wd, clip 1": dict(lr=3e-4, weight_decay=0.0, grad_clip=1.0, lr_schedule="cosine"),
    "authors' toy: lr 1e-3 constant, no wd, no clip": dict(lr=1e-3, weight_decay=0.0, grad_clip=None,
                                                            lr_schedule="constant"),
}


def run(kwargs: dict, seed: int, steps: int, edges: int, ops: int) -> dict:
    env = gym.make("nasgen/TeacherArch-v0", n_edges=edges, n_ops=ops, seed=seed, credit="taylor")
    env.reset()
    teacher = env.unwrapped.teacher
    ctrl = controllers.make("credit", env.unwrapped.space, seed=seed, total_steps=steps, **kwargs)
    first = None
    for step in range(1, steps + 1):
        arch = ctrl.ask(1)[0]
        env.reset()
        _, reward, _, _, info = env.step(arch)
        ctrl.tell([arch], [reward], [info])
        if first is None and np.array_equal(ctrl.derive(), teacher):
            first = step
    final = ctrl.derive()
    return {"first": first, "final": bool(np.array_equal(final, teacher)), "score": env.unwrapped.score(final)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--edges", type=int, default=10)
    parser.add_argument("--ops", type=int, default=10)
    parser.add_argument("--settings", default=None, help="comma-separated indices into the settings (default all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = list(SETTINGS)
    if args.settings:
        labels = [labels[int(i)] for i in args.settings.split(",")]
    print(f"TeacherArch-v0 {args.edges} x {args.ops}, Taylor credit, {args.steps} steps (cosine over them), "
          f"seeds 0..{args.seeds - 1}")
    print("| setting | teacher at the end | ever recovered | median first recovery (step) | median final score |")
    print("|---|---:|---:|---:|---:|")
    for label in labels:
        runs = [run(SETTINGS[label], s, args.steps, args.edges, args.ops) for s in range(args.seeds)]
        firsts = [r["first"] if r["first"] is not None else math.inf for r in runs]
        median_first = statistics.median(firsts)
        print(f"| {label} | {sum(r['final'] for r in runs)}/{args.seeds} | "
              f"{sum(r['first'] is not None for r in runs)}/{args.seeds} | "
              f"{'> ' + str(args.steps) if math.isinf(median_first) else f'{median_first:.0f}'} | "
              f"{statistics.median(r['score'] for r in runs):.4f} |", flush=True)


if __name__ == "__main__":
    main()
