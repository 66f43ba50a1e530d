"""The controller interface, the registry, and pieces shared by the controllers.

Black-box controllers see architectures and rewards only (plus per-edge credit in
``infos`` for ``credit``)::

    archs = ctrl.ask(n)                      # list of int architectures
    metrics = ctrl.tell(archs, rewards, infos)
    arch = ctrl.derive()                     # the controller's answer

Gradient controllers (``kind = "gradient"``) instead drive the differentiable model of
the environment through ``step(env.unwrapped)``.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np

from nasgen import kwargs as typed_kwargs
from nasgen.checks import short
from nasgen.searchspace import SearchSpace
from nasgen.searchspace.registry import Registry

from .diagnostics import entropy

#: Entry-point group of controller plug-ins (``[project.entry-points."nasgen.controllers"]``).
GROUP = "nasgen.controllers"


def _as_controller(loaded: object, name: str) -> type["Controller"]:
    """A plug-in's class, checked: a ``Controller`` subclass of a known kind that defines the
    methods of its kind. A class without a ``name`` gets the one it is used by."""
    if not isinstance(loaded, type) or not issubclass(loaded, Controller):
        raise TypeError(f"{short(loaded)} is not a subclass of nasgen.controllers.Controller")
    if loaded.kind not in ("black-box", "gradient"):
        raise TypeError(f"kind is {short(loaded.kind)}, not 'black-box' or 'gradient'")
    needed = ("step", "derive") if loaded.kind == "gradient" else ("ask", "tell", "derive")
    missing = [m for m in needed if getattr(loaded, m, None) is getattr(Controller, m, None)
               or not callable(getattr(loaded, m, None))]
    if missing:
        raise TypeError(f"a {loaded.kind} controller defines {', '.join(needed)}; {loaded.__name__} "
                        f"lacks {', '.join(missing)}")
    if not isinstance(loaded.samples_per_step, int) or isinstance(loaded.samples_per_step, bool) \
            or loaded.samples_per_step < 1:
        raise TypeError(f"samples_per_step must be an int >= 1, got {short(loaded.samples_per_step)}")
    if not isinstance(loaded.env_requirements, dict):
        raise TypeError(f"env_requirements must be a dict, got {short(loaded.env_requirements)}")
    if not loaded.name:
        loaded.name = name
    return loaded


CONTROLLERS: Registry[type["Controller"]] = Registry("controller", group=GROUP, check=_as_controller)

#: Finite rewards (and credit) are clipped to ``[-REWARD_LIMIT, REWARD_LIMIT]`` before a
#: controller learns from them: far beyond any loss-based reward, yet small enough that sums,
#: squares and products with log-probabilities stay finite (a reward of 1e308 once turned
#: the rnn controller's policy into NaN for good).
REWARD_LIMIT = 1e12


def clip_signal(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to ``[-REWARD_LIMIT, REWARD_LIMIT]`` (NaN stays NaN)."""
    return np.clip(values, -REWARD_LIMIT, REWARD_LIMIT)


def register(name: str):
    """Class decorator registering a controller under ``name`` (sets ``cls.name``)."""
    def add(cls):
        cls.name = name
        return CONTROLLERS.register(name)(cls)
    return add


def names() -> list[str]:
    """Controller names: the built-ins, then the plug-ins installed (entry points)."""
    return CONTROLLERS.list()


def get(name: str) -> type["Controller"]:
    """The controller class ``name``: a built-in, an installed plug-in, or a ``module:Class``
    reference. KeyError listing the known names for an unknown one; ``PluginError`` (one line)
    for a plug-in that cannot be used."""
    return CONTROLLERS.get(name)


#: Constructor parameters the caller fills in, never the user's hyper-parameters.
INTERNAL = ("self", "space", "seed")


def hyperparameters(name: str) -> dict[str, inspect.Parameter]:
    """The hyper-parameters controller ``name`` takes, with their defaults: its constructor's
    keyword parameters (the constructor is a controller's contract)."""
    return {key: p for key, p in inspect.signature(get(name).__init__).parameters.items() if key not in INTERNAL}


def check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse an unknown hyper-parameter or a value of the wrong type (against the
    constructor's annotations, or its default's type where it has none); the values' own
    ranges are the constructor's to check.

    Raises:
        KeyError: unknown controller, listing the known ones.
        TypeError: one line naming the keyword or value and what was expected.
    """
    typed_kwargs.check_kwargs(get(name).__init__, kwargs, f"controller {name!r}", internal=INTERNAL)


def make(name: str, space: SearchSpace, seed: int = 0, **kwargs) -> "Controller":
    """Build controller ``name`` for ``space``: the one place a controller's hyper-parameters
    are checked (``check_kwargs``, then the constructor's own checks).

    Args:
        name: one of ``names()``.
        space: the search space the controller proposes architectures in.
        seed: seeds the controller's own generator (numpy, and torch where it has one).
        **kwargs: the controller's hyper-parameters.

    Raises:
        KeyError: unknown name, listing the known ones.
        TypeError, ValueError: a bad hyper-parameter, in one line naming it.
    """
    check_kwargs(name, kwargs)
    try:
        return get(name)(space, seed=seed, **kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"controller {name!r}: {error}") from None
    except (RuntimeError, OverflowError) as error:  # torch refusing a value the checks let through
        given = ", ".join(f"{k}={short(v, 40)}" for k, v in kwargs.items())
        raise ValueError(f"controller {name!r} cannot be built with {given}: {error}") from None


class Controller:
    """Base class: holds the space and a seeded numpy generator.

    Subclasses implement ``ask``, ``tell`` (black-box) or ``step`` (gradient), ``derive``,
    and extend ``state_dict``/``load_state_dict`` with their own state.

    Attributes:
        kind: ``"black-box"`` or ``"gradient"``.
        env_requirements: keyword arguments the environment must be made with
            (``{"credit": "taylor"}`` for ``credit``); the user may override them.
        samples_per_step: how many architectures the search loop asks for per step.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "black-box"
    env_requirements: ClassVar[dict[str, Any]] = {}
    #: architectures the search loop asks for per step (ASNG, for one, wants 2)
    samples_per_step: int = 1

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.evaluations = 0

    # --- interface ---------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} controller without ask()")

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} controller without tell()")

    def derive(self) -> np.ndarray:
        raise NotImplementedError

    def op_probabilities(self) -> Optional[np.ndarray]:
        """``[n_decisions, max_choices]`` op probabilities, where the controller has them."""
        return None

    def state_dict(self) -> dict:
        return {"name": self.name, "space": self.space.to_dict(), "rng": self.rng.bit_generator.state,
                "evaluations": self.evaluations}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for controller {state.get('name')!r}, not {self.name!r}")
        if state.get("space") != self.space.to_dict():
            raise ValueError(f"state is for search space {state.get('space', {}).get('name')!r}, "
                             f"not {self.space.name!r}")
        self.rng.bit_generator.state = state["rng"]
        self.evaluations = state["evaluations"]

    # --- helpers for subclasses ------------------------------------------------------------
    def _check_ask(self, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"ask(n) needs a positive int n, got {n!r}")
        return int(n)

    def _check_tell(self, archs: Sequence[Any], rewards: Sequence[float],
                    infos: Optional[Sequence[dict]]) -> tuple[np.ndarray, np.ndarray, list[dict], np.ndarray]:
        """Validate a ``tell`` call.

        Returns:
            ``(archs [n, D], rewards [n], infos, finite mask [n])``; evaluations are counted.
            A sample is not finite when its reward is not, or when its info says
            ``"nonfinite": True`` (the env then floors the reward to a finite stand-in,
            which must not be learned from either). Rewards come back clipped by
            ``clip_signal``.
        """
        archs = list(archs)
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(archs) != len(rewards):
            raise ValueError(f"tell got {len(archs)} architectures but {len(rewards)} rewards")
        if not archs:
            raise ValueError("tell needs at least one architecture")
        if infos is None:
            infos = [{} for _ in archs]
        infos = list(infos)
        if len(infos) != len(archs):
            raise ValueError(f"tell got {len(archs)} architectures but {len(infos)} infos")
        for info in infos:
            if not isinstance(info, Mapping):
                raise ValueError(f"tell's infos must be dicts (an env's info), got {short(info)}")
            count = info.get("evaluations", 1)
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
                raise ValueError(f"an info's evaluations must be an integer >= 0, got {short(count)}")
        matrix = np.stack([self.space.validate_encoding(a) for a in archs])
        self.evaluations += sum(int(info.get("evaluations", 1)) for info in infos)
        flagged = np.array([bool(info.get("nonfinite", False)) for info in infos])
        return matrix, clip_signal(rewards), infos, np.isfinite(rewards) & ~flagged

    def _metrics(self, archs: np.ndarray, rewards: np.ndarray, finite: np.ndarray,
                 **extra: float) -> dict[str, float]:
        """The metrics every controller reports: reward mean/max, entropy, zero-op share."""
        metrics: dict[str, float] = {
            "reward_mean": float(rewards[finite].mean()) if finite.any() else float("nan"),
            "reward_max": float(rewards[finite].max()) if finite.any() else float("nan"),
            "nonfinite_rewards": float((~finite).sum()),
            "evaluations": float(self.evaluations),
        }
        if self.space.zero_op:
            metrics["zero_op_share"] = float((archs == 0).mean())
        probs = self.op_probabilities()
        if probs is not None:
            metrics["entropy"] = float(mean_entropy(probs))
        metrics.update({k: float(v) for k, v in extra.items()})
        return metrics


class BestSoFar(Controller):
    """A black-box controller whose answer is the best architecture it has been told about
    (``random``, ``ga``): keeps ``best_arch`` and ``best_reward`` (None and -inf before any
    finite reward) and checkpoints them. A subclass's ``tell`` calls ``_keep_best``.
    """

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(space, seed)
        self.best_arch: Optional[np.ndarray] = None
        self.best_reward = -np.inf

    def _keep_best(self, archs: np.ndarray, rewards: np.ndarray, finite: np.ndarray) -> None:
        """Note the best of the told samples with a finite reward (``_check_tell``'s arrays)."""
        for arch, reward in zip(archs[finite], rewards[finite]):
            if reward > self.best_reward:
                self.best_reward, self.best_arch = float(reward), arch.copy()

    def derive(self) -> np.ndarray:
        if self.best_arch is None:  # nothing told yet: a deterministic uniform draw
            return self.space.sample(np.random.default_rng(self.seed))
        return self.best_arch.copy()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_arch": None if self.best_arch is None else self.best_arch.copy(),
                "best_reward": self.best_reward}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best_arch = None if state["best_arch"] is None else np.array(state["best_arch"], dtype=np.int64)
        self.best_reward = float(state["best_reward"])


def mean_entropy(probs: np.ndarray) -> float:
    """Mean over decisions of the entropy (nats) of each row of ``probs``."""
    return float(entropy(probs, axis=1).mean())


class CategoricalPolicy:
    """A factorised categorical over decisions with possibly different choice counts.

    ``theta`` holds logits ``[n_decisions, max_choices]``; missing choices are masked out.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.mask = space.choice_mask()
        self.theta = np.zeros(self.mask.shape)

    def probs(self) -> np.ndarray:
        logits = np.where(self.mask, self.theta, -np.inf)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def sample(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``n`` architectures by inverse-CDF sampling, one uniform per decision."""
        cdf = np.cumsum(self.probs(), axis=1)
        out = []
        for _ in range(n):
            u = rng.random(self.mask.shape[0])[:, None]
            arch = (u > cdf).sum(axis=1)
            out.append(np.minimum(arch, np.asarray(self.space.choices) - 1).astype(np.int64))
        return out

    def one_hot(self, archs: np.ndarray) -> np.ndarray:
        """``[n, D, J]`` one-hot encoding of ``archs [n, D]``."""
        archs = np.atleast_2d(archs)
        out = np.zeros((archs.shape[0],) + self.mask.shape)
        np.put_along_axis(out, archs[:, :, None], 1.0, axis=2)
        return out

    def log_prob_grad(self, archs: np.ndarray) -> np.ndarray:
        """``d log p(a) / d theta = onehot(a) - p`` for each arch, ``[n, D, J]``."""
        return (self.one_hot(archs) - self.probs()[None]) * self.mask[None]
