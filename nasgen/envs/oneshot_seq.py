"""``nasgen/OneShotNASSeq-v0``: the one-shot search as an autoregressive episode.

One step is one decision (the op of one edge); after the last decision the whole
architecture goes to an inner one-step env (``OneShotNASEnv``), whose reward ends the
episode. ``SequentialArchitectureEnv`` does this for any ``ArchitectureEnv``.

Observation: a ``Dict`` with two keys, the layout Tianshou's masked policies read
(``obs.obs`` goes to the network, ``obs.mask`` masks the logits) and Stable-Baselines3's
``MultiInputPolicy`` accepts as it is (with sb3-contrib's ``MaskablePPO`` the mask also
comes from ``env.action_masks()``):

- ``"obs"``: float32 Box in [0, 1] of length ``n * m + n + 1`` (``n`` decisions, ``m`` the
  largest choice count): entry ``i * m + j`` is 1 when decision ``i`` was already made and
  chose ``j`` (decisions not made yet are all 0), and entry ``n * m + p`` is 1 at the
  position ``p`` (the index of the decision to make now; ``n`` once the episode is over).
- ``"mask"``: ``MultiBinary(m)`` (int8), 1 for the choices of the current decision that
  exist (the first ``choices[p]``) and, where the search space has
  ``valid_choices(prefix)``, that can still complete the decisions made so far to a valid
  architecture; all 0 in the final observation, when nothing is left to decide.

The readable state is on ``env.unwrapped``: ``decisions`` (the choices made so far),
``position``, ``action_masks()``, and ``inner`` (the one-step env: model, score, ...).
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

from .base import ArchitectureEnv
from .oneshot import OneShotConfig, OneShotNASEnv


class SequentialArchitectureEnv(gym.Env):
    """An autoregressive view of a one-step architecture env: one decision per step.

    Action: ``Discrete(max choices)``; at position ``p`` only the choices of the observation's
    mask are valid (``0 .. choices[p] - 1``, narrowed by ``space.valid_choices`` if any). Reward: 0 before the last decision, then the inner env's
    reward for the whole architecture, with ``terminated=True`` (never truncated). info of
    the last step is the inner env's info plus ``arch``; earlier steps give ``{}``.

    A bad action (not one integer, NaN, out of the current decision's range) raises
    ValueError naming the decision and its allowed range, and changes nothing; if the inner
    env refuses the finished architecture with ValueError, the last decision is undone so
    another choice can be made.

    Args:
        inner: the one-step env that rewards a whole architecture. Its ``reset`` gets the
            seeds of this env's ``reset``.
    """

    metadata = {"render_modes": []}

    def __init__(self, inner: ArchitectureEnv):
        self.inner = inner
        self.space = inner.space
        n, m = self.space.n_decisions, self.space.max_choices
        self.action_space = gym.spaces.Discrete(m)
        self.observation_space = gym.spaces.Dict({
            "obs": gym.spaces.Box(0.0, 1.0, shape=(n * m + n + 1,), dtype=np.float32),
            "mask": gym.spaces.MultiBinary(m),
        })
        self._choice_mask = self.space.choice_mask().astype(np.int8)  # [n, m]
        self.decisions = np.zeros(n, dtype=np.int64)
        self.position = 0
        self._started = False

    # --- what agents and controllers use ------------------------------------------------------
    @property
    def n_decisions(self) -> int:
        return self.space.n_decisions

    def action_masks(self) -> np.ndarray:
        """Bool mask of the valid actions now (sb3-contrib ``MaskablePPO`` calls this)."""
        return self._mask().astype(bool)

    def score(self, arch: Any) -> float:
        """The inner env's ``score`` of a whole architecture."""
        return self.inner.score(arch)

    # --- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Start a new episode at decision 0.

        Args:
            seed: also passed to the inner env's ``reset`` (a seed rebuilds its search state).
            options: passed to the inner env's ``reset`` (e.g. ``{"warmup": False}``).

        Returns:
            ``(observation, {})``.
        """
        super().reset(seed=seed)
        self.inner.reset(seed=seed, options=options)
        self.decisions[:] = 0
        self.position = 0
        self._started = True
        return self._observation(), {}

    def step(self, action: Any):
        """Make the current decision.

        Args:
            action: one int in ``0 .. choices[position] - 1``.

        Returns:
            ``(observation, reward, terminated, truncated, info)``.

        Raises:
            ValueError: bad action (nothing changes).
            RuntimeError: before ``reset`` or after the episode ended.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.position >= self.n_decisions:
            raise RuntimeError("the episode is over (all decisions made); call reset()")
        p = self.position
        choice = self._check_action(action, p)
        self.decisions[p] = choice
        self.position = p + 1
        if self.position < self.n_decisions:
            return self._observation(), 0.0, False, False, {}
        arch = self.decisions.copy()
        try:
            _, reward, _, _, inner_info = self.inner.step(arch)
        except Exception:
            self.position = p  # the inner env refused the architecture: undo the last decision
            raise
        info = dict(inner_info)
        info["arch"] = arch
        return self._observation(), float(reward), True, False, info

    def close(self) -> None:
        self.inner.close()

    # --- helpers --------------------------------------------------------------------------------
    def _check_action(self, action: Any, p: int) -> int:
        allowed = f"allowed 0..{self.space.choices[p] - 1}"
        where = f"{self.space.decision_name(p)} (step {p + 1} of {self.n_decisions})"
        array = np.asarray(action)
        if array.size != 1:
            raise ValueError(f"action for {where} must be one integer, got shape {array.shape}: {allowed}")
        value = array.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"action {value!r} for {where} is not an integer choice: {allowed}")
        if not 0 <= value < self.space.choices[p]:
            raise ValueError(f"action {value} is out of range for {where}: {allowed}")
        mask = self._mask()
        if not mask[value]:
            valid = ", ".join(str(i) for i in np.flatnonzero(mask))
            raise ValueError(f"action {value} for {where} cannot complete the decisions made so far "
                             f"to a valid architecture: allowed {valid}")
        return int(value)

    def _mask(self) -> np.ndarray:
        if self.position >= self.n_decisions:
            return np.zeros(self.space.max_choices, dtype=np.int8)
        valid_choices = getattr(self.space, "valid_choices", None)
        if valid_choices is None:
            return self._choice_mask[self.position].copy()
        return np.asarray(valid_choices(self.decisions[:self.position]), dtype=np.int8)

    def _observation(self) -> dict[str, np.ndarray]:
        n, m = self.n_decisions, self.space.max_choices
        obs = np.zeros(n * m + n + 1, dtype=np.float32)
        made = np.arange(self.position)
        obs[made * m + self.decisions[:self.position]] = 1.0
        obs[n * m + self.position] = 1.0
        return {"obs": obs, "mask": self._mask()}


class OneShotNASSeqEnv(SequentialArchitectureEnv):
    """``nasgen/OneShotNASSeq-v0``: ``OneShotNAS-v0`` one edge per step.

    The reward, info (``val_accuracy``, ``val_loss``, ``params``, ``credit`` ...) and the
    shared-weight training come from an inner ``OneShotNASEnv`` (``env.unwrapped.inner``):
    its supernet is trained (and the warm-up run) exactly as in the one-step env.

    Args:
        **kwargs: every keyword of ``OneShotNASEnv`` (dataset, space, C, n_cells,
            batch_size, warmup_epochs, train_weights, credit, device, seed, ...).
    """

    #: what the inner env accepts: its config, datasets and credit modes
    config_class = OneShotConfig
    dataset_names = staticmethod(OneShotNASEnv.dataset_names)
    credit_modes = OneShotNASEnv.credit_modes
    check_arguments = OneShotNASEnv.check_arguments

    def __init__(self, **kwargs: Any):
        super().__init__(OneShotNASEnv(**kwargs))

