"""A complete ``nb201``/``mnist1d`` NAS-Bench-1D table with SYNTHETIC rows, for tests only.

Training all 6,466 distinct NAS-Bench-201 cells takes far longer than a test may, so this
writes a build directory in the real formats (``build.json`` + ``rows.jsonl``, one row per
(architecture, seed) as ``nasgen.nb1d.build`` writes them) whose accuracies are a made-up
function of the cell (more convolutions: higher), plus seed noise, and packs it with the
real ``nasgen.nb1d.pack``. The result loads, checksums and queries like a built table; its
numbers mean nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from nasgen.nb1d import METRICS, Recipe, all_distinct, pack
from nasgen.searchspace import get

RECIPE = Recipe(train_size=64, val_size=64, test_size=64, epochs=2, batch_size=32, C=2)


def write_synthetic_nb201_table(out: Path, name: str = "synthetic", seeds=(0, 1), sample: Optional[int] = None,
                                good_seeds=None, good_above: Optional[float] = None) -> Path:
    """Write and pack the table under ``out``; returns its manifest path. ``sample``: only
    that many cells, drawn at random (a sampled table). ``good_seeds``/``good_above``: the
    build's good seeds (``nasgen.nb1d.build.good_extra``), written for each cell whose first
    seed ends above ``good_above``, right after its first seeds."""
    space = get("nb201")
    archs = all_distinct(space)
    rng = np.random.default_rng(0)
    if sample is not None:
        archs = archs[np.sort(rng.choice(len(archs), size=sample, replace=False))]
    weight = np.array([0.0, 0.01, 0.03, 0.05, 0.005])  # none, skip, conv1x1, conv3x3, pool
    base = 0.5 + weight[archs].sum(axis=1) + 0.02 * rng.standard_normal(len(archs))
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    settings = {"space": space.to_dict(), "dataset": "mnist1d", "seeds": list(seeds), "recipe": RECIPE.to_dict(),
                "limit_archs": sample, "sessions": [{"started": started}]}
    if good_seeds is not None:
        settings.update(good_seeds=list(good_seeds), good_above=good_above)
    (out / "build.json").write_text(json.dumps(settings))
    with open(out / "rows.jsonl", "w") as f:
        for arch, acc in zip(archs.tolist(), base.tolist()):
            cell_seeds, k = list(seeds), 0
            while k < len(cell_seeds):
                seed, k = cell_seeds[k], k + 1
                noisy = [min(1.0, max(0.0, acc + 0.01 * rng.standard_normal())) for _ in RECIPE.record_epochs]
                if seed == seeds[0] and good_seeds is not None and noisy[-1] > good_above:
                    cell_seeds += [s for s in good_seeds if s not in cell_seeds]
                values = {m: (noisy if m.endswith("accuracy") else [1.0 - a for a in noisy]) for m in METRICS}
                row = {"arch": arch, "seed": seed, "epochs": list(RECIPE.record_epochs), **values,
                       "params": 1000 + 10 * sum(arch), "flops": 2000 + 20 * sum(arch), "train_time_s": 0.01,
                       "cpu_time_s": 0.01, "error": None, "session": 0, "time": started + 1.0}
                f.write(json.dumps(row) + "\n")
    return pack(out, name)
