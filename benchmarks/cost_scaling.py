"""Cost of one supernet forward+backward as the candidate set grows (4, 8, 16 ops).

Single-path (what ``credit``, REINFORCE, ENAS and GDAS run) should not depend on |J|; the
mixed DARTS forward runs every op on every edge and grows about linearly. Two single-path
figures are printed:

- ``fixed path``: the same architecture (ops every candidate set contains) in every
  supernet, so only |J| changes;
- ``uniform path``: architectures drawn uniformly over each set's non-zero ops, so the
  mix of op types changes with the set too.

All figures are ratios to the 4-op supernet of the same run, plus the absolute median
times for reference. Usage::

    python benchmarks/cost_scaling.py            # digits-sized (8x8, C=8, 5 cells), batch 64
    python benchmarks/cost_scaling.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasgen import jsonfile
from nasgen.searchspace import DARTS_OPS, OPS, CellSearchSpace, Supernet

CANDIDATE_SETS = {
    4: ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"),
    8: DARTS_OPS,
    16: tuple(OPS)[:16],
}


def build(n_ops: int, args, fixed_ops: list[str], rng: np.random.Generator) -> dict:
    """The three timed steps of one candidate-set size (closures over its supernet)."""
    ops = CANDIDATE_SETS[n_ops]
    space = CellSearchSpace(f"ops{n_ops}", ops, n_nodes=4)
    torch.manual_seed(0)
    net = Supernet(space, C=args.channels, n_cells=args.cells, image_size=args.size).to(args.device)
    params = list(net.parameters())
    x = torch.randn(args.batch, 1, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)

    def step(arch_of):
        def run():
            for p in params:  # what optimizer.zero_grad(set_to_none=True) does
                p.grad = None
            F.cross_entropy(net(x, **arch_of()), y).backward()
            if args.device == "cuda":
                torch.cuda.synchronize()
        return run

    fixed = np.array([ops.index(op) for op in fixed_ops])
    weights = torch.softmax(torch.randn(space.n_decisions, n_ops, device=args.device), 1).requires_grad_()
    return {"fixed_path_s": step(lambda: {"arch": fixed}),
            "uniform_path_s": step(lambda: {"arch": rng.integers(1, n_ops, size=space.n_decisions)}),
            "mixed_s": step(lambda: {"weights": weights})}


def measure(steps: dict[int, dict], repeats: int) -> list[dict]:
    """Median seconds of every step; the sizes take turns, so drift in machine load hits all
    of them alike."""
    times = {(n, name): [] for n, named in steps.items() for name in named}
    for repeat in range(repeats + 1):
        for (n, name), samples in times.items():
            if name == "mixed_s" and repeat > max(2, repeats // 3):
                continue  # the mixed forward is slow; fewer repeats
            start = time.perf_counter()
            steps[n][name]()
            if repeat:  # the first round warms up
                samples.append(time.perf_counter() - start)
    return [{"ops": n, **{name: statistics.median(times[n, name]) for name in named}} for n, named in steps.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/cost_scaling.json")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    # The fixed path uses only ops that every candidate set contains (28 decisions).
    fixed_ops = list(rng.choice(CANDIDATE_SETS[4][1:], size=28))
    rows = measure({n: build(n, args, fixed_ops, rng) for n in CANDIDATE_SETS}, args.repeats)
    base = rows[0]
    lines = ["| ops | fixed path | uniform path | mixed (DARTS) | fixed s | uniform s | mixed s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        row["fixed_ratio"] = row["fixed_path_s"] / base["fixed_path_s"]
        row["uniform_ratio"] = row["uniform_path_s"] / base["uniform_path_s"]
        row["mixed_ratio"] = row["mixed_s"] / base["mixed_s"]
        row["mixed_over_fixed"] = row["mixed_s"] / row["fixed_path_s"]
        lines.append(f"| {row['ops']} | {row['fixed_ratio']:.2f}x | {row['uniform_ratio']:.2f}x | "
                     f"{row['mixed_ratio']:.2f}x | {row['fixed_path_s']:.3f} | {row['uniform_path_s']:.3f} | "
                     f"{row['mixed_s']:.3f} |")
    table = "\n".join(lines)
    print(f"forward+backward, batch {args.batch}, {args.size}x{args.size}, C={args.channels}, "
          f"{args.cells} cells, {args.device}, {torch.get_num_threads()} torch threads; ratios to the 4-op "
          f"supernet, median of {args.repeats}")
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonfile.write(out, {"config": vars(args), "rows": rows})
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
