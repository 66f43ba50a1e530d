"""``nasgen/Tabular-v0``: rewards looked up in a NAS-Bench-1D table (``nasgen.nb1d``).

The black-box counterpart of ``OneShotNAS-v0``: one step is one architecture, rewarded by
its stand-alone training result instead of the supernet, so a controller's search can be
judged for its true test regret at a given number of queries.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from nasgen.nb1d import load
from nasgen.nb1d.judge import Judge, final

from .base import ArchitectureEnv

REWARDS = ("sample", "mean")


class QueryBudgetExhausted(RuntimeError):
    """``step`` was called after ``budget`` queries since the last seeded reset."""


class TabularEnv(ArchitectureEnv):
    """One step looks one architecture up in a table of stand-alone training results.

    Reward: validation accuracy in [0, 1] (higher is better) at the table's last recorded
    epoch. With ``reward="sample"`` (the default, as NAS-Bench-201 does) each query draws one
    of the table's training seeds from ``self.np_random`` and rewards that seed's validation
    accuracy, so repeated queries of one architecture are noisy like a real training; with
    ``reward="mean"`` it is the mean over seeds (deterministic). Only the seeds the table
    trained that cell with are drawn: a table whose later seeds cover a subset of its cells
    answers the other cells from the seeds they have. A training the table records as failed
    gives reward 0 and ``info["failed"] = True``; a missing seed is never a failure.

    Observation: ``[last reward]`` (float32 in [0, 1], 0 before the first step).

    info: ``val_accuracy`` (= reward), ``seed`` (the drawn seed, -1 for the mean),
    ``test_accuracy`` (mean over seeds; never used for the reward), ``test_regret`` (the
    table's best mean test accuracy minus it), ``test_accuracy_se`` and ``test_regret_se``
    (their standard errors, the table's noise floor: ``Judge.judge``), ``percentile`` (of the test accuracy among
    the table's distinct architectures), ``params``, ``flops``, ``queries`` (so far),
    ``failed``, ``evaluations`` (1), ``nonfinite`` (False).

    A sampled table (a build cut short) answers with ``fill``, a build folder: a cell the
    table lacks, or the seeds its build plans for a cell the table holds in part, are trained
    on demand with its recipe (``nb1d.Judge``), so a search answers as it will on the
    finished table (its regrets against the best sampled cell), and ``nasgen bench merge``
    folds those rows into the build.

    Query budget: with ``budget=N``, the (N+1)-th ``step`` after a seeded reset raises
    ``QueryBudgetExhausted`` (a RuntimeError) instead of answering, so a search cannot
    quietly look at more of the table than it was allowed; ``None`` (default) is unlimited.

    ``env.unwrapped`` exposes ``table`` (a ``nasgen.nb1d.Table``), ``best_test``,
    ``best_arch`` (the best mean test accuracy's architecture), ``lookup(arch)`` and
    ``score(arch)``.

    Args:
        table: a shipped table name or a path to a table's ``.json``/``.npz``.
        reward: ``"sample"`` or ``"mean"`` (see above).
        budget: queries allowed per seeded reset, or None.
        fill: a build folder for the cells a sampled table lacks (None: a complete table only).
        credit: only ``None``: a table has no gates to ablate.
        seed: see ``ArchitectureEnv``.

    Raises:
        ValueError: unknown table, a table whose checksum fails, one that does not cover
            every distinct architecture of its space without ``fill``, a bad
            ``reward``/``budget``, or a credit mode.
    """

    credit_modes: tuple[str, ...] = ()  # a table has no gates to ablate

    def __init__(self, table: str = "nb201-mnist1d", reward: str = "sample", budget: Optional[int] = None,
                 credit: Optional[str] = None, seed: Optional[int] = None, fill: Optional[str] = None):
        if credit is not None:
            raise ValueError(f"Tabular-v0 cannot give credit={credit!r}: a table has no gates to ablate; "
                             f"use credit=None (black-box controllers)")
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r}; expected one of {', '.join(REWARDS)}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ValueError(f"budget must be a positive int or None, got {budget!r}")
        self.table = load(table)
        if not self.table.covers_space() and fill is None:
            raise ValueError(f"table {self.table.name!r} holds {len(self.table.archs)} distinct architectures, "
                             f"not every one of space {self.table.space.name!r}; Tabular-v0 needs a complete table "
                             f"or fill=FOLDER to train the others on demand")
        self.judge = Judge(self.table, self.table.space, fill=fill) if fill is not None else None
        super().__init__(self.table.space, seed=seed)
        self.reward_mode = reward
        self.budget = budget
        self._val = self.table._values("val_accuracy", None)
        self._test_mean = self.table.mean("test_accuracy")
        best = self.table.best("test_accuracy")
        self.best_test, self.best_arch = best["value"], np.asarray(best["arch"], dtype=np.int64)
        self._test_se = self.table.standard_error("test_accuracy")
        best_row = self.table.row_of(self.best_arch)
        self._regret_se = np.hypot(self._test_se, self._test_se[best_row])
        self._regret_se[best_row] = 0.0
        self.observation_space = gym.spaces.Box(np.float32(0.0), np.float32(1.0), shape=(1,), dtype=np.float32)

    @property
    def reward_obs_bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def lookup(self, arch: Any) -> dict:
        """The table's record of ``arch`` (``Table.query``)."""
        return self.table.query(arch)

    def score(self, arch: Any) -> float:
        """Mean validation accuracy of ``arch`` over the table's seeds (no query is counted;
        trained on demand with ``fill``)."""
        value = (self.judge.judge(arch) if self.judge is not None else self.table.query(arch)["mean"])["val_accuracy"]
        return value if math.isfinite(value) else 0.0

    def step(self, action: Any):
        arch = self.space.validate(action)
        self._check_can_step()
        if self.budget is not None and self.steps >= self.budget:
            raise QueryBudgetExhausted(f"query budget of {self.budget} exhausted; reset with a seed to "
                                       f"start a new search")
        if self.judge is not None and self.judge.lacks(arch):
            return self._step_filled(arch)
        row = self.table.row_of(arch)
        if self.reward_mode == "sample":
            ran = np.flatnonzero(self.table.ran[row])
            j = int(ran[self.np_random.integers(len(ran))])
            value, seed = float(self._val[row, j]), int(self.table.seeds[j])
        else:
            finite = self._val[row][np.isfinite(self._val[row])]
            value, seed = (float(finite.mean()) if finite.size else math.nan), -1
        return self._answer(value, seed, float(self._test_mean[row]), float(self._test_se[row]),
                            float(self._regret_se[row]), int(self.table.params[row]), int(self.table.flops[row]))

    def _answer(self, value: float, seed: int, test: float, test_se: float, regret_se: float, params: int,
                flops: int):
        """Count the query and return ``step``'s tuple for a cell's drawn validation accuracy."""
        failed = not math.isfinite(value)
        reward = 0.0 if failed else value
        self.steps += 1
        self.evaluations += 1
        self.last_reward = reward
        self._episode_over = True
        info = {"val_accuracy": reward, "seed": seed, "test_accuracy": test, "test_regret": self.best_test - test,
                "test_accuracy_se": test_se, "test_regret_se": regret_se,
                "percentile": self.table.value_percentile(test), "params": params, "flops": flops,
                "queries": self.steps, "failed": failed, "evaluations": 1, "nonfinite": False}
        return self._observation(), reward, True, False, info

    def _step_filled(self, arch: np.ndarray):
        """``step`` for a cell a sampled table lacks, or holds with fewer seeds than its build
        plans (``Judge.lacks``): its rows, the missing ones trained on demand (``fill``), drawn
        from in seed order as ``step`` draws a table's row."""
        rows = list(self.judge.trained_rows(arch).values())
        if self.reward_mode == "sample":
            picked = rows[int(self.np_random.integers(len(rows)))]
            value, seed = final(picked, "val_accuracy"), int(picked["seed"])
        else:
            finite = [v for v in (final(r, "val_accuracy") for r in rows) if math.isfinite(v)]
            value, seed = (float(np.mean(finite)) if finite else math.nan), -1
        verdict = self.judge.judge(arch)
        params, flops = (next((r[k] for r in rows if r.get(k) is not None), -1) for k in ("params", "flops"))
        return self._answer(value, seed, verdict["test_accuracy"], verdict["test_accuracy_se"],
                            verdict["test_regret_se"], int(params), int(flops))

    def _build(self) -> None:
        """Nothing to build: the table is fixed."""

    def _observation(self) -> np.ndarray:
        return np.array([self._clipped_reward()], dtype=np.float32)

    def state_dict(self) -> dict:
        return {**self._base_state(), "table": self.table.name, "sha256": self.table.manifest["sha256"]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("sha256") != self.table.manifest["sha256"]:
            raise ValueError(f"environment state is for table {state.get('table')!r} "
                             f"({state.get('sha256')}), not {self.table.name!r}")
        self._load_base_state(state)
