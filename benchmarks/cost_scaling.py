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
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasgen.searchspace import DARTS_OPS, OPS, CellSearchSpace, Supernet

CANDIDATE_SETS = {
    4: ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"),
    8: DARTS_OPS,
    16: tuple(OPS)[:16],
}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n_ops: int, args, fixed_ops: list[str], rng: np.random.Generator) -> dict:
    ops = CANDIDATE_SETS[n_ops]
    space = CellSearchSpace(f"ops{n_ops}", ops, n_nodes=4)
    torch.manual_seed(0)
    net = Supernet(space, C=args.channels, n_cells=args.cells, image_size=args.size).to(args.device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)

    def step(**forward_args):
        def run():
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, **forward_args), y).backward()
            if args.device == "cuda":
                torch.cuda.synchronize()
        return run

    fixed = np.array([ops.index(op) for op in fixed_ops])
    uniform = [rng.integers(1, n_ops, size=space.n_decisions) for _ in range(args.repeats)]
    uniform_iter = iter(uniform * 2)
    weights = torch.softmax(torch.randn(space.n_decisions, n_ops, device=args.device), 1).requires_grad_()
    return {
        "ops": n_ops,
        "fixed_path_s": _time(step(arch=fixed), args.repeats),
        "uniform_path_s": _time(lambda: step(arch=next(uniform_iter))(), args.repeats),
        "mixed_s": _time(step(weights=weights), max(2, args.repeats // 3)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/cost_scaling.json")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    rng = np.random.default_rng(0)
    # The fixed path uses only ops that every candidate set contains (28 decisions).
    fixed_ops = list(rng.choice(CANDIDATE_SETS[4][1:], size=28))
    rows = [measure(n, args, fixed_ops, rng) for n in CANDIDATE_SETS]
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
          f"{args.cells} cells, {args.device}; ratios to the 4-op supernet, median of {args.repeats}")
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
