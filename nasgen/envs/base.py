"""Shared machinery of the one-step architecture environments.

One episode is one architecture: ``step(arch)`` returns its reward and ends the episode
with ``terminated=True``; another ``step`` before ``reset`` raises RuntimeError. What
persists between episodes (supernet weights, the teacher instance) is the *search state*;
a seeded ``reset`` rebuilds it from ``self.np_random``, an unseeded one only starts the
next episode.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch

from nasgen.searchspace import (CREDIT_MODES, Credit, CreditCheck, SearchSpace, check_credit, compute_credit,
                                figures_of)

#: Observations report the last reward clipped to ``reward_obs_bounds`` (at least
#: ``[-REWARD_OBS_LIMIT, 0]``), so their Box spaces have finite bounds.
REWARD_OBS_LIMIT = 1e4
#: Default of ``credit_check_every``: steps between credit-quality checks.
CREDIT_CHECK_EVERY = 50
#: (Taylor, hybrid, exact) triples kept for the pooled credit-quality figures.
CREDIT_CHECK_KEEP = 20_000


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed drawn from a numpy generator (keeps every draw on ``np_random``)."""
    return int(rng.integers(0, 2**63 - 1))


class ArchitectureEnv(gym.Env):
    """Base of ``OneShotNAS-v0`` and ``TeacherArch-v0``.

    Subclasses implement ``_build`` (the search state, from ``self.np_random``),
    ``_reward_batch``, ``_loss`` and optionally ``_train``, ``_observation`` and the state
    hooks. This class validates actions, computes credit, floors non-finite losses and
    assembles ``info``.

    Args:
        space: the search space (actions are its architectures).
        credit: ``None`` or one of ``"taylor"``, ``"exact"``, ``"hybrid"``: adds
            ``info["credit"]``, one value per decision.
        credit_subset: |K|, edges checked exactly per step by the hybrid estimator.
        nonfinite_reward: the reward given when the loss is not finite.
        device: torch device of the model.
        seed: used by the first ``reset`` when that reset passes no seed, so
            ``gym.make(..., seed=s)`` alone gives a repeatable run.
        credit_check_every: with ``credit`` set, every this many steps compare Taylor and
            hybrid credit with exact credit on that step's sample (``searchspace.check_credit``:
            one forward per active decision, not counted in ``info["evaluations"]``, shared
            weights and BatchNorm buffers restored, no draw from ``np_random``) and report the
            figures in ``info["credit_check"]``; ``credit_quality()`` pools them. 0: off.
    """

    metadata = {"render_modes": []}
    #: whether the env has a validation split (``val_stream``), which a budget in epochs needs
    has_validation_split: bool = False
    #: the values ``credit=`` accepts besides None
    credit_modes: tuple[str, ...] = tuple(CREDIT_MODES)

    def __init__(self, space: SearchSpace, credit: Optional[str] = None, credit_subset: int = 1,
                 nonfinite_reward: float = -100.0, device: str = "cpu", seed: Optional[int] = None,
                 *, credit_check_every: int = CREDIT_CHECK_EVERY):
        self._check_common_arguments(credit, credit_subset, nonfinite_reward, device, seed, credit_check_every)
        self.space = space
        self.initial_seed = seed
        self.credit_mode = credit
        self.credit_subset = credit_subset
        self.nonfinite_reward = float(nonfinite_reward)
        self.device = torch.device(device)
        self.action_space = gym.spaces.MultiDiscrete(np.asarray(space.choices, dtype=np.int64))
        self.steps = 0
        self.evaluations = 0
        self.last_reward = 0.0
        self._built = False
        self._episode_over = False
        # (Taylor, exact) pairs of the hybrid estimator, for the corr(T, A) health signal.
        self._credit_pairs: deque[tuple[float, float]] = deque(maxlen=512)
        self.credit_check_every = int(credit_check_every)
        # (Taylor, hybrid, exact) per active decision of every credit check; checks and the
        # hybrid passes they priced.
        self._check_triples: deque[tuple[float, float, float]] = deque(maxlen=CREDIT_CHECK_KEEP)
        self._checks = {"count": 0, "hybrid_passes": 0}

    # --- argument checks ----------------------------------------------------------------------
    @classmethod
    def check_arguments(cls, **kwargs: Any) -> Optional[SearchSpace]:
        """Check constructor arguments without building anything (no model, no data): what the
        CLI runs before it creates a run directory. Every subclass's ``__init__`` runs the
        same checks.

        Args:
            **kwargs: keyword arguments of the subclass's ``__init__`` (defaults fill the rest).

        Returns:
            The search space an environment made with ``kwargs`` would have (None when the
            class can only tell once built).

        Raises:
            TypeError: a keyword the class does not take.
            ValueError: a bad value, in one line naming it.
        """
        parameters = inspect.signature(cls.__init__).parameters
        unknown = [key for key in kwargs if key not in parameters or key == "self"]
        if unknown:
            raise TypeError(f"{cls.__name__} takes no {unknown[0]!r}; it accepts: "
                            f"{', '.join(p for p in parameters if p != 'self')}")
        args = {key: p.default for key, p in parameters.items() if key != "self"}
        args.update(kwargs)
        cls._check_common_arguments(args.get("credit"), args.get("credit_subset", 1),
                                    args.get("nonfinite_reward", -100.0), args.get("device", "cpu"),
                                    args.get("seed"), args.get("credit_check_every", CREDIT_CHECK_EVERY))
        return cls._checked_space(args)

    @classmethod
    def _checked_space(cls, args: dict[str, Any]) -> Optional[SearchSpace]:
        """The subclass's own checks of its complete ``__init__`` arguments; returns its space,
        or None where the space is only known once the env is built."""
        return None

    @staticmethod
    def _check_common_arguments(credit: Optional[str], credit_subset: int, nonfinite_reward: float,
                                device: str, seed: Optional[int],
                                credit_check_every: int = CREDIT_CHECK_EVERY) -> None:
        if credit is not None and credit not in CREDIT_MODES:
            raise ValueError(f"credit={credit!r} is not a credit mode; expected None or one of "
                             f"{', '.join(CREDIT_MODES)}")
        if (isinstance(credit_check_every, bool) or not isinstance(credit_check_every, (int, np.integer))
                or credit_check_every < 0):
            raise ValueError(f"credit_check_every must be an int >= 0 (0 = off), got {credit_check_every!r}")
        if credit_subset < 1:
            raise ValueError(f"credit_subset must be >= 1, got {credit_subset}")
        if not math.isfinite(nonfinite_reward):
            raise ValueError(f"nonfinite_reward must be finite, got {nonfinite_reward}")
        if seed is not None and not 0 <= seed < 2**32:
            raise ValueError(f"seed must be None or in 0..{2**32 - 1}, got {seed}")
        try:
            kind = torch.device(device).type
        except (RuntimeError, ValueError):
            raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is None and not self._built:
            seed = self.initial_seed
        super().reset(seed=seed)
        self._reset_options = dict(options or {})
        if seed is not None or not self._built:
            self.steps = 0
            self.evaluations = 0
            self.last_reward = 0.0
            self._credit_pairs.clear()
            self._check_triples.clear()
            self._checks = {"count": 0, "hybrid_passes": 0}
            self._build()
            self._built = True
        self._episode_over = False
        return self._observation(), {}

    def step(self, action: Any):
        arch = self.space.validate(action)  # raises before any state changes
        self._check_can_step()
        batch = self._reward_batch()
        info: dict[str, Any] = {}
        active = arch != 0 if self.space.zero_op else np.ones(len(arch), dtype=bool)
        extras: dict[str, Any] = {}

        due = self.credit_check_every and (self.steps + 1) % self.credit_check_every == 0
        if self.credit_mode is not None and due:
            # Before the step's own credit: an env may train the weights in that same pass.
            check = self._credit_check(lambda g: self._loss(arch, batch, g)[0], active)
            if check is not None:
                info["credit_check"] = check.figures()

        def loss_of_gates(gates: Optional[torch.Tensor]) -> torch.Tensor:
            loss, found = self._loss(arch, batch, gates)
            if not extras:  # the first call is the full architecture
                extras.update(found)
            return loss

        loss, evaluations, result = self._evaluate(loss_of_gates, active)
        if result is not None:
            info["credit"] = result.credit
            if self.credit_mode == "hybrid":
                # Only finite pairs: one non-finite step must not poison the health signal.
                self._credit_pairs.extend((result.taylor[i], a) for i, a in result.exact.items()
                                          if math.isfinite(result.taylor[i]) and math.isfinite(a))
                correlation = self.credit_correlation()
                # Reported once it is defined: a NaN in info would make two identical runs
                # compare unequal (gymnasium's check_env compares infos).
                if math.isfinite(correlation):
                    info["credit_corr"] = correlation
        nonfinite = not math.isfinite(loss)
        if nonfinite:
            reward = self.nonfinite_reward
            if "credit" in info:
                info["credit"] = np.zeros(len(arch))
        else:
            reward = -loss
            info.update(self._train(arch))
        info.update(extras)
        info.update(loss=loss, evaluations=evaluations, nonfinite=nonfinite)
        self.steps += 1
        self.evaluations += evaluations
        self.last_reward = reward
        self._episode_over = True
        return self._observation(), float(reward), True, False, info

    # --- helpers -----------------------------------------------------------------------------
    def _check_can_step(self) -> None:
        """RuntimeError unless a ``reset`` started an episode that has not ended yet."""
        if not self._built:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode has ended (one architecture per episode, terminated=True); "
                               "call reset() before the next step")

    @property
    def reward_obs_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the last-reward entry of the observation: ``[-REWARD_OBS_LIMIT, 0]``
        (rewards are negative losses), widened to hold ``nonfinite_reward``."""
        return (min(-REWARD_OBS_LIMIT, self.nonfinite_reward), max(0.0, self.nonfinite_reward))

    def _clipped_reward(self) -> float:
        low, high = self.reward_obs_bounds
        return min(max(self.last_reward, low), high)

    def credit_correlation(self) -> float:
        """Pearson corr(Taylor, exact) over the recent hybrid checks (nan if too few)."""
        if len(self._credit_pairs) < 3:
            return float("nan")
        pairs = np.asarray(self._credit_pairs)
        if pairs[:, 0].std() == 0 or pairs[:, 1].std() == 0:
            return float("nan")
        return float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])

    def _credit_check(self, loss_of_gates, active: np.ndarray, record: bool = True) -> Optional[CreditCheck]:
        """One credit check (recorded for ``credit_quality`` when ``record``; None when the
        loss is not finite). Leaves the model's buffers (BatchNorm running statistics) as
        they were, accumulates no gradient and draws nothing from ``np_random``."""
        model = getattr(self, "model", None)
        buffers = [b.detach().clone() for b in model.buffers()] if isinstance(model, torch.nn.Module) else []
        rng = np.random.default_rng((0xC4ED17, self.steps))  # the hybrid subset, off the search's stream
        check = check_credit(loss_of_gates, active, rng, self.device, self.credit_subset)
        with torch.no_grad():
            for live, saved in zip(model.buffers() if buffers else (), buffers):
                live.copy_(saved)
        if not (math.isfinite(check.loss) and np.isfinite(check.taylor).all() and np.isfinite(check.exact).all()):
            return None
        if record:
            self._checks["count"] += 1
            self._checks["hybrid_passes"] += check.hybrid_extra_passes
            self._check_triples.extend(zip(check.taylor.tolist(), check.hybrid.tolist(), check.exact.tolist()))
        return check

    def credit_quality(self, arch: Any = None) -> Optional[dict]:
        """Credit quality over the search: Taylor and hybrid credit against exact credit.

        Args:
            arch: if given, one more check on this architecture (e.g. the derived one at the
                end of a search) on a fresh reward batch.

        Returns:
            None when the env gives no credit or checks are off; else ``{"every": K,
            "checks": n, "pooled": figures over every checked decision of every check,
            "final": figures of the check on ``arch`` (when given)}``, figures as
            ``searchspace.CreditCheck.figures`` (``pooled`` reports the mean passes).
        """
        if self.credit_mode is None or not self.credit_check_every:
            return None
        out: dict[str, Any] = {"every": self.credit_check_every}
        if arch is not None:
            arch = self.space.validate(arch)
            batch = self._reward_batch()
            active = arch != 0 if self.space.zero_op else np.ones(len(arch), dtype=bool)
            final = self._credit_check(lambda g: self._loss(arch, batch, g)[0], active, record=False)
            out["final"] = final.figures() if final is not None else {}
        triples = np.asarray(self._check_triples, dtype=np.float64).reshape(-1, 3)
        count = max(self._checks["count"], 1)
        pooled = figures_of(triples[:, 0], triples[:, 1], triples[:, 2], self._checks["hybrid_passes"] / count)
        pooled["active_edges"] = pooled["exact_extra_passes"] = len(triples) / count
        out.update(checks=self._checks["count"], pooled=pooled)
        # JSON has no nan: a figure that is undefined (e.g. a correlation of < 3 values) is None.
        for group in ("final", "pooled"):
            if group in out:
                out[group] = {k: (v if math.isfinite(v) else None) for k, v in out[group].items()}
        return out

    def _base_state(self) -> dict:
        return {"np_random": self.np_random.bit_generator.state, "steps": self.steps,
                "evaluations": self.evaluations, "last_reward": self.last_reward,
                "credit_pairs": list(self._credit_pairs), "space": self.space.to_dict(),
                "credit_checks": {**self._checks, "triples": [list(t) for t in self._check_triples]}}

    def _load_base_state(self, state: dict) -> None:
        if state["space"] != self.space.to_dict():
            raise ValueError(f"environment state is for search space {state['space'].get('name')!r}, "
                             f"not {self.space.name!r}")
        self.np_random.bit_generator.state = state["np_random"]
        self.steps, self.evaluations = state["steps"], state["evaluations"]
        self.last_reward = state["last_reward"]
        self._credit_pairs.clear()
        self._credit_pairs.extend(state["credit_pairs"])
        checks = state.get("credit_checks", {"count": 0, "hybrid_passes": 0, "triples": []})
        self._checks = {"count": int(checks["count"]), "hybrid_passes": int(checks["hybrid_passes"])}
        self._check_triples.clear()
        self._check_triples.extend(tuple(t) for t in checks["triples"])

    def _evaluate(self, loss_of_gates: Callable[[Optional[torch.Tensor]], torch.Tensor],
                  active: np.ndarray) -> tuple[float, int, Optional[Credit]]:
        """Loss of the sampled architecture, forward passes spent, and its credit (``None``
        without a credit mode). Subclasses may fold the reward into their training pass."""
        if self.credit_mode is None:
            with torch.no_grad():
                return loss_of_gates(None).item(), 1, None
        result = compute_credit(self.credit_mode, loss_of_gates, active, self.np_random,
                                self.device, self.credit_subset)
        return result.loss, result.evaluations, result

    # --- subclass hooks ----------------------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def _reward_batch(self) -> Any:
        raise NotImplementedError

    def _loss(self, arch: np.ndarray, batch: Any, gates: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Loss of ``arch`` on ``batch`` (with gates) and extra info of the full architecture."""
        raise NotImplementedError

    def _train(self, arch: np.ndarray) -> dict:
        """Train the shared weights on ``arch`` where the env has any; returns info entries."""
        return {}

    def _observation(self) -> np.ndarray:
        raise NotImplementedError
