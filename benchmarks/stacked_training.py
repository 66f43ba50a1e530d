"""NAS-Bench-1D training cost: K architectures side by side against one at a time.

The table recipe trains a tiny NB201 network (C=8, one cell per stage, signals of 40
samples, batch 256). ``nasgen.nb1d.stacked.StackedNB201`` holds K such networks as one
model (grouped convolutions; the architectures that chose a convolution on an edge gathered
and run together), on the hypothesis that at these sizes a step is mostly per-call overhead,
which K networks would share. This script measures it: the wall time of one SGD step (forward,
backward, per-architecture clip, update) per architecture for each K, the same random cells
(seed 0) repeated, one process, ``--threads`` torch threads; and the plain ``Network`` of one
architecture for reference. A ratio below 1 means stacking pays.

Usage::

    python benchmarks/stacked_training.py              # K = 1, 2, 4, 8, 16, 32
    python benchmarks/stacked_training.py --quick      # K = 1, 2; few steps
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

import _common as C
from nasgen.nb1d.stacked import StackedNB201, clip_per_architecture
from nasgen.searchspace import Network
from nasgen.searchspace import get as get_space

FULL = {"ks": (1, 2, 4, 8, 16, 32), "steps": 20}
QUICK = {"ks": (1, 2), "steps": 3}


def step_time(model, params, x, y, k: int, steps: int) -> float:
    """Mean wall seconds of one SGD step of ``model`` (after one untimed step)."""
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def one_step():
        logits = model(x)
        if logits.dim() == 2:
            loss = F.cross_entropy(logits, y)
        else:
            loss = F.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, k), reduction="none").mean(0).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if logits.dim() == 2:
            torch.nn.utils.clip_grad_norm_(params, 5.0)
        else:
            clip_per_architecture(params, k, 5.0)
        optimizer.step()

    one_step()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> None:
    parser = C.base_parser(__doc__.split("\n\n")[0], "stacked_training.json", default_seeds=1, default_threads=1)
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    machine = C.start(args)
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = rng.integers(0, len(space.op_names), size=(max(budget["ks"]), space.n_decisions))
    x, y = torch.randn(256, 1, 40), torch.randint(0, 10, (256,))
    plain = Network(space, archs[0], C=8, n_cells=1, in_channels=1, n_classes=10, dims=1)
    plain_s = step_time(plain, list(plain.parameters()), x, y, 1, budget["steps"])
    rows = [{"k": 0, "label": "plain Network (1 architecture)", "step_s": plain_s, "per_arch_s": plain_s}]
    for k in budget["ks"]:
        model = StackedNB201(archs[:k], space.op_names, space.edges, space.n_nodes, 8, 1, 1, 10, 1, seed=0)
        seconds = step_time(model, list(model.parameters()), x, y, k, budget["steps"])
        rows.append({"k": k, "label": f"stacked, K={k}", "step_s": seconds, "per_arch_s": seconds / k})
        print(f"K={k:3d}: {1000 * seconds:8.1f} ms per step, {1000 * seconds / k:6.1f} ms per architecture", flush=True)
    base = rows[1]["per_arch_s"]
    for row in rows:
        row["vs_k1"] = row["per_arch_s"] / base
    machine = C.finish_machine_info(machine)
    text = C.markdown_table(["trainer", "ms per step", "ms per architecture-step", "per architecture / K=1"],
                            [[r["label"], f"{1000 * r['step_s']:.1f}", f"{1000 * r['per_arch_s']:.1f}",
                              f"{r['vs_k1']:.2f}"] for r in rows], "lrrr")
    describe = (f"nb201 network C=8, 1 cell per stage, MNIST-1D-shaped batch 256 x 1 x 40, random cells (seed 0), "
                f"{budget['steps']} timed SGD steps each, {args.threads} torch thread(s)")
    print(f"\n{describe}\n{C.machine_line(machine)}\n{text}")
    paths = C.write_outputs(args.out, {"benchmark": "stacked_training", "config": vars(args), "machine": machine,
                                       "rows": rows}, f"{describe}  \n{C.machine_line(machine)}\n\n{text}\n")
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
