"""The AdvantageNAS toy figure: loss of the derived architecture vs iterations and vs wall time.

docs/design.md section 8.2. ``nasgen/TeacherArch-v0`` (10 edges x 10 candidate ops by default,
frozen random weights, a hidden one-hot teacher architecture); each trial (seed) draws one
teacher, and every controller searches that same instance with its default hyper-parameters
for ``--steps`` iterations (one controller update each) through the project's own loop
(``nasgen.search.Search``). After selected iterations (log-spaced, recorded outside the timed
region) the controller's ``derive()`` is scored on the env's fixed held-out batch of 1,000:
loss = ``-score`` = MSE against the teacher's output, 0 exactly at the teacher.

- x-axes: iterations (``Search`` steps: one ``ask/tell`` round or one gradient step; ASNG's
  round evaluates 2 architectures) and ``Search.wall_time`` (seconds in the steps).
- Forward passes are counted alike for all (``_common.forward_passes``): ``info["evaluations"]``
  for the black-box controllers (exact credit pays 1 + 10 per iteration, hybrid 1 + 1; the
  toy trains no weights), the gradient controllers' own passes (a DARTS/SNAS pass mixes all
  10 ops of every edge).
- Curves: median and quartiles over the trials; the wall-time panel uses, per controller,
  the time range every trial reached. Between recording points the latest recorded loss
  stands (so the "loss @ t s" columns have the resolution of the log-spaced points).

The gradient controllers see no weights to train here (the toy's weights are frozen): they
take only their architecture step.

Usage::

    python benchmarks/teacher_toy.py              # 10 trials x 2,000 iterations
    python benchmarks/teacher_toy.py --quick      # 3 trials x 200 iterations
    python benchmarks/teacher_toy.py --controllers credit,darts,reinforce --steps 500
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

import numpy as np

import _common as C
import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import controllers

ENV_ID = "nasgen/TeacherArch-v0"
CURVE_POINTS = 40
MILESTONES = (10, 100, 300, 1000)
TIME_MILESTONES = (0.1, 1.0)  # seconds of Search.wall_time


def labels_default() -> list[str]:
    return C.ordered(list(controllers.names()) + list(C.VARIANTS))


def parse_args(argv=None):
    parser = C.base_parser(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                           "teacher_toy.json", default_seeds=10, default_threads=1)
    parser.add_argument("--steps", type=int, default=None, help="iterations per search (default 2000; quick 200)")
    parser.add_argument("--edges", type=int, default=10)
    parser.add_argument("--ops", type=int, default=10)
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 3 if args.quick else 10
    if args.steps is None:
        args.steps = 200 if args.quick else 2000
    return args


def run_trial(label: str, seed: int, args, runs_dir: Path) -> dict:
    """One search; its curve at the recording points (errors are recorded, not raised)."""
    points = C.log_points(args.steps, CURVE_POINTS) | {m for m in MILESTONES if m <= args.steps}
    curve: list[dict] = []

    def record(search: C.RecordingSearch) -> None:
        if search.step not in points:
            return
        env = search.env.unwrapped
        arch = search.controller.derive()
        curve.append({"step": search.step, "evaluations": C.forward_passes(search), "wall_time_s": search.wall_time,
                      "loss": -env.score(arch), "teacher": bool(np.array_equal(arch, env.teacher))})

    config = C.search_config(label, ENV_ID, seed, {"n_edges": args.edges, "n_ops": args.ops}, steps=args.steps)
    try:
        search = C.RecordingSearch(config, runs_dir / f"{label}__s{seed}", on_step=record)
        with C.isolated_seed(seed):
            search.run()
    except Exception as error:
        traceback.print_exc()
        return {"controller": label, "seed": seed, "error": f"{type(error).__name__}: {error}", "curve": curve}
    last = curve[-1]
    return {"controller": label, "seed": seed, "steps": search.step, "evaluations": last["evaluations"],
            "wall_time_s": last["wall_time_s"], "final_loss": last["loss"], "teacher_found": last["teacher"],
            "curve": curve}


def time_grid(runs: list[dict], n: int = 60) -> np.ndarray:
    """Log-spaced times every run has reached (from the latest first record to the earliest end)."""
    lo = max(r["curve"][0]["wall_time_s"] for r in runs)
    hi = min(r["curve"][-1]["wall_time_s"] for r in runs)
    return np.geomspace(max(lo, 1e-6), hi, n) if hi > lo else np.array([hi])


def loss_at_time(curve: list[dict], t: float) -> float:
    """The loss of the latest record at or before ``t`` (the derived architecture then)."""
    times = np.array([p["wall_time_s"] for p in curve])
    i = int(np.searchsorted(times, t, side="right")) - 1
    return curve[i]["loss"] if i >= 0 else np.nan


def summarise(label: str, runs: list[dict], args) -> dict:
    ok = [r for r in runs if "error" not in r]
    out = {"controller": label, "kind": C.kind(label), "trials": len(ok), "failed": len(runs) - len(ok),
           "errors": sorted({r["error"] for r in runs if "error" in r})}
    if not ok:
        return out
    steps = [p["step"] for p in ok[0]["curve"]]
    losses = np.array([[p["loss"] for p in r["curve"]] for r in ok])
    by_step = {"step": steps, "median": np.median(losses, 0), "q1": np.percentile(losses, 25, 0),
               "q3": np.percentile(losses, 75, 0),
               "evaluations_median": np.median([[p["evaluations"] for p in r["curve"]] for r in ok], 0)}
    grid = time_grid(ok)
    at_time = np.array([[loss_at_time(r["curve"], t) for t in grid] for r in ok])
    by_time = {"wall_time_s": grid, "median": np.median(at_time, 0), "q1": np.percentile(at_time, 25, 0),
               "q3": np.percentile(at_time, 75, 0)}
    milestones = {}
    for m in MILESTONES:
        if m <= args.steps:
            milestones[str(m)] = float(np.median(losses[:, steps.index(m)]))
    at_seconds = {}
    for t in TIME_MILESTONES:
        values = [loss_at_time(r["curve"], t) for r in ok]
        at_seconds[f"{t:g}"] = float(np.median(values)) if not np.isnan(values).any() else np.nan
    out.update({"steps": args.steps, "evaluations": C.stats([r["evaluations"] for r in ok]),
                "wall_time_s": C.stats([r["wall_time_s"] for r in ok]),
                "final_loss": C.stats([r["final_loss"] for r in ok]),
                "teacher_found": sum(r["teacher_found"] for r in ok), "loss_at_step": milestones,
                "loss_at_seconds": at_seconds, "curve_by_step": by_step, "curve_by_time": by_time})
    return out


def table(summary: list[dict]) -> str:
    milestone_steps, milestone_times = [], []
    for s in summary:
        milestone_steps = list(s.get("loss_at_step", {})) or milestone_steps
        milestone_times = list(s.get("loss_at_seconds", {})) or milestone_times
    width = len(milestone_steps) + len(milestone_times)
    rows = []
    for s in summary:
        if not s["trials"]:
            rows.append([s["controller"], s["kind"], "failed: " + "; ".join(s["errors"])[:80]]
                        + [""] * (4 + width))
            continue
        f = s["final_loss"]
        rows.append([s["controller"], s["kind"], f"{s['evaluations']['median']:.0f}", f"{s['wall_time_s']['median']:.2f}"]
                    + [f"{s['loss_at_step'].get(m, np.nan):.2e}" for m in milestone_steps]
                    + [f"{s['loss_at_seconds'].get(t, np.nan):.2e}" for t in milestone_times]
                    + [f"{f['median']:.2e} [{f['q1']:.2e}, {f['q3']:.2e}]", f"{s['teacher_found']}/{s['trials']}"])
    return C.markdown_table(["controller", "kind", "forward passes", "wall s"]
                            + [f"loss @ it {m}" for m in milestone_steps]
                            + [f"loss @ {t} s" for t in milestone_times]
                            + ["final loss median [q1, q3]", "teacher found"], rows,
                            "ll" + "r" * (4 + width))


def plot(summary: list[dict], title: str):
    fig, axes = C.figure(2, width=6.5, height=5)
    ok = [s for s in summary if s["trials"]]
    colour = C.colours([s["controller"] for s in ok])
    for ax, key, x_key, xlabel in ((axes[0][0], "curve_by_step", "step", "iterations (controller updates)"),
                                   (axes[0][1], "curve_by_time", "wall_time_s", "wall time, s (Search.wall_time)")):
        for s in ok:
            c = s[key]
            x = np.asarray(c[x_key])
            style = "--" if s["kind"] == "gradient" else "-"
            ax.plot(x, c["median"], style, color=colour[s["controller"]], label=s["controller"],
                    lw=2 if s["controller"].startswith("credit") else 1.3)
            ax.fill_between(x, c["q1"], c["q3"], color=colour[s["controller"]],
                            alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-3)  # the teacher itself has loss exactly 0
        ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss of the derived architecture (MSE to teacher; 0 = teacher)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_title("vs iterations (median, quartiles shaded)")
    axes[0][1].set_title("vs wall time (median, quartiles shaded)")
    axes[0][1].legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle(title, fontsize=10)
    return fig


def main(argv=None) -> None:
    args = parse_args(argv)
    labels = C.select(labels_default(), args.controllers)
    machine = C.start(args)
    print(f"teacher_toy: {len(labels)} controllers x {args.seeds} trials x {args.steps} iterations, "
          f"TeacherArch-v0 {args.edges} x {args.ops}\n{C.machine_line(machine)}", flush=True)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="teacher_toy_") as tmp:
        for label in labels:
            mine = [run_trial(label, seed, args, Path(tmp)) for seed in range(args.seeds)]
            runs += mine
            ok = [r for r in mine if "error" not in r]
            print(f"  {label:<15} " + (f"median final loss {np.median([r['final_loss'] for r in ok]):.2e}, "
                                       f"teacher {sum(r['teacher_found'] for r in ok)}/{len(ok)}, "
                                       f"median {np.median([r['wall_time_s'] for r in ok]):.2f} s"
                                       if ok else "FAILED: " + mine[0]["error"]), flush=True)
    machine = C.finish_machine_info(machine)
    summary = [summarise(label, [r for r in runs if r["controller"] == label], args) for label in labels]
    text = table(summary)
    title = (f"TeacherArch-v0 {args.edges} x {args.ops}, {args.seeds} trials, {args.steps} iterations; "
             f"every controller at its defaults")
    print(f"\n{title}\n{C.machine_line(machine)}\n{text}")
    markdown = f"{title}  \n{C.machine_line(machine)}\n\n{text}\n"
    payload = {"benchmark": "teacher_toy", "config": vars(args), "machine": machine, "summary": summary, "runs": runs}
    paths = C.write_outputs(args.out, payload, markdown, plot(summary, title))
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
