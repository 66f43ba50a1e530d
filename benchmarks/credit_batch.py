"""Credit from the training pass: steps/s of the default search, ``credit_batch`` val vs train.

The default ``nasgen search`` (credit, Taylor, digits, space ``small``, supernet C=8 x 5
cells, batch 64) through the project's own loop, ``Search(SearchConfig(...)).run()``, with
``--warmup-epochs`` of warm-up (not timed) and ``--steps`` search steps, once with
``credit_batch="val"`` (the paper: reward and credit on a validation batch, then a separate
training pass; two forwards and two backwards per step) and once with ``"train"`` (reward and
credit from the weight-training pass itself; one forward and one backward). The two runs of a
seed are back to back, the order alternating from seed to seed, so load from other processes
hits both alike. steps/s = steps / ``Search.wall_time`` (the steps only). The ratio
train/val is per seed, then the median over seeds.

The supernet validation loss of the derived architecture is printed too, as a sanity check
only: digits cannot rank credit estimators (the ground-truth harness can).

Usage::

    python benchmarks/credit_batch.py             # 200 steps, 3 seeds, 1 thread (~2-4 min on 2 cores)
    python benchmarks/credit_batch.py --quick     # 20 steps, 1 seed: a smoke run
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import _common as C
from nasgen.search import Search, SearchConfig

MODES = ("val", "train")


def parse_args(argv=None):
    parser = C.base_parser(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                           "credit_batch.json", default_seeds=3, default_threads=1)
    parser.add_argument("--steps", type=int, default=None, help="search steps per run (default 200)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="warm-up epochs, not timed (default 1)")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 200
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    return args


def run(mode: str, seed: int, args, run_dir: Path) -> dict:
    config = SearchConfig(controller="credit", steps=args.steps, seed=seed, checkpoint_every=10**9,
                          env_kwargs={"warmup_epochs": args.warmup_epochs, "credit_batch": mode})
    search = Search(config, run_dir / f"{mode}__s{seed}")
    with C.isolated_seed(seed):
        result = search.run()
    return {"credit_batch": mode, "seed": seed, "steps": result["steps"], "wall_time_s": search.wall_time,
            "steps_per_s": result["steps"] / search.wall_time, "forward_passes": C.forward_passes(search),
            "supernet_val_loss": -result["score"], "load": C.load_average()[0]}


def main(argv=None) -> None:
    args = parse_args(argv)
    machine = C.start(args)
    print(f"credit_batch: credit (Taylor), {args.steps} steps, warm-up {args.warmup_epochs:g} epochs, "
          f"{args.seeds} seed(s)\n{C.machine_line(machine)}", flush=True)
    rows, ratios = [], []
    with tempfile.TemporaryDirectory(prefix="credit_batch_") as tmp:
        for seed in range(args.seeds):
            order = MODES if seed % 2 == 0 else MODES[::-1]
            by_mode = {mode: run(mode, seed, args, Path(tmp)) for mode in order}
            ratios.append(by_mode["train"]["steps_per_s"] / by_mode["val"]["steps_per_s"])
            rows += by_mode.values()
            print(f"seed {seed}: " + "  ".join(f"{m} {by_mode[m]['steps_per_s']:.2f} steps/s "
                                                f"({by_mode[m]['forward_passes']} passes)" for m in MODES)
                  + f"  ratio train/val {ratios[-1]:.2f}", flush=True)
    machine = C.finish_machine_info(machine)
    table_rows = []
    for mode in MODES:
        mine = [r for r in rows if r["credit_batch"] == mode]
        table_rows.append([mode, f"{statistics.median(r['steps_per_s'] for r in mine):.2f}",
                           f"{statistics.median(r['forward_passes'] for r in mine) / args.steps:.0f}",
                           C.pm(C.stats([r["supernet_val_loss"] for r in mine]), ".3f")])
    text = C.markdown_table(["credit_batch", "steps/s (median)", "forward passes / step",
                             "supernet val CE of derived"], table_rows, "lrrr")
    line = (f"credit (Taylor) on digits, space small, C=8 x 5 cells, batch 64; {args.steps} steps after "
            f"{args.warmup_epochs:g} warm-up epochs; {args.seeds} seed(s), {args.threads} thread(s); "
            f"steps/s ratio train/val: median {statistics.median(ratios):.2f} "
            f"(per seed {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"\n{line}\n{C.machine_line(machine)}\n{text}")
    payload = {"benchmark": "credit_batch", "config": vars(args), "machine": machine, "ratios": ratios,
               "median_ratio": statistics.median(ratios), "runs": rows}
    paths = C.write_outputs(args.out, payload, f"{line}  \n{C.machine_line(machine)}\n\n{text}\n")
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
