"""Summarise ``nasgen search`` runs of ``credit``: credit quality and where p went.

Reads each run directory's ``result.json`` (``credit_quality``: Taylor and hybrid credit
against exact credit, pooled over the run's checks and on the derived architecture) and its
``checkpoint.pt`` (theta, for the op probabilities at the end). Prints one markdown row per
run: the zero-op rule and lr settings, pooled Taylor corr / sign agreement / bias / share
with Taylor <= exact, the hybrid's extra passes and RMSE against Taylor's, the zero op's mean
p on the normal-cell edges, on how many normal edges it holds p >= 0.75 (and >= 0.5), and how
many inputs of the derived normal cell come from intermediate nodes, and the derived
architecture's score (-cross-entropy on the whole validation split of the supernet).

Usage::

    nasgen search --space small --dataset digits --steps 300 --logdir runs/zero \
        --controller-kwargs zero_op_credit=zero
    nasgen search --space small --dataset digits --steps 300 --logdir runs/authors
    python benchmarks/credit_runs.py runs/zero/* runs/authors/*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from nasgen.checkpoint import load_checkpoint
from nasgen.searchspace import from_dict


def row(run: Path) -> str:
    result = json.loads((run / "result.json").read_text())
    state = load_checkpoint(run / "checkpoint.pt")
    space = from_dict(result["space"])
    if "normal" not in space.cell_types:
        print(f"credit_runs.py: {run} searched a space whose cells are {sorted(set(space.cell_types))}; "
              "expected a DARTS-style space with a normal cell (nasgen search --space small or darts)",
              file=sys.stderr)
        sys.exit(2)
    theta = torch.as_tensor(state["controller"]["optimizer"]["theta"]).double()
    probs = torch.softmax(theta, dim=1).numpy()
    zero = probs[space.cell_slice("normal"), 0]
    kwargs = result["config"]["controller_kwargs"]
    arch = np.asarray(result["derived_arch"])[space.cell_slice("normal")]
    from_nodes = sum(1 for e, (_, src) in enumerate(space.edges) if arch[e] and src >= 2)
    pooled = (result.get("credit_quality") or {}).get("pooled", {})

    def f(key: str, spec: str = ".2f") -> str:
        value = pooled.get(key)
        return "—" if value is None else format(value, spec)

    settings = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())) or "defaults"
    return (f"| {settings} | {result['seed']} | {result['steps']} | {f('taylor_corr')} | "
            f"{f('taylor_sign_agreement')} | {f('taylor_bias', '+.4f')} | {f('taylor_below_exact')} | "
            f"{f('hybrid_extra_passes', '.0f')} | {f('hybrid_bias', '+.4f')} | "
            f"{f('taylor_rmse', '.3f')} / {f('hybrid_rmse', '.3f')} | {zero.mean():.2f} | "
            f"{int((zero >= 0.75).sum())} / {int((zero >= 0.5).sum())} of {len(zero)} | {from_nodes} | "
            f"{result['score']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories of nasgen search (controller credit)")
    args = parser.parse_args()
    rows = [row(Path(run)) for run in args.runs]
    print("| credit settings | seed | steps | Taylor corr | sign agreement | bias T−exact | T ≤ exact "
          "| hybrid extra passes | hybrid bias | RMSE Taylor / hybrid | zero-op p, normal (mean) "
          "| normal edges p_zero ≥ 0.75 / ≥ 0.5 | derived normal inputs from nodes | derived score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
