"""Reward evaluations and wall time each black-box controller needs to recover the teacher.

On ``nasgen/TeacherArch-v0`` (10 edges x 10 ops by default, 10^10 architectures) every
black-box controller runs ``ask -> env.step -> tell`` with one-step episodes until its
``derive()`` equals the hidden teacher architecture (checked after every ``tell``) or until
it has spent the evaluation cap. Every reward evaluation counts (``info["evaluations"]``:
exact credit pays 1 + E forward passes per step, hybrid 1 + |K|). Wall time is the time spent
in ``ask``, ``env.step`` and ``tell`` (the ``derive`` check is the benchmark's, not the
controller's). The env is made with each controller's ``env_requirements``; the extra rows
``credit[exact]`` and ``credit[hybrid]`` override the credit estimator. A label
``NAME{key=value;...}`` runs controller ``NAME`` with those hyper-parameters (values are
Python literals), e.g. ``rnn{entropy_weight=1e-4;baseline_decay=0.99}`` for ENAS's values.

A controller that does not recover the teacher within the cap in a seed counts as "> cap" in
that seed; the median is then reported as "> cap" when half the seeds or more failed.

Usage::

    python benchmarks/teacher_recovery.py            # 10 seeds, cap 10,000 evaluations
    python benchmarks/teacher_recovery.py --quick    # 3 seeds, cap 3,000
    python benchmarks/teacher_recovery.py --controllers credit,asng --seeds 5 --out results.json
    python benchmarks/teacher_recovery.py --controllers "rnn,rnn{entropy_weight=1e-4}" --seeds 8
    python benchmarks/teacher_recovery.py --controllers random,my_module:MyController   # a plug-in
"""

from __future__ import annotations

import argparse
import ast
import math
import re
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import nasgen.envs  # noqa: F401  (registers the env ids)
from _common import VARIANTS, controller_problem  # VARIANTS: credit on the other estimators, paying for ablations
from nasgen import controllers, jsonfile

ENV_ID = "nasgen/TeacherArch-v0"


def parse_label(label: str) -> tuple[str, dict]:
    """``(row label without hyper-parameters, controller kwargs)`` of ``NAME{key=value;...}``."""
    match = re.fullmatch(r"([^{}]+)\{([^{}]*)\}", label.strip())
    if match is None:
        if "{" in label or "}" in label:
            raise SystemExit(f"bad label {label!r}; expected NAME or NAME{{key=value;...}}")
        return label.strip(), {}
    kwargs = {}
    for pair in filter(None, (p.strip() for p in match.group(2).split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SystemExit(f"bad hyper-parameter {pair!r} in {label!r}; expected key=value")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise SystemExit(f"bad value {value.strip()!r} for {key.strip()} in {label!r}; expected a Python literal")
    return match.group(1).strip(), kwargs


def run_one(name: str, env_kwargs: dict, seed: int, args, controller_kwargs: dict | None = None) -> dict:
    """One search; returns evaluations and seconds to recovery (None if never) and the final
    architecture's held-out score."""
    env = gym.make(ENV_ID, n_edges=args.edges, n_ops=args.ops, seed=seed, **env_kwargs)
    env.reset()
    teacher = env.unwrapped.teacher
    ctrl = controllers.make(name, env.unwrapped.space, seed=seed, **(controller_kwargs or {}))
    used, seconds, steps = 0, 0.0, 0
    recovered_at, recovered_s = None, None
    while used < args.cap:
        start = time.perf_counter()
        archs = ctrl.ask(ctrl.samples_per_step)
        rewards, infos = [], []
        for arch in archs:
            env.reset()  # one-step episodes
            _, reward, _, _, info = env.step(arch)
            rewards.append(reward)
            infos.append(info)
        ctrl.tell(archs, rewards, infos)
        seconds += time.perf_counter() - start
        used += sum(int(info["evaluations"]) for info in infos)
        steps += 1
        if np.array_equal(ctrl.derive(), teacher):
            recovered_at, recovered_s = used, seconds
            break
    return {"seed": seed, "evaluations": recovered_at, "seconds": recovered_s, "spent": used,
            "steps": steps, "final_score": env.unwrapped.score(ctrl.derive())}


def summarise(label: str, runs: list[dict], cap: int) -> dict:
    evals = [r["evaluations"] if r["evaluations"] is not None else math.inf for r in runs]
    secs = [r["seconds"] if r["seconds"] is not None else math.inf for r in runs]
    return {"controller": label, "recovered": sum(r["evaluations"] is not None for r in runs), "seeds": len(runs),
            "median_evaluations": statistics.median(evals), "median_seconds": statistics.median(secs),
            "median_final_score": statistics.median(r["final_score"] for r in runs), "cap": cap, "runs": runs}


def table(rows: list[dict]) -> str:
    def fmt(value: float, spec: str) -> str:
        return "> cap" if math.isinf(value) else format(value, spec)

    lines = ["| controller | recovered | median evaluations | median wall s | median final score |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['controller']} | {row['recovered']}/{row['seeds']} | "
                     f"{fmt(row['median_evaluations'], '.0f')} | {fmt(row['median_seconds'], '.2f')} | "
                     f"{row['median_final_score'] + 0.0:.4f} |")  # + 0.0: no '-0.0000'
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds and a cap of 3,000 evaluations")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..n-1 (env and controller)")
    parser.add_argument("--cap", type=int, default=10_000, help="evaluations before giving up")
    parser.add_argument("--edges", type=int, default=10)
    parser.add_argument("--ops", type=int, default=10)
    parser.add_argument("--controllers", default=None,
                        help="comma-separated names (default: every black-box controller and the credit variants)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny tensors: 1 is fastest)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here (and a .md table)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.cap = 3, 3_000
    torch.set_num_threads(args.threads)

    black_box = [n for n in controllers.names() if controllers.get(n).kind == "black-box"]
    labels = args.controllers.split(",") if args.controllers else black_box + list(VARIANTS)
    rows = []
    for label in labels:
        base, controller_kwargs = parse_label(label)
        name, env_kwargs = VARIANTS.get(base, (base, None))
        problem = controller_problem(name)
        if problem is not None:  # a built-in, an entry-point plug-in or a module:Class reference
            raise SystemExit(f"{problem} (variants: {', '.join(VARIANTS)})")
        if controllers.get(name).kind != "black-box":
            raise SystemExit(f"{name!r} is not a black-box controller")
        env_kwargs = dict(controllers.get(name).env_requirements) if env_kwargs is None else env_kwargs
        try:  # refuse bad hyper-parameters before any run
            controllers.make(name, gym.make(ENV_ID, n_edges=args.edges, n_ops=args.ops).unwrapped.space,
                             **controller_kwargs)
        except (TypeError, ValueError) as error:
            raise SystemExit(f"{label}: {error}")
        runs = [run_one(name, env_kwargs, seed, args, controller_kwargs) for seed in range(args.seeds)]
        rows.append(summarise(label, runs, args.cap))
        print(f"  {label}: recovered {rows[-1]['recovered']}/{args.seeds}", flush=True)

    print(f"\nTeacherArch-v0 {args.edges} x {args.ops}: evaluations and wall time until derive() == teacher, "
          f"median over {args.seeds} seeds, cap {args.cap} evaluations, torch threads {args.threads}")
    print(table(rows))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        jsonfile.write(out, {"config": vars(args), "rows": rows})
        out.with_suffix(".md").write_text(table(rows) + "\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
