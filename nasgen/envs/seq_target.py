"""``nasgen/SeqTarget-v0``: the progress report's RNN toy tasks (section 4) as an episode.

The agent emits a token sequence, one token per step, and is scored against a target
(``[1, 1, 0, 0]`` by default):

- ``mode="map"`` (report 4.1): step ``t`` shows the input token ``input[t]``
  (``[1, 0, 1, 0]`` by default) to map to ``target[t]``.
- ``mode="generate"`` (report 4.2): only step 0 shows a random ``z`` (uniform in [-1, 1],
  from ``np_random``); later steps show the agent's own previous token, which a recurrent
  agent must turn into the rest of the target by carrying its state.

Observation (``Box`` float32, fixed layout, every part in [-1, 1] or [0, 1])::

    [ z (z_dim) | input token one-hot (n_tokens) | previous action one-hot (n_tokens)
      | position one-hot (length), only with observe_position=True ]

``z`` is zero except at step 0 of ``generate``; the input part is zero in ``generate``; the
previous action part is zero at step 0. The position is hidden by default: the point of the
task is that the agent has to count by itself.

Reward (``reward=``):

- ``"sequence"`` (default): 0 on every step but the last, which gives
  ``-(number of wrong tokens)`` (0 for the exact target, ``-length`` at worst).
- ``"per_token"``: ``-1`` on each step whose token is wrong, else 0; the episode return is
  the same ``-(number of wrong tokens)``.

The last token ends the episode with ``terminated=True``; its ``info`` holds ``sequence``,
``target``, ``wrong`` and ``correct``. An invalid action raises ``ValueError`` naming the
allowed range and leaves the episode where it was.

For ``nasgen search`` a whole sequence is an architecture: ``env.unwrapped.space`` has one
decision per token and ``score(sequence)`` is the episode return it earns (the controllers
are open-loop: they choose every token before seeing an observation).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np

from nasgen.searchspace import SearchSpace

MODES = ("map", "generate")
REWARDS = ("sequence", "per_token")


class SeqTargetEnv(gym.Env):
    """Emit ``target`` one token per step (see the module docstring).

    Args:
        mode: ``"map"`` or ``"generate"``.
        target: the sequence to emit (non-negative ints).
        input: the ``map`` input sequence, as long as ``target``.
        n_tokens: vocabulary size (actions ``0..n_tokens-1``); default
            ``max(target + input) + 1``, at least 2.
        z_dim: size of ``z`` in ``generate``.
        reward: ``"sequence"`` or ``"per_token"``.
        observe_position: add the step's one-hot position to the observation.
    """

    metadata = {"render_modes": []}

    def __init__(self, mode: str = "map", target: Sequence[int] = (1, 1, 0, 0), input: Sequence[int] = (1, 0, 1, 0),
                 n_tokens: Optional[int] = None, z_dim: int = 8, reward: str = "sequence",
                 observe_position: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        self.target = tuple(int(v) for v in target)
        self.input = tuple(int(v) for v in input)
        if not self.target or min(self.target) < 0:
            raise ValueError(f"target must be a non-empty sequence of non-negative ints, got {list(target)}")
        if mode == "map" and (len(self.input) != len(self.target) or min(self.input, default=0) < 0):
            raise ValueError(f"map mode needs a non-negative input as long as the target; got input "
                             f"{list(self.input)} for target {list(self.target)}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        needed = max(self.target + (self.input if mode == "map" else ())) + 1
        if n_tokens is None:
            n_tokens = max(2, needed)
        if n_tokens < needed:
            raise ValueError(f"n_tokens={n_tokens} but the sequences use token {needed - 1}")
        self.mode, self.reward_mode, self.observe_position = mode, reward, bool(observe_position)
        self.n_tokens, self.z_dim, self.length = int(n_tokens), int(z_dim), len(self.target)
        self.action_space = gym.spaces.Discrete(self.n_tokens)
        size = self.z_dim + 2 * self.n_tokens + (self.length if self.observe_position else 0)
        low = np.zeros(size, dtype=np.float32)
        low[: self.z_dim] = -1.0
        self.observation_space = gym.spaces.Box(low, np.ones(size, dtype=np.float32), dtype=np.float32)
        self.position = 0
        self.emitted: list[int] = []
        self.z = np.zeros(self.z_dim, dtype=np.float32)
        self.space = SearchSpace(f"seq-target-{self.length}x{self.n_tokens}", [self.n_tokens] * self.length,
                                 decision_names=[f"token {t}" for t in range(self.length)])

    def score(self, sequence: Any) -> float:
        """``-(number of wrong tokens)`` of a whole sequence: the return of the episode that
        emits it (in either reward mode), without stepping."""
        tokens = self.space.validate(sequence)
        return float(-int(np.sum(tokens != np.asarray(self.target))))

    # --- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        self.position = 0
        self.emitted = []
        self.z = self.np_random.uniform(-1.0, 1.0, self.z_dim).astype(np.float32)
        return self._observation(), {}

    def step(self, action: Any):
        token = self._check_action(action)  # raises before any state changes
        t = self.position
        wrong = token != self.target[t]
        self.emitted.append(token)
        self.position += 1
        terminated = self.position == self.length
        info: dict[str, Any] = {"position": t, "token_correct": not wrong}
        if self.reward_mode == "per_token":
            reward = -float(wrong)
        else:
            reward = 0.0
        if terminated:
            n_wrong = int(sum(a != b for a, b in zip(self.emitted, self.target)))
            info.update(sequence=list(self.emitted), target=list(self.target), wrong=n_wrong,
                        correct=n_wrong == 0)
            if self.reward_mode == "sequence":
                reward = -float(n_wrong)
        return self._observation(), reward, terminated, False, info

    # --- helpers -----------------------------------------------------------------------------------
    def _check_action(self, action: Any) -> int:
        allowed = f"allowed 0..{self.n_tokens - 1}"
        if self.position >= self.length:
            raise RuntimeError("the episode has ended; call reset()")
        value = action
        if isinstance(value, np.ndarray):
            if value.shape not in ((), (1,)):
                raise ValueError(f"action must be one token ({allowed}), got an array of shape {value.shape}")
            value = value.reshape(()).item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ValueError(f"action must be an int token ({allowed}), got {action!r}")
        if not np.isfinite(value) or value != int(value):
            raise ValueError(f"action {action!r} is not an integer token ({allowed})")
        token = int(value)
        if not 0 <= token < self.n_tokens:
            raise ValueError(f"token {token} at step {self.position} is out of range: {allowed}")
        return token

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        t = self.position
        if self.mode == "generate" and t == 0:
            obs[: self.z_dim] = self.z
        if self.mode == "map" and t < self.length:
            obs[self.z_dim + self.input[t]] = 1.0
        if t > 0:
            obs[self.z_dim + self.n_tokens + self.emitted[-1]] = 1.0
        if self.observe_position and t < self.length:
            obs[self.z_dim + 2 * self.n_tokens + t] = 1.0
        return obs
