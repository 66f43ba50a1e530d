"""Cost of one supernet forward+backward as the candidate set grows (4, 8, 16 ops).

Single-path (what ``credit``, REINFORCE, ENAS and GDAS run) should not depend on |J|; the
mixed DARTS forward runs every op on every edge and grows about linearly. Two single-path
figures are printed:

- ``fixed path``: the same architecture (ops every candidate set contains) in every
  supernet, so only |J| changes;
- ``uniform path``: architectures drawn uniformly over each set's non-zero ops, so the
  mix of op types changes with the set too.

All figures are ratios to the 4-op supernet of the same run, plus the absolute median
times for reference.

The 1-D case (written next to ``--out`` as ``*_1d.json``/``.md``), on a batch of real
MNIST-1D signals ``[batch, 1, 40]``:

- the ``nb201`` supernet (``--nb201-channels``, ``--nb201-cells`` per stage): one uniformly
  drawn single path against the ``[E, J]`` mixture (every op on every edge);
- a cell as a stand-alone network run natively in 1-D (Conv1d, 3 taps) against the same
  cell run on the signals as height-1 images ``[batch, 1, 1, 40]`` (Conv2d, 3x3 kernels of
  which one row meets data): the ``nb201`` cell and the DARTS-style ``small`` cell.

Usage::

    python benchmarks/cost_scaling.py            # digits-sized (8x8, C=8, 5 cells), batch 64
    python benchmarks/cost_scaling.py --quick    # fewer repeats
    python benchmarks/cost_scaling.py --case 1d  # only the 1-D case
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import _common as C

from nasgen import jsonfile
from nasgen.searchspace import DARTS_OPS, OPS, CellSearchSpace, Network, Supernet, get, load_dataset

CANDIDATE_SETS = {
    4: ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"),
    8: DARTS_OPS,
    16: tuple(OPS)[:16],
}


# The cells timed natively in 1-D and as height-1 images (every op kind of each space).
ONE_D_CELLS = {
    "nb201": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    "small": [3, 4, 0, 2, 1, 0, 3, 0, 4] * 2,  # sep_conv, dil_conv, max_pool, skip in both cells
}


def timed_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str, inputs_of=dict):
    """One forward+backward of ``net(x, **inputs_of())``, gradients reset first."""
    params = list(net.parameters())

    def run():
        for p in params:  # what optimizer.zero_grad(set_to_none=True) does
            p.grad = None
        F.cross_entropy(net(x, **inputs_of()), y).backward()
        if device == "cuda":
            torch.cuda.synchronize()
    return run


def build(n_ops: int, args, fixed_ops: list[str], rng: np.random.Generator) -> dict:
    """The three timed steps of one candidate-set size (closures over its supernet)."""
    ops = CANDIDATE_SETS[n_ops]
    space = CellSearchSpace(f"ops{n_ops}", ops, n_nodes=4)
    torch.manual_seed(0)
    net = Supernet(space, C=args.channels, n_cells=args.cells, image_size=args.size).to(args.device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    fixed = np.array([ops.index(op) for op in fixed_ops])
    weights = torch.softmax(torch.randn(space.n_decisions, n_ops, device=args.device), 1).requires_grad_()
    return {"fixed_path_s": timed_step(net, x, y, args.device, lambda: {"arch": fixed}),
            "uniform_path_s": timed_step(net, x, y, args.device,
                                         lambda: {"arch": rng.integers(1, n_ops, size=space.n_decisions)}),
            "mixed_s": timed_step(net, x, y, args.device, lambda: {"weights": weights})}


def build_1d(args, rng: np.random.Generator) -> dict:
    """The timed steps of the 1-D case: the nb201 supernet's path and mixture on MNIST-1D, and
    each cell of ``ONE_D_CELLS`` natively in 1-D and as a height-1 image."""
    data = load_dataset("mnist1d")
    x = data.train.x[:args.batch].to(args.device)
    y = data.train.y[:args.batch].to(args.device)
    space = get("nb201")
    torch.manual_seed(0)
    net = Supernet(space, C=args.nb201_channels, n_cells=args.nb201_cells, image_size=data.image_size,
                   dims=1).to(args.device)
    weights = torch.softmax(torch.randn(space.n_decisions, len(space.op_names), device=args.device), 1)
    weights.requires_grad_()
    n_ops = len(space.op_names)
    steps = {"nb201 supernet": {
        "path_s": timed_step(net, x, y, args.device, lambda: {"arch": rng.integers(1, n_ops, size=space.n_decisions)}),
        "mixed_s": timed_step(net, x, y, args.device, lambda: {"weights": weights})}}
    for name, arch in ONE_D_CELLS.items():
        cell_space = get(name)
        arch = cell_space.from_genotype(arch) if isinstance(arch, str) else np.asarray(arch)
        C, cells = (args.nb201_channels, args.nb201_cells) if name == "nb201" else (args.channels, args.cells)
        forms = {}
        for label, dims, inputs in (("native_1d_s", 1, x), ("height1_2d_s", 2, x[:, :, None, :])):
            torch.manual_seed(0)
            model = Network(cell_space, arch, C=C, n_cells=cells, in_channels=1, dims=dims).to(args.device)
            forms[label] = timed_step(model, inputs, y, args.device)
        steps[f"{name} cell"] = forms
    return steps


def measure(steps: dict, repeats: int, key: str = "ops") -> list[dict]:
    """Median seconds of every step; the groups take turns, so drift in machine load hits all
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
    return [{key: n, **{name: statistics.median(times[n, name]) for name in named}} for n, named in steps.items()]


def report_1d(args, rng: np.random.Generator, out: Path) -> None:
    """Time the 1-D case, print its table and write ``out``'s ``_1d`` JSON and markdown."""
    rows = measure(build_1d(args, rng), args.repeats, key="case")
    lines = ["| case | single path s | mixture s | mixture / path | native 1-D s | height-1 2-D s | 1-D / 2-D |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "path_s" in row:
            row["mixed_over_path"] = row["mixed_s"] / row["path_s"]
            lines.append(f"| {row['case']} | {row['path_s']:.4f} | {row['mixed_s']:.4f} | "
                         f"{row['mixed_over_path']:.2f}x | | | |")
        else:
            row["native_over_height1"] = row["native_1d_s"] / row["height1_2d_s"]
            lines.append(f"| {row['case']} | | | | {row['native_1d_s']:.4f} | {row['height1_2d_s']:.4f} | "
                         f"{row['native_over_height1']:.2f}x |")
    table = "\n".join(lines)
    print(f"1-D: forward+backward on MNIST-1D, batch {args.batch}, length 40; nb201 C={args.nb201_channels}, "
          f"N={args.nb201_cells} cells per stage; small cell C={args.channels}, {args.cells} cells; median of "
          f"{args.repeats}")
    print(table)
    out_1d = out.with_name(out.stem + "_1d.json")
    jsonfile.write(out_1d, {"config": vars(args), "rows": rows})
    out_1d.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out_1d} and {out_1d.with_suffix('.md')}")


def report_ops(args, rng: np.random.Generator, out: Path) -> None:
    """Time the candidate-set sizes, print their table and write ``out`` (JSON and markdown)."""
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
    jsonfile.write(out, {"config": vars(args), "rows": rows})
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    parser.add_argument("--case", choices=("all", "ops", "1d"), default="all",
                        help="the candidate-set sizes (ops), the 1-D case (1d), or both (default)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--nb201-channels", type=int, default=16, help="C of the 1-D nb201 case (default: 16)")
    parser.add_argument("--nb201-cells", type=int, default=5, help="N of the 1-D nb201 case (default: 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=None,
                        help="JSON output (default benchmarks/results/cost_scaling.json; with --quick, "
                             "runs/benchmarks-quick/cost_scaling.json)")
    args = parser.parse_args()
    args.out = C.output_path(parser, args.out, args.quick, "cost_scaling.json")
    if args.quick:
        args.repeats = 3
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.case != "1d":
        report_ops(args, rng, out)
    if args.case != "ops":
        report_1d(args, rng, out)


if __name__ == "__main__":
    main()
