"""Conformance checks for controllers, search spaces and datasets.

In the spirit of gymnasium's ``gymnasium.utils.env_checker.check_env``: each function runs
one object through its contract and raises on the first breach::

    from nasgen.testing import check_controller, check_dataset, check_space

    check_controller("reinforce")          # or the class; learning=False skips the slow part
    check_space("nb201")
    check_dataset("digits")

A breach raises ``ConformanceError`` (an ``AssertionError``, so pytest reports it as a
failed check) whose one-line message names the check, e.g. ``check_controller[ask]``,
and what was expected and what came instead. ``check_controller`` is what makes "a
registered controller must learn" enforceable: every built-in controller passes it in the
test suite, and a controller that breaks the contract fails it with the check's name.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch

import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import controllers, searchspace
from nasgen.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nasgen.checks import cut, short
from nasgen.controllers import Controller
from nasgen.controllers.random_search import RandomSearch
from nasgen.searchspace import Dataset, SearchSpace, dataset_from, load_dataset

TEACHER_ID = "nasgen/TeacherArch-v0"
ONESHOT_ID = "nasgen/OneShotNAS-v0"
KINDS = ("black-box", "gradient")

#: The learning task: TeacherArch-v0 with 6 edges x 6 ops (46,656 architectures).
LEARNING_EDGES, LEARNING_OPS = 6, 6
#: Default learning budget of a black-box controller: reward evaluations (``info["evaluations"]``).
BLACK_BOX_BUDGET = 400
#: Default learning budget of a gradient controller: ``step`` calls.
GRADIENT_STEPS = 100
#: A gradient controller's derived architecture must beat this quantile of random architectures.
GRADIENT_QUANTILE = 0.9
#: Random architectures drawn to estimate that quantile.
REFERENCE_ARCHS = 500

#: Architectures asked per round when the kit plays a controller (varied on purpose, so that
#: batched tells and partial batches, such as ASNG's pending samples, are exercised).
ROUND_SIZES = (1, 3, 2)


class ConformanceError(AssertionError):
    """An object breaks its contract.

    The message is one line: ``<check>: expected <expected>; got <got>``, where ``check``
    names the function and the part of the contract, e.g. ``check_controller[tell]``.

    Attributes:
        check: the check's name.
        expected: what the contract asks for.
        got: what came instead.
    """

    def __init__(self, check: str, expected: str, got: str):
        self.check, self.expected, self.got = check, expected, got
        line = f"{check}: expected {expected}; got {got}"
        super().__init__(cut(" ".join(line.split()), 500))

    def __reduce__(self):  # picklable across processes despite the three-argument constructor
        return type(self), (self.check, self.expected, self.got)


def _fail(check: str, expected: str, got: str) -> None:
    raise ConformanceError(check, expected, got)


@contextlib.contextmanager
def _succeeds(check: str, call: str) -> Iterator[None]:
    """Turn an unexpected exception of ``call`` into a ConformanceError naming ``check``."""
    try:
        yield
    except ConformanceError:
        raise
    except Exception as error:
        raise ConformanceError(check, f"{call} to succeed", f"{type(error).__name__}: {error}") from error


def _refuses(check: str, call: str, action: Callable[[], Any], error: type = ValueError) -> None:
    """``action()`` must raise ``error``: neither succeed nor raise another type."""
    try:
        action()
    except error:
        return
    except Exception as other:
        _fail(check, f"{call} to raise {error.__name__}", f"{type(other).__name__}: {other}")
    _fail(check, f"{call} to raise {error.__name__}", "no error (accepted)")


def default_spaces() -> list[SearchSpace]:
    """Every built-in space (``searchspace.names()``) and a plain space with uneven choices."""
    return [searchspace.get(name) for name in searchspace.names()] + [SearchSpace("uneven", [2, 5, 3])]


def _member_fault(space: SearchSpace, arch: Any) -> Optional[str]:
    """Why ``arch`` is not an architecture of ``space`` (None when it is one)."""
    try:
        array = np.asarray(arch)
    except Exception:  # a ragged nesting numpy cannot hold
        return f"{short(arch, 60)}, not a vector of choices"
    shown = short(array.tolist() if array.dtype != object else arch, 60)
    if array.ndim != 1 or array.shape[0] != space.n_decisions:
        return f"{shown} of shape {array.shape}, not a vector of {space.n_decisions} choices"
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        return f"{shown} of dtype {array.dtype}, not integers"
    bad = np.flatnonzero((array < 0) | (array >= np.asarray(space.choices)))
    if bad.size:
        i = int(bad[0])
        return f"{shown}: arch[{i}] = {int(array[i])} outside 0..{space.choices[i] - 1}"
    try:
        space.validate(array)
    except Exception as error:
        return f"{shown}, refused by space.validate: {type(error).__name__}: {error}"
    return None


def _check_member(check: str, space: SearchSpace, arch: Any, what: str) -> None:
    fault = _member_fault(space, arch)
    if fault is not None:
        _fail(check, f"{what} to be an architecture of space {space.name!r}", fault)


def _check_probabilities(check: str, space: SearchSpace, probs: Any, when: str) -> None:
    """``probs`` is None or ``[n_decisions, max_choices]`` finite probabilities per decision."""
    if probs is None:
        return
    probs = np.asarray(probs, dtype=np.float64)
    shape = (space.n_decisions, space.max_choices)
    expected = f"op_probabilities() {when} on space {space.name!r} to be None or {shape} probabilities"
    if probs.shape != shape:
        _fail(check, expected, f"shape {probs.shape}")
    if not np.isfinite(probs).all():
        _fail(check, expected, f"non-finite values in row {int(np.flatnonzero(~np.isfinite(probs).all(1))[0])}")
    mask = space.choice_mask()
    if (probs < 0).any():
        _fail(check, expected, f"a negative probability in row {int(np.flatnonzero((probs < 0).any(1))[0])}")
    if (probs[~mask] != 0).any():
        _fail(check, expected, f"probability on a choice a decision lacks (row "
                               f"{int(np.flatnonzero((np.where(mask, 0, probs) != 0).any(1))[0])})")
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if off.size:
        _fail(check, expected, f"row {int(off[0])} sums to {sums[off[0]]:.6g}, not 1")


def _check_answers(ctrl: Any, space: SearchSpace, when: str) -> None:
    """``derive()`` is an architecture of the space; ``op_probabilities()`` is well formed."""
    with _succeeds("check_controller[derive]", f"derive() {when} on space {space.name!r}"):
        arch = ctrl.derive()
    _check_member("check_controller[derive]", space, arch, f"derive() {when}")
    with _succeeds("check_controller[op_probabilities]", f"op_probabilities() {when} on space {space.name!r}"):
        probs = ctrl.op_probabilities()
    _check_probabilities("check_controller[op_probabilities]", space, probs, when)


# --- a stand-in task on any space ------------------------------------------------------------
class _Task:
    """Deterministic feedback on any space, for the checks that need rewards but no env.

    The reward is minus the share of decisions that differ from a hidden target; the info
    reports one evaluation and, for a controller whose ``env_requirements`` ask for credit,
    per-decision credit (+1/D on a decision that matches the target, -1/D elsewhere).
    """

    def __init__(self, space: SearchSpace, credit: bool, seed: int = 2024):
        self.space, self.credit = space, credit
        self.target = space.sample(np.random.default_rng(seed))

    def feedback(self, archs: Sequence[Any]) -> tuple[list[float], list[dict]]:
        rewards, infos = [], []
        for arch in archs:
            hit = np.asarray(arch) == self.target
            rewards.append(float(hit.mean()) - 1.0)
            info: dict[str, Any] = {"evaluations": 1}
            if self.credit:
                info["credit"] = np.where(hit, 1.0, -1.0) / self.space.n_decisions
            infos.append(info)
        return rewards, infos


def _task(cls: type, space: SearchSpace) -> _Task:
    return _Task(space, credit="credit" in getattr(cls, "env_requirements", {}))


def _ask(check: str, ctrl: Any, space: SearchSpace, n: int) -> list[Any]:
    """``ctrl.ask(n)``, checked to be ``n`` architectures of the space."""
    with _succeeds(check, f"ask({n}) on space {space.name!r}"):
        archs = ctrl.ask(n)
    try:
        archs = list(archs)
    except TypeError:
        _fail("check_controller[ask]", f"ask({n}) to return a list of {n} architectures", short(archs))
    if len(archs) != n:
        _fail("check_controller[ask]", f"ask({n}) on space {space.name!r} to return {n} architectures",
              f"{len(archs)}")
    for k, arch in enumerate(archs):
        _check_member("check_controller[ask]", space, arch, f"ask({n})[{k}]")
    return archs


def _play(check: str, ctrl: Any, space: SearchSpace, task: _Task, rounds: int,
          start: int = 0) -> list[tuple]:
    """``rounds`` ask/tell rounds; returns, per round, the asked architectures and the
    op probabilities after the tell (what two runs that should agree are compared on)."""
    trace = []
    for r in range(start, start + rounds):
        archs = _ask(check, ctrl, space, ROUND_SIZES[r % len(ROUND_SIZES)])
        rewards, infos = task.feedback(archs)
        with _succeeds(check, f"tell() of {len(archs)} architectures on space {space.name!r}"):
            ctrl.tell(archs, rewards, infos)
        with _succeeds(check, "op_probabilities()"):
            probs = ctrl.op_probabilities()
        trace.append((tuple(tuple(int(v) for v in a) for a in archs),
                      None if probs is None else np.array(probs, dtype=np.float64)))
    return trace


def _first_difference(a: list[tuple], b: list[tuple], after: str = "tell") -> Optional[str]:
    """The first round where two traces (of ``_play`` or ``_step_trace``) disagree, or None."""
    for r, ((asked_a, probs_a), (asked_b, probs_b)) in enumerate(zip(a, b)):
        if asked_a != asked_b:
            what = "asked" if after == "tell" else "derived"
            return f"round {r}: {what} {short(list(asked_a), 60)} vs {short(list(asked_b), 60)}"
        if (probs_a is None) != (probs_b is None) or (
                probs_a is not None and not np.array_equal(probs_a, probs_b, equal_nan=True)):
            return f"round {r}: op_probabilities() differ after the {after}"
    return None


def _same_derive(check: str, a: Any, b: Any, space: SearchSpace, expected: str) -> None:
    with _succeeds(check, "derive()"):
        arch_a, arch_b = np.asarray(a.derive()), np.asarray(b.derive())
    if not np.array_equal(arch_a, arch_b):
        _fail(check, expected, f"derive() gave {short(arch_a.tolist(), 60)} vs {short(arch_b.tolist(), 60)} "
                               f"on space {space.name!r}")


# --- state ---------------------------------------------------------------------------------------
_PLAIN_LEAVES = (torch.Tensor, np.ndarray, np.generic, bool, int, float, str, bytes, type(None))


def _plain_data_fault(value: Any, path: str) -> Optional[str]:
    """Where ``value`` holds something other than plain data (None when it holds none)."""
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.hasobject:
        return f"{path} is a numpy object of dtype {value.dtype}"
    if isinstance(value, _PLAIN_LEAVES):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            # torch's optimiser states key their parameters by int index
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                return f"{path} has a key {short(key, 40)} of type {type(key).__name__}"
            fault = _plain_data_fault(item, f"{path}[{key!r}]")
            if fault is not None:
                return fault
        return None
    if isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            fault = _plain_data_fault(item, f"{path}[{k}]")
            if fault is not None:
                return fault
        return None
    return f"{path} is a {type(value).__name__} ({short(value, 40)})"


def _through_checkpoint(state: Any) -> Any:
    """``state`` written with ``save_checkpoint`` and read back with ``load_checkpoint``
    (``torch.load(weights_only=True)``)."""
    check = "check_controller[state_dict]"
    fault = _plain_data_fault(state, "state")
    if fault is not None:
        _fail(check, "state_dict() to hold plain data only (tensors, numpy arrays and scalars, numbers, str, "
                     "bytes, None, lists, tuples, dicts with str or int keys)", fault)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "controller.ckpt"
        try:
            save_checkpoint(state, path)
            return load_checkpoint(path)
        except CheckpointError as error:
            _fail(check, "state_dict() to survive save_checkpoint + load_checkpoint (torch.load weights_only=True)",
                  str(error))


# --- the controller checks ---------------------------------------------------------------------
def _resolve(cls: Any) -> type:
    return controllers.get(cls) if isinstance(cls, str) else cls


def _build(check: str, cls: type, space: SearchSpace, seed: int, kwargs: dict) -> Any:
    with _succeeds(check, f"{cls.__name__}(space {space.name!r}, seed={seed}) to be built"):
        return cls(space, seed=seed, **kwargs)


def _check_interface(cls: Any, spaces: Sequence[SearchSpace], seed: int, kwargs: dict) -> None:
    check = "check_controller[interface]"
    if not isinstance(cls, type):
        _fail(check, "a controller class (or a registered name)", short(cls))
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        _fail(check, f"{cls.__name__}.kind to be one of {KINDS}", short(kind))
    methods = ("ask", "tell", "derive") if kind == "black-box" else ("step", "derive")
    for method in methods + ("op_probabilities", "state_dict", "load_state_dict"):
        if not callable(getattr(cls, method, None)):
            _fail(check, f"a {kind} controller to have a method {method}()", f"{cls.__name__} has none")
    for method in methods:
        if getattr(cls, method) is getattr(Controller, method, None):
            _fail(check, f"a {kind} controller to implement {method}()",
                  f"{cls.__name__} inherits Controller.{method}, which only raises NotImplementedError")
    if not isinstance(getattr(cls, "env_requirements", None), dict):
        _fail(check, f"{cls.__name__}.env_requirements to be a dict", short(getattr(cls, "env_requirements", None)))
    for space in spaces:
        ctrl = _build(check, cls, space, seed, kwargs)
        per_step = getattr(ctrl, "samples_per_step", None)
        if isinstance(per_step, bool) or not isinstance(per_step, (int, np.integer)) or per_step < 1:
            _fail(check, "samples_per_step to be an int >= 1", short(per_step))


def _check_ask(cls: type, space: SearchSpace, seed: int, kwargs: dict) -> None:
    check = "check_controller[ask]"
    ctrl = _build(check, cls, space, seed, kwargs)
    for n in sorted({1, 3, int(ctrl.samples_per_step)}):
        _ask(check, ctrl, space, n)
    for bad in (0, -1, 1.5):
        _refuses(check, f"ask({bad!r}) on space {space.name!r}", lambda bad=bad: ctrl.ask(bad))


def _check_tell(cls: type, space: SearchSpace, seed: int, kwargs: dict) -> None:
    check = "check_controller[tell]"
    ctrl = _build(check, cls, space, seed, kwargs)
    task = _task(cls, space)
    archs = _ask(check, ctrl, space, 2)
    rewards, infos = task.feedback(archs)
    outside = np.array(archs[0], dtype=np.int64)
    outside[-1] = space.choices[-1]
    negative = np.array(archs[0], dtype=np.int64)
    negative[0] = -1
    cases = {
        "2 architectures with 1 reward": (archs, rewards[:1], infos),
        "1 architecture with 2 rewards": (archs[:1], rewards, infos[:1]),
        "2 architectures with 1 info": (archs, rewards, infos[:1]),
        f"an architecture with arch[-1] = {space.choices[-1]}, outside the space": ([outside], rewards[:1], infos[:1]),
        "an architecture with a negative choice": ([negative], rewards[:1], infos[:1]),
        "an architecture one decision too long": ([np.append(archs[0], 0)], rewards[:1], infos[:1]),
        "an info that is None, not a dict": (archs[:1], rewards[:1], [None]),
        "an info that is a str, not a dict": (archs[:1], rewards[:1], ["info"]),
        "an info with evaluations=-1": (archs[:1], rewards[:1], [{**infos[0], "evaluations": -1}]),
    }
    for case, (a, r, i) in cases.items():
        _refuses(check, f"tell() on space {space.name!r} given {case}", lambda a=a, r=r, i=i: ctrl.tell(a, r, i))
    # Non-finite rewards are skipped, never learned from: no error, no damage.
    ctrl = _build(check, cls, space, seed, kwargs)
    try:
        for batch in ([math.nan], [math.inf], [-math.inf], [math.nan, None]):
            archs = _ask(check, ctrl, space, len(batch))
            good, infos = task.feedback(archs)
            batch = [g if b is None else b for b, g in zip(batch, good)]
            with _succeeds(check, f"tell() with rewards {batch} on space {space.name!r}"):
                ctrl.tell(archs, batch, infos)
        _ask(check, ctrl, space, 3)
        _check_answers(ctrl, space, "after non-finite rewards")
        _play(check, ctrl, space, task, 3)
        _check_answers(ctrl, space, "after non-finite rewards and 3 more rounds")
    except ConformanceError as error:
        raise ConformanceError(check, f"non-finite rewards to be skipped without harm: {error.expected}",
                               error.got) from error


def _check_determinism(cls: type, space: SearchSpace, seed: int, kwargs: dict, rounds: int = 6) -> None:
    check = "check_controller[determinism]"
    task = _task(cls, space)
    a, b = (_build(check, cls, space, seed, kwargs) for _ in range(2))
    difference = _first_difference(_play(check, a, space, task, rounds), _play(check, b, space, task, rounds))
    if difference is not None:
        _fail(check, f"two instances with seed {seed} and the same rewards to ask the same architectures "
                     f"on space {space.name!r}", difference)
    _same_derive(check, a, b, space, f"two instances with seed {seed} to derive the same architecture")


def _check_state(cls: type, space: SearchSpace, seed: int, kwargs: dict, before: int = 4,
                 after: int = 6) -> None:
    check = "check_controller[state_dict]"
    task = _task(cls, space)
    original = _build(check, cls, space, seed, kwargs)
    _play(check, original, space, task, before)
    with _succeeds(check, "state_dict()"):
        state = original.state_dict()
    loaded = _through_checkpoint(state)
    restored = _build(check, cls, space, seed + 1, kwargs)
    with _succeeds(check, f"load_state_dict() of a checkpointed state on space {space.name!r}"):
        restored.load_state_dict(loaded)
    difference = _first_difference(_play(check, original, space, task, after, start=before),
                                   _play(check, restored, space, task, after, start=before))
    expected = (f"an instance (seed {seed + 1}) loaded with the checkpointed state to continue exactly like "
                f"the original on space {space.name!r}")
    if difference is not None:
        _fail(check, expected, difference)
    _same_derive(check, original, restored, space, expected)


# --- gradient controllers ----------------------------------------------------------------------
def _tiny_envs(cls: type, seed: int) -> Iterator[tuple[str, Any]]:
    """Small differentiable envs a gradient controller must step on."""
    extra = dict(cls.env_requirements)
    yield "TeacherArch-v0", gym.make(TEACHER_ID, n_edges=4, n_ops=3, batch_size=16, seed=seed, **extra)
    yield "OneShotNAS-v0", gym.make(ONESHOT_ID, space="small", C=4, n_cells=3, warmup_epochs=0, limit=64,
                                    batch_size=16, seed=seed, **extra)


def _step(check: str, ctrl: Any, env: Any, where: str) -> dict:
    with _succeeds(check, f"step(env.unwrapped) on {where}"):
        metrics = ctrl.step(env)
    if not isinstance(metrics, dict):
        _fail("check_controller[step]", f"step() on {where} to return a dict of metrics", short(metrics))
    reward = metrics.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
        _fail("check_controller[step]", f"step() on {where} to report a finite float 'reward'", short(reward))
    return metrics


def _check_steps(cls: type, seed: int, kwargs: dict) -> None:
    check = "check_controller[step]"
    for where, env in _tiny_envs(cls, seed):
        with _succeeds(check, f"reset() of {where}"):
            env.reset()
        space = env.unwrapped.space
        ctrl = _build(check, cls, space, seed, kwargs)
        for _ in range(2):
            _step(check, ctrl, env.unwrapped, where)
        _check_answers(ctrl, space, f"after steps on {where}")
        env.close()


def _teacher(cls: type, seed: int, **size: int) -> Any:
    env = gym.make(TEACHER_ID, seed=seed, **{"n_edges": 4, "n_ops": 3, "batch_size": 16, **size},
                   **cls.env_requirements)
    env.reset()
    return env.unwrapped


def _step_trace(check: str, ctrl: Any, env: Any, steps: int) -> list[tuple]:
    trace = []
    for _ in range(steps):
        _step(check, ctrl, env, "TeacherArch-v0")
        with _succeeds(check, "op_probabilities()"):
            probs = ctrl.op_probabilities()
        with _succeeds(check, "derive()"):
            arch = tuple(int(v) for v in ctrl.derive())
        trace.append(((arch,), None if probs is None else np.array(probs, dtype=np.float64)))
    return trace


def _check_gradient_determinism(cls: type, seed: int, kwargs: dict, steps: int = 5) -> None:
    check = "check_controller[determinism]"
    envs = [_teacher(cls, seed) for _ in range(2)]
    a, b = (_build(check, cls, env.space, seed, kwargs) for env in envs)
    difference = _first_difference(_step_trace(check, a, envs[0], steps), _step_trace(check, b, envs[1], steps),
                                   after="step")
    if difference is not None:
        _fail(check, f"two instances with seed {seed} stepping on identical envs to agree", difference)


def _check_gradient_state(cls: type, seed: int, kwargs: dict, before: int = 3, after: int = 4) -> None:
    check = "check_controller[state_dict]"
    env = _teacher(cls, seed)
    original = _build(check, cls, env.space, seed, kwargs)
    _step_trace(check, original, env, before)
    with _succeeds(check, "state_dict()"):
        state = original.state_dict()
    loaded = _through_checkpoint(state)
    twin = copy.deepcopy(env)
    restored = _build(check, cls, env.space, seed + 1, kwargs)
    with _succeeds(check, "load_state_dict() of a checkpointed state"):
        restored.load_state_dict(loaded)
    difference = _first_difference(_step_trace(check, original, env, after), _step_trace(check, restored, twin, after),
                                   after="step")
    if difference is not None:
        _fail(check, f"an instance (seed {seed + 1}) loaded with the checkpointed state to continue exactly "
                     f"like the original on copies of one env", difference)


# --- learning --------------------------------------------------------------------------------------
def _teacher_env(seed: int, env_kwargs: dict) -> Any:
    env = gym.make(TEACHER_ID, n_edges=LEARNING_EDGES, n_ops=LEARNING_OPS, seed=seed, **env_kwargs)
    env.reset()
    return env


def _black_box_search(cls: type, seed: int, budget: int, kwargs: dict) -> tuple[Any, Any, list]:
    """Run ``cls`` on the learning task until its next step would exceed ``budget`` evaluations;
    returns ``(controller, env.unwrapped, evaluated architectures)``."""
    env = _teacher_env(seed, dict(cls.env_requirements))
    ctrl = cls(env.unwrapped.space, seed=seed, **kwargs)
    used, evaluated = 0, []
    while True:
        archs = list(ctrl.ask(ctrl.samples_per_step))
        feedback = []
        for arch in archs:
            env.reset()  # one-step episodes
            _, reward, _, _, info = env.step(arch)
            feedback.append((reward, info))
        cost = sum(int(info.get("evaluations", 1)) for _, info in feedback)
        if used + cost > budget:  # spent, but never shown to the controller
            break
        ctrl.tell(archs, [r for r, _ in feedback], [i for _, i in feedback])
        used += max(cost, 1)
        evaluated.extend(archs)
    env.close()
    return ctrl, env.unwrapped, evaluated


@functools.lru_cache(maxsize=64)
def random_best(seed: int, budget: int = BLACK_BOX_BUDGET) -> float:
    """The best held-out score (``env.unwrapped.score``) among *all* architectures ``random``
    evaluated on the learning task in ``budget`` evaluations: the strictest random baseline."""
    _, env, evaluated = _black_box_search(RandomSearch, seed, budget, {})
    return max(env.score(arch) for arch in evaluated)


def _check_black_box_learning(cls: type, seeds: Sequence[int], budget: int, kwargs: dict) -> None:
    check = "check_controller[learning]"
    for seed in seeds:
        with _succeeds(check, f"a search of {budget} evaluations on TeacherArch-v0 (seed {seed})"):
            ctrl, env, _ = _black_box_search(cls, seed, budget, kwargs)
            arch = ctrl.derive()
            score = env.score(arch)
        bar = random_best(seed, budget)
        if not score > bar:
            _fail(check, f"the derived architecture on TeacherArch-v0 ({LEARNING_EDGES} edges x {LEARNING_OPS} ops, "
                         f"seed {seed}) to score better than random's best in {budget} evaluations ({bar:.6g})",
                  f"{score:.6g} for {short(np.asarray(arch).tolist(), 40)}")


def _random_quantile(env: Any, seed: int) -> float:
    rng = np.random.default_rng(seed)
    scores = [env.score(env.space.sample(rng)) for _ in range(REFERENCE_ARCHS)]
    return float(np.quantile(scores, GRADIENT_QUANTILE))


def _check_gradient_learning(cls: type, seeds: Sequence[int], steps: int, kwargs: dict) -> None:
    check = "check_controller[learning]"
    kwargs = dict(kwargs)
    if "total_steps" in inspect.signature(cls.__init__).parameters:
        kwargs.setdefault("total_steps", steps)  # temperatures and schedules span the run
    for seed in seeds:
        env = _teacher_env(seed, dict(cls.env_requirements)).unwrapped
        with _succeeds(check, f"{steps} steps on TeacherArch-v0 (seed {seed})"):
            ctrl = cls(env.space, seed=seed, **kwargs)
            for _ in range(steps):
                ctrl.step(env)
            arch = ctrl.derive()
            score = env.score(arch)
        bar = _random_quantile(env, seed)
        if not score > bar:
            _fail(check, f"the derived architecture on TeacherArch-v0 ({LEARNING_EDGES} edges x {LEARNING_OPS} ops, "
                         f"seed {seed}) after {steps} steps to score better than {GRADIENT_QUANTILE:.0%} of random "
                         f"architectures ({bar:.6g})", f"{score:.6g} for {short(np.asarray(arch).tolist(), 40)}")


def check_controller(cls: Any, *, spaces: Optional[Sequence[Any]] = None, seeds: Sequence[int] = (0, 1, 2),
                     budget: Optional[int] = None, learning: bool = True, kwargs: Optional[dict] = None) -> None:
    """Check that a controller class keeps the ``Controller`` contract, and that it learns.

    Each check below raises ``ConformanceError`` naming it (``check_controller[<name>]``):

    - ``interface``: ``kind`` is "black-box" or "gradient"; the class implements ``ask``,
      ``tell``, ``derive`` (black-box) or ``step``, ``derive`` (gradient), and has
      ``op_probabilities``, ``state_dict``, ``load_state_dict``; ``env_requirements`` is a
      dict; ``cls(space, seed=..., **kwargs)`` builds on every space, with
      ``samples_per_step`` an int >= 1.
    - ``ask`` (black-box): ``ask(n)`` returns ``n`` architectures of the space (int vectors
      of the right length, in range, accepted by ``space.validate``) on every space;
      ``ask(0)``, ``ask(-1)``, ``ask(1.5)`` raise ValueError.
    - ``tell`` (black-box): mismatched numbers of architectures, rewards and infos, an
      architecture outside the space, an info that is not a dict and an info with negative
      ``evaluations`` raise ValueError (not another error, and are not accepted); NaN and
      infinite rewards raise nothing and leave ``ask``, ``derive`` and ``op_probabilities``
      well formed.
    - ``step`` (gradient, instead of ask and tell): ``step(env.unwrapped)`` on a tiny
      TeacherArch-v0 and a tiny OneShotNAS-v0 returns a dict with a finite ``reward``.
    - ``derive`` / ``op_probabilities``: ``derive()`` is an architecture of the space, before
      and after learning; ``op_probabilities()`` is None or ``[n_decisions, max_choices]``
      finite probabilities summing to 1 per decision, 0 on the choices a decision lacks.
    - ``determinism``: two instances with the same seed fed the same rewards (gradient: stepping
      identical envs) ask the same architectures, have the same op probabilities and derive
      the same architecture. Different seeds may differ.
    - ``state_dict``: after a few rounds the state holds plain data only (tensors, numpy
      arrays and scalars, numbers, str, bytes, None, lists, tuples, dicts with str or int
      keys: torch's optimiser states key parameters by int), survives ``save_checkpoint`` +
      ``load_checkpoint`` (``torch.load(weights_only=True)``), and an instance of another
      seed loaded with it continues exactly like the original: the same asked architectures
      and op probabilities every round, the same derived architecture.
    - ``learning`` (when ``learning``): on TeacherArch-v0 with 6 edges x 6 ops, made with the
      controller's ``env_requirements``, in *every* seed of ``seeds`` (no seed may fail):

      * black-box: after ``budget`` reward evaluations (default 400; every
        ``info["evaluations"]`` counts, so credit's ablations are paid for) the derived
        architecture scores (``env.unwrapped.score``) strictly better than the best of all
        the architectures ``random`` evaluated with the same budget and seed;
      * gradient: after ``budget`` steps (default 100; ``total_steps`` is passed when the
        constructor takes it) the derived architecture scores strictly better than the
        90% quantile of 500 uniformly random architectures. A step is not one architecture
        evaluation, so the equal-evaluation yardstick does not apply; a controller whose
        alpha does not move derives a random architecture and passes a seed one time in ten.

      ``random`` itself is the yardstick and skips this check.

    The checks without an env play the controller against a stand-in reward (minus the share
    of decisions that differ from a hidden target; per-decision credit for controllers whose
    ``env_requirements`` name ``credit``).

    Args:
        cls: a controller class, or a name ``controllers.get`` knows.
        spaces: spaces (or preset names) for the checks without an env; default: every
            built-in space and a small plain space with uneven choices ``[2, 5, 3]``.
        seeds: the first seeds every check; all seed the learning check.
        budget: learning budget (evaluations for black-box, steps for gradient controllers).
        learning: run the learning check (the slow one).
        kwargs: hyper-parameters handed to the constructor.

    Raises:
        ConformanceError: the first breach, in one line naming the check.
        KeyError: ``cls`` is an unknown name.
    """
    cls = _resolve(cls)
    kwargs = dict(kwargs or {})
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("check_controller needs at least one seed")
    spaces = default_spaces() if spaces is None else [searchspace.get(s) if isinstance(s, str) else s for s in spaces]
    seed = seeds[0]
    _check_interface(cls, spaces, seed, kwargs)
    for space in spaces:
        _check_answers(_build("check_controller[derive]", cls, space, seed, kwargs), space, "before any feedback")
    if cls.kind == "black-box":
        for check in (_check_ask, _check_tell, _check_determinism, _check_state):
            for space in spaces:
                check(cls, space, seed, kwargs)
        if learning and cls is not RandomSearch:
            _check_black_box_learning(cls, seeds, BLACK_BOX_BUDGET if budget is None else budget, kwargs)
    else:
        _check_steps(cls, seed, kwargs)
        _check_gradient_determinism(cls, seed, kwargs)
        _check_gradient_state(cls, seed, kwargs)
        if learning:
            _check_gradient_learning(cls, seeds, GRADIENT_STEPS if budget is None else budget, kwargs)


# --- spaces ------------------------------------------------------------------------------------
def check_space(space: Any, *, samples: int = 20, seed: int = 0) -> None:
    """Check that a search space keeps the ``SearchSpace`` contract.

    Args:
        space: a ``SearchSpace`` or a preset name.
        samples: architectures drawn to check ``sample``.
        seed: seeds the generator ``sample`` draws from.

    Raises:
        ValueError: the space's structure is unusable: it has no decision, or a decision has
            fewer than 2 choices (the message names the decision).
        ConformanceError: a breach of behaviour, naming the check: ``check_space[sample]``
            (``sample`` gives non-members), ``check_space[validate]`` (``validate`` rejects a
            member, or accepts a wrong length, an out-of-range or negative choice, a
            non-integer or a 2-D array instead of raising ValueError),
            ``check_space[to_dict]`` (``to_dict()`` is not JSON-serialisable or does not survive
            a JSON round trip) or ``check_space[from_dict]`` (``from_dict(space.to_dict())``
            is not an equal space).
    """
    space = searchspace.get(space) if isinstance(space, str) else space
    if not isinstance(space, SearchSpace):
        _fail("check_space[type]", "a SearchSpace or a preset name", short(space))
    choices = tuple(space.choices)
    if not choices:
        raise ValueError(f"search space {space.name!r} has no decisions")
    for i, count in enumerate(choices):
        if count < 2:
            raise ValueError(f"search space {space.name!r}: {space.decision_name(i)} (decision {i}) has {count} "
                             f"choice(s); every decision needs at least 2")
    rng = np.random.default_rng(seed)
    for k in range(samples):
        with _succeeds("check_space[sample]", f"sample(rng) on space {space.name!r}"):
            arch = space.sample(rng)
        fault = _member_fault(space, arch)
        if fault is not None:
            _fail("check_space[sample]", f"sample #{k} to be an architecture of space {space.name!r}", fault)
    member = [int(v) for v in space.sample(np.random.default_rng(seed))]
    with _succeeds("check_space[validate]", f"validate({short(member, 40)}), a member"):
        checked = space.validate(member)
    if not np.array_equal(np.asarray(checked), np.asarray(member)):
        _fail("check_space[validate]", f"validate({short(member, 40)}) to return the architecture", short(checked))
    outside, negative = list(member), list(member)
    outside[-1] = choices[-1]
    negative[0] = -1
    refused = {
        "one decision short": member[:-1],
        "one decision too long": member + [0],
        f"arch[-1] = {choices[-1]}, out of range": outside,
        "a negative choice": negative,
        "non-integer choices": np.asarray(member, dtype=np.float64) + 0.5,
        "a 2-D array": np.asarray([member]),
    }
    for case, arch in refused.items():
        _refuses("check_space[validate]", f"validate() of {case} on space {space.name!r}",
                 lambda arch=arch: space.validate(arch))
    with _succeeds("check_space[to_dict]", f"to_dict() of space {space.name!r} to be JSON-serialisable"):
        spec = space.to_dict()
        text = json.dumps(spec)
    if json.loads(text) != spec:
        _fail("check_space[to_dict]", f"to_dict() of space {space.name!r} to survive a JSON round trip",
              f"{short(json.loads(text))} from {short(spec)}")
    with _succeeds("check_space[from_dict]", f"from_dict(to_dict()) of space {space.name!r}"):
        rebuilt = searchspace.from_dict(json.loads(text))
    if rebuilt != space or tuple(rebuilt.choices) != choices:
        _fail("check_space[from_dict]", f"from_dict(to_dict()) to equal space {space.name!r}",
              short(rebuilt.to_dict(), 120))


# --- datasets ----------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")


def check_dataset(dataset: Any, *, limit: int = 64) -> None:
    """Check that a dataset is usable by the envs: three well-formed, consistent splits.

    ``train``, ``val`` and ``test`` are each non-empty; ``x`` is a float tensor ``[N, C, L]``
    (signals) or ``[N, C, H, W]`` (images) of finite values, with the same feature shape
    ``x.shape[1:]`` in every split; ``y`` is an integer tensor ``[N]`` of labels in
    ``0..n_classes-1``, as long as ``x``; ``n_classes`` is an int >= 2.

    Args:
        dataset: a ``Dataset``; a name ``load_dataset`` knows (loaded with ``limit``); or a
            callable taking no arguments that returns a ``Dataset`` or a plug-in's
            ``(train, val, test)`` splits.
        limit: examples per split when loading by name.

    Raises:
        ConformanceError: the first breach, naming the check (``check_dataset[load]``,
            ``[splits]``, ``[x]``, ``[y]``, ``[lengths]``, ``[labels]``, ``[finite]``,
            ``[shapes]``) and the split.
    """
    if isinstance(dataset, str):
        with _succeeds("check_dataset[load]", f"load_dataset({dataset!r}, limit={limit})"):
            dataset = load_dataset(dataset, limit=limit)
    elif callable(dataset) and not isinstance(dataset, Dataset):
        with _succeeds("check_dataset[load]", "the loader to return a Dataset"):
            dataset = dataset()
        if isinstance(dataset, (tuple, list)):  # a plug-in's (train, val, test): as nasgen reads it
            with _succeeds("check_dataset[load]", "(train, val, test) splits nasgen can read"):
                dataset = dataset_from(dataset, "plug-in")
    if not isinstance(dataset, Dataset):
        _fail("check_dataset[load]", "a Dataset", short(dataset))
    name = dataset.name
    n_classes = dataset.n_classes
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        _fail("check_dataset[labels]", f"dataset {name!r} to have an int n_classes >= 2", short(n_classes))
    reference = None
    for split_name in SPLITS:
        split = getattr(dataset, split_name, None)
        x, y = getattr(split, "x", None), getattr(split, "y", None)
        where = f"{name}.{split_name}"
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            _fail("check_dataset[splits]", f"{where} to hold tensors x and y",
                  f"x: {type(x).__name__}, y: {type(y).__name__}")
        if len(y) == 0 or len(x) == 0:
            _fail("check_dataset[splits]", f"{where} to be non-empty", f"x {tuple(x.shape)}, y {tuple(y.shape)}")
        if not x.is_floating_point() or x.dim() not in (3, 4):
            _fail("check_dataset[x]", f"{where}.x to be a float tensor [N, C, L] or [N, C, H, W]",
                  f"{x.dtype} of shape {tuple(x.shape)}")
        if y.dtype == torch.bool or y.is_floating_point() or y.is_complex() or y.dim() != 1:
            _fail("check_dataset[y]", f"{where}.y to be an integer tensor [N]", f"{y.dtype} of shape {tuple(y.shape)}")
        if len(x) != len(y):
            _fail("check_dataset[lengths]", f"{where}.x and .y of equal length", f"{len(x)} and {len(y)}")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= n_classes:
            _fail("check_dataset[labels]", f"{where}.y in 0..{n_classes - 1}", f"labels in {low}..{high}")
        if not torch.isfinite(x).all():
            _fail("check_dataset[finite]", f"{where}.x to be finite",
                  f"{int((~torch.isfinite(x)).sum())} non-finite values")
        if reference is None:
            reference = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != reference:
            _fail("check_dataset[shapes]", f"{where}.x to have feature shape {reference} like {name}.train.x",
                  f"{tuple(x.shape[1:])} (x of shape {tuple(x.shape)})")


__all__ = ["ConformanceError", "check_controller", "check_dataset", "check_space", "default_spaces", "random_best"]
