"""The conformance kit (``nasgen.testing``): every built-in controller, space and dataset
passes it, and controllers broken on purpose fail it at the check that names their fault."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pytest
import torch

from nasgen import controllers, searchspace
from nasgen.controllers import Controller
from nasgen.controllers.gradient import DARTS, SNAS
from nasgen.controllers.random_search import RandomSearch
from nasgen.controllers.reinforce import Reinforce
from nasgen.searchspace import Dataset, SearchSpace, Split
from nasgen.testing import ConformanceError, check_controller, check_dataset, check_space

#: Built-ins whose learning check is too slow for the default run (it runs under -m slow).
SLOW_LEARNERS = {"rnn"}
#: Built-ins with a fault the kit finds (a strict xfail: fixing the fault fails the test, so
#: the entry must then go).
KNOWN_FAULTS: dict[str, str] = {}


def builtin(name: str):
    marks = []
    if name in KNOWN_FAULTS:
        marks.append(pytest.mark.xfail(strict=True, raises=ConformanceError, reason=KNOWN_FAULTS[name]))
    return pytest.param(name, marks=marks)


# --- built-ins pass ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [builtin(n) for n in controllers.names()])
def test_builtin_controller_conforms(name):
    check_controller(name, learning=name not in SLOW_LEARNERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_LEARNERS))
def test_builtin_controller_learns(name):
    check_controller(name)


@pytest.mark.parametrize("space", searchspace.names() + [SearchSpace("uneven", [2, 5, 3])], ids=str)
def test_space_conforms(space):
    check_space(space)


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_dataset_conforms(name):
    check_dataset(name, limit=32)


def test_dataset_loader_and_instance_are_accepted():
    check_dataset(lambda: searchspace.load_dataset("digits", limit=16))
    check_dataset(searchspace.load_dataset("digits", limit=16))


# --- controllers broken on purpose -------------------------------------------------------------
class InheritedTell(RandomSearch):
    """tell is Controller's own, which only raises NotImplementedError."""

    tell = Controller.tell


class NoSamples(RandomSearch):
    """asks for no architecture per step."""

    samples_per_step = 0


class OutOfRangeAsk(RandomSearch):
    """ask lets the last decision reach one past its last choice."""

    def ask(self, n: int = 1) -> list[np.ndarray]:
        archs = super().ask(n)
        for arch in archs:
            arch[-1] = self.space.choices[-1]
        return archs


class LaxAsk(RandomSearch):
    """ask takes any n int() accepts: ask(0) gives nothing, ask(1.5) one architecture."""

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return [self.space.sample(self.rng) for _ in range(max(int(n), 0))]


class SilentTell(RandomSearch):
    """tell pairs architectures with rewards like zip, dropping the unmatched ones."""

    def tell(self, archs: Sequence[Any], rewards: Sequence[float], infos: Optional[Sequence[dict]] = None):
        n = min(len(archs), len(rewards))
        return super().tell(list(archs)[:n], list(rewards)[:n], None if infos is None else list(infos)[:n])


class LearnsFromNaN(Reinforce):
    """tell feeds every reward into the update, NaN and inf included."""

    def tell(self, archs, rewards, infos=None):
        matrix, _, _, _ = self._check_tell(archs, rewards, infos)
        r = np.asarray(rewards, dtype=np.float64)
        self.optimizer.ascend((r[:, None, None] * self.policy.log_prob_grad(matrix)).mean(axis=0))
        return {}


class GlobalRNG(RandomSearch):
    """ask draws from numpy's global generator instead of the controller's own."""

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return [np.random.randint(0, self.space.choices).astype(np.int64) for _ in range(self._check_ask(n))]


class LambdaInState(RandomSearch):
    """state_dict holds a function."""

    def state_dict(self) -> dict:
        return {**super().state_dict(), "scorer": lambda arch: 0.0}


class Record:
    def __init__(self, reward: float):
        self.reward = reward


class ObjectInState(RandomSearch):
    """state_dict holds instances of a custom class, nested in a list."""

    def state_dict(self) -> dict:
        return {**super().state_dict(), "history": [Record(self.best_reward)]}


class ForgetsBaseline(Reinforce):
    """load_state_dict restores everything but the reward baseline."""

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.baseline = None


class Deaf(Reinforce):
    """tell learns from a constant reward, whatever it is told: well formed, never learns."""

    def tell(self, archs, rewards, infos=None):
        return super().tell(archs, [0.0] * len(rewards), infos)


class NonMemberDerive(Reinforce):
    """derive answers one past the last choice of every decision."""

    def derive(self) -> np.ndarray:
        return np.asarray(self.space.choices, dtype=np.int64)


class LogitsAsProbabilities(Reinforce):
    """op_probabilities returns the logits."""

    def op_probabilities(self) -> np.ndarray:
        return self.policy.theta.copy()


class FrozenAlpha(DARTS):
    """A gradient controller whose architecture parameters never move."""

    def _arch_step(self, grad) -> float:
        return 0.0


class NaNStepReward(DARTS):
    """step reports a NaN reward."""

    def step(self, env) -> dict:
        return {**super().step(env), "reward": float("nan")}


class ForgetsAdam(DARTS):
    """load_state_dict restores everything but alpha's Adam moments."""

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.arch_optimizer.state.clear()


class GlobalGumbel(SNAS):
    """Gumbel noise drawn from torch's global generator instead of the controller's own."""

    def _gumbel(self) -> torch.Tensor:
        exponential = torch.empty(self.mask.shape).exponential_()
        return -exponential.clamp_min(torch.finfo(exponential.dtype).tiny).log()


BROKEN = [
    # (controller, the check that must catch it, a fragment of the message)
    (InheritedTell, "interface", "inherits Controller.tell, which only raises NotImplementedError"),
    (NoSamples, "interface", "samples_per_step to be an int >= 1"),
    (OutOfRangeAsk, "ask", "outside 0.."),
    (LaxAsk, "ask", "ask(0)"),
    (SilentTell, "tell", "2 architectures with 1 reward"),
    (LearnsFromNaN, "tell", "non-finite rewards"),
    (GlobalRNG, "determinism", "asked"),
    (LambdaInState, "state_dict", "state['scorer'] is a function"),
    (ObjectInState, "state_dict", "state['history'][0] is a Record"),
    (ForgetsBaseline, "state_dict", "continue exactly"),
    (Deaf, "learning", "better than random's best"),
    (NonMemberDerive, "derive", "derive() before any feedback"),
    (LogitsAsProbabilities, "op_probabilities", "sums to 0"),
    (FrozenAlpha, "learning", "better than 90% of random architectures"),
    (NaNStepReward, "step", "to report a finite float 'reward'"),
    (ForgetsAdam, "state_dict", "continue exactly like the original on copies of one env"),
    (GlobalGumbel, "determinism", "differ after the step"),
]


@pytest.fixture
def global_generators():
    """Leave numpy's and torch's global generators as they were (GlobalRNG and GlobalGumbel
    draw from them)."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    np.random.set_state(state)


@pytest.mark.parametrize("cls, check, fragment", BROKEN, ids=[cls.__name__ for cls, _, _ in BROKEN])
def test_broken_controller_is_caught(cls, check, fragment, global_generators):
    with pytest.raises(ConformanceError) as caught:
        check_controller(cls, learning=check == "learning")
    message = str(caught.value)
    assert message.startswith(f"check_controller[{check}]: expected "), message
    assert caught.value.check == f"check_controller[{check}]"
    assert fragment in message and "\n" not in message, message


def test_conformance_error_is_an_assertion_error():
    assert issubclass(ConformanceError, AssertionError)


# --- spaces and datasets broken on purpose -------------------------------------------------------
def test_one_choice_decision_is_refused():
    with pytest.raises(ValueError, match=r"'one'.*decision 1 .*1 choice"):
        check_space(SearchSpace("one", [3, 1, 2]))


class LaxValidate(SearchSpace):
    def validate(self, arch):
        return np.asarray(arch)


class ArrayInDict(SearchSpace):
    def to_dict(self) -> dict:
        return {**super().to_dict(), "choices": np.asarray(self.choices)}


class OutOfRangeSample(SearchSpace):
    def sample(self, rng):
        return np.asarray(self.choices, dtype=np.int64)


class UnreadField(SearchSpace):
    """to_dict holds a field from_dict does not read back."""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "width": 3}


@pytest.mark.parametrize("space, check", [(LaxValidate("lax", [2, 3]), "validate"),
                                          (ArrayInDict("array", [2, 3]), "to_dict"),
                                          (OutOfRangeSample("far", [2, 3]), "sample"),
                                          (UnreadField("unread", [2, 3]), "from_dict"),
                                          ([2, 3], "type")],
                         ids=["validate", "to_dict", "sample", "from_dict", "type"])
def test_broken_space_is_caught(space, check):
    with pytest.raises(ConformanceError, match=rf"^check_space\[{check}\]: expected "):
        check_space(space)


@pytest.mark.parametrize("loader", [lambda: 1 / 0, lambda: "digits"], ids=["raises", "not-a-dataset"])
def test_broken_loader_is_caught(loader):
    with pytest.raises(ConformanceError, match=r"^check_dataset\[load\]: expected "):
        check_dataset(loader)


def splits(*shapes, labels=3) -> list[Split]:
    return [Split(torch.zeros(shape), torch.arange(shape[0]) % labels) for shape in shapes]


def test_mismatched_split_shapes_are_refused():
    dataset = Dataset("hand-made", *splits((4, 1, 8, 8), (4, 1, 7, 7), (4, 1, 8, 8)), n_classes=3)
    with pytest.raises(ConformanceError, match=r"^check_dataset\[shapes\]: expected hand-made\.val\.x .*"
                                               r"\(1, 8, 8\).*got \(1, 7, 7\)"):
        check_dataset(dataset)


@pytest.mark.parametrize("train, check", [
    (Split(torch.zeros(4, 1, 8), torch.tensor([0, 1, 2, 3])), "labels"),
    (Split(torch.zeros(4, 1, 8), torch.tensor([0, 1, 2])), "lengths"),
    (Split(torch.zeros(0, 1, 8), torch.zeros(0, dtype=torch.long)), "splits"),
    (Split(torch.zeros(4, 8), torch.tensor([0, 1, 2, 0])), "x"),
    (Split(torch.zeros(4, 1, 8), torch.zeros(4)), "y"),
    (Split(torch.full((4, 1, 8), float("nan")), torch.tensor([0, 1, 2, 0])), "finite"),
], ids=["labels", "lengths", "empty", "x-dims", "y-float", "nan"])
def test_broken_split_is_refused(train, check):
    dataset = Dataset("hand-made", train, *splits((4, 1, 8), (4, 1, 8)), n_classes=3)
    with pytest.raises(ConformanceError, match=rf"^check_dataset\[{check}\]: expected hand-made\.train"):
        check_dataset(dataset)
