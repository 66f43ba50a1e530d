"""The black-box controller interface, checked for every registered black-box controller.

Parametrised over ``controllers.names()`` (gradient controllers skipped), so a controller
added later is held to the same contract without touching this file. Controller-specific
checks (ASNG's constraint on theta, the GA population, credit's options) follow.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nasgen import controllers
from nasgen.searchspace import SearchSpace

BLACK_BOX = [n for n in controllers.names() if controllers.get(n).kind == "black-box"]

SPACES = {
    "uniform": lambda: SearchSpace("uniform", [4] * 5),
    "mixed": lambda: SearchSpace("mixed", [2, 5, 3]),
    "zero-op": lambda: SearchSpace("zero-op", [4, 3, 4], zero_op=True),
}


def target_of(space: SearchSpace) -> np.ndarray:
    return np.asarray(space.choices) - 1


def reward_of(space: SearchSpace, arch) -> float:
    """A smooth synthetic reward, maximal (0) at the last choice of every decision."""
    return -float(((np.asarray(arch) - target_of(space)) ** 2).sum())


def info_of(space: SearchSpace, arch) -> dict:
    """An env-like info; the per-decision credit is what ``credit`` needs."""
    credit = -((np.asarray(arch) - target_of(space)) ** 2).astype(float)
    return {"evaluations": 1, "nonfinite": False, "credit": credit}


def tell_round(ctrl, n: int) -> tuple[list, dict]:
    archs = ctrl.ask(n)
    metrics = ctrl.tell(archs, [reward_of(ctrl.space, a) for a in archs], [info_of(ctrl.space, a) for a in archs])
    return archs, metrics


def drive(ctrl, rounds: int = 6) -> None:
    """Odd batch sizes on purpose: they leave partial state (ASNG's pending samples) behind."""
    for k in range(rounds):
        tell_round(ctrl, 3 if k % 2 == 0 else 1)


def as_lists(archs) -> list[list[int]]:
    return [np.asarray(a).tolist() for a in archs]



@pytest.fixture(params=list(SPACES))
def space(request) -> SearchSpace:
    return SPACES[request.param]()


# --- the common contract -------------------------------------------------------------------------
@pytest.mark.parametrize("name", BLACK_BOX)
def test_make_ask_tell_derive(name, space):
    ctrl = controllers.make(name, space, seed=0)
    assert ctrl.name == name and ctrl.kind == "black-box"
    for _ in range(5):
        archs, metrics = tell_round(ctrl, 4)
        assert len(archs) == 4
        for arch in archs:
            assert np.array_equal(space.validate(arch), arch)
        for key in ("reward_mean", "reward_max", "nonfinite_rewards", "evaluations"):
            assert isinstance(metrics[key], float), key
        rewards = [reward_of(space, a) for a in archs]
        assert metrics["reward_mean"] == pytest.approx(np.mean(rewards))
        assert metrics["reward_max"] == pytest.approx(max(rewards))
        assert metrics["nonfinite_rewards"] == 0.0
        if space.zero_op:
            assert metrics["zero_op_share"] == pytest.approx(np.mean([np.mean(np.asarray(a) == 0) for a in archs]))
        if ctrl.op_probabilities() is not None:
            assert 0.0 <= metrics["entropy"] <= np.log(space.max_choices) + 1e-9
    assert ctrl.evaluations == 20
    assert np.array_equal(space.validate(ctrl.derive()), ctrl.derive())


@pytest.mark.parametrize("name", BLACK_BOX)
def test_op_probabilities_are_distributions_over_existing_choices(name, space):
    ctrl = controllers.make(name, space, seed=0)
    drive(ctrl)
    probs = ctrl.op_probabilities()
    if probs is None:
        pytest.skip(f"{name} has no op probabilities")
    assert probs.shape == (space.n_decisions, space.max_choices)
    assert np.all(probs[~space.choice_mask()] == 0)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)  # float32 allowed


@pytest.mark.parametrize("name", BLACK_BOX)
def test_fresh_controller_explores_every_choice(name):
    space = SPACES["mixed"]()
    ctrl = controllers.make(name, space, seed=0)
    archs = np.stack(ctrl.ask(60))
    for i, k in enumerate(space.choices):
        assert set(archs[:, i].tolist()) == set(range(k)), f"decision {i} never proposes some choice"


@pytest.mark.parametrize("name", BLACK_BOX)
def test_same_seed_same_run_other_seed_other_run(name):
    space = SPACES["uniform"]()
    a, b, c = (controllers.make(name, space, seed=s) for s in (3, 3, 4))
    for ctrl in (a, b, c):
        drive(ctrl)
    nxt = [as_lists(ctrl.ask(5)) for ctrl in (a, b, c)]
    assert nxt[0] == nxt[1]
    assert nxt[0] != nxt[2]


@pytest.mark.parametrize("name", BLACK_BOX)
def test_state_dict_round_trip_asks_the_same(name, space):
    original = controllers.make(name, space, seed=0)
    drive(original)
    state = original.state_dict()
    pickled = pickle.loads(pickle.dumps(state))
    # The original moves on after the snapshot: a state that aliased live arrays would follow it.
    expected_asks, expected_metrics = [], []
    for n in (2, 1, 3):
        archs, metrics = tell_round(original, n)
        expected_asks.append(as_lists(archs))
        expected_metrics.append(metrics)
    # ``state`` twice: a load that kept its tensors would have stepped them in the first pass.
    for source in (state, pickled, state):
        restored = controllers.make(name, space, seed=12345)
        restored.load_state_dict(source)
        for n, asked, metrics in zip((2, 1, 3), expected_asks, expected_metrics):
            archs, got = tell_round(restored, n)
            assert as_lists(archs) == asked
            assert got.keys() == metrics.keys()
            np.testing.assert_allclose([got[k] for k in metrics], list(metrics.values()), equal_nan=True)
        assert np.array_equal(restored.derive(), original.derive())
        assert restored.evaluations == original.evaluations


@pytest.mark.parametrize("name", BLACK_BOX)
def test_load_state_dict_refuses_other_controller_or_space(name):
    space = SPACES["uniform"]()
    ctrl = controllers.make(name, space, seed=0)
    other_name = next(n for n in BLACK_BOX if n != name)
    other = controllers.make(other_name, space, seed=0)
    with pytest.raises(ValueError, match=other_name):
        ctrl.load_state_dict(other.state_dict())
    elsewhere = controllers.make(name, SPACES["mixed"](), seed=0)
    with pytest.raises(ValueError, match="mixed"):
        ctrl.load_state_dict(elsewhere.state_dict())


@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_ask_refuses_bad_n(name, n):
    ctrl = controllers.make(name, SPACES["uniform"](), seed=0)
    with pytest.raises(ValueError, match="positive int"):
        ctrl.ask(n)


@pytest.mark.parametrize("name", BLACK_BOX)
def test_tell_refuses_bad_inputs(name):
    space = SPACES["mixed"]()
    ctrl = controllers.make(name, space, seed=0)
    archs = ctrl.ask(2)
    infos = [info_of(space, a) for a in archs]
    with pytest.raises(ValueError, match="2 architectures but 1 rewards"):
        ctrl.tell(archs, [0.0], infos)
    with pytest.raises(ValueError, match="2 architectures but 1 infos"):
        ctrl.tell(archs, [0.0, 0.0], infos[:1])
    with pytest.raises(ValueError, match="at least one"):
        ctrl.tell([], [], [])
    with pytest.raises(ValueError, match=r"arch\[1\] = 5 is out of range"):
        ctrl.tell([np.array([0, 5, 0])], [0.0], [info_of(space, [0, 4, 0])])
    with pytest.raises(ValueError, match="vector of 3 ints"):
        ctrl.tell([np.array([0, 1])], [0.0], [info_of(space, [0, 1, 0])])
    with pytest.raises(ValueError, match="integer"):
        ctrl.tell([np.array([0.5, 1.0, 0.0])], [0.0], [info_of(space, [0, 1, 0])])
    # Nothing above was learned from or counted.
    assert ctrl.evaluations == 0
    fresh = controllers.make(name, space, seed=0)
    fresh.ask(2)
    assert as_lists(ctrl.ask(4)) == as_lists(fresh.ask(4))


@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "flagged"])
def test_nonfinite_samples_are_skipped_and_counted(name, bad):
    space = SPACES["uniform"]()
    skipping = controllers.make(name, space, seed=0)
    clean = controllers.make(name, space, seed=0)
    drive(skipping), drive(clean)
    archs = skipping.ask(3)
    clean.ask(3)
    rewards = [reward_of(space, a) for a in archs]
    infos = [info_of(space, a) for a in archs]
    if bad == "flagged":  # the env floors a non-finite loss to a finite reward and flags it
        rewards[1], infos[1] = -100.0, {**infos[1], "nonfinite": True}
    else:
        rewards[1] = bad
    metrics = skipping.tell(archs, rewards, infos)
    assert metrics["nonfinite_rewards"] == 1.0
    assert np.isfinite(metrics["reward_mean"])
    keep = [0, 2]
    clean.tell([archs[k] for k in keep], [rewards[k] for k in keep], [infos[k] for k in keep])
    # Skipped, not folded in: the controller goes on exactly as if it had never seen it.
    assert as_lists(skipping.ask(4)) == as_lists(clean.ask(4))
    assert np.array_equal(skipping.derive(), clean.derive())


@pytest.mark.parametrize("name", BLACK_BOX)
def test_all_nonfinite_tell_changes_nothing(name):
    space = SPACES["uniform"]()
    told, untold = (controllers.make(name, space, seed=0) for _ in range(2))
    drive(told), drive(untold)
    archs = told.ask(2)
    untold.ask(2)
    metrics = told.tell(archs, [float("nan")] * 2, [info_of(space, a) for a in archs])
    assert metrics["nonfinite_rewards"] == 2.0 and np.isnan(metrics["reward_mean"])
    assert as_lists(told.ask(4)) == as_lists(untold.ask(4))


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as err:
        controllers.make("no-such-controller", SPACES["uniform"](), seed=0)
    for name in controllers.names():
        assert name in str(err.value)


@pytest.mark.parametrize("name", BLACK_BOX)
def test_bad_keyword_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match="not_a_hyperparameter"):
        controllers.make(name, SPACES["uniform"](), seed=0, not_a_hyperparameter=1)


@pytest.mark.parametrize("name", [n for n in ("reinforce", "asng", "credit", "ga") if n in BLACK_BOX])
def test_hyperparameters_are_documented_keywords(name):
    import inspect
    cls = controllers.get(name)
    doc = cls.__doc__ or ""
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "space", "seed")]
    assert params, f"{name} takes no hyper-parameters"
    for p in params:
        assert f"{p}:" in doc, f"{name}'s docstring does not document {p!r}"


# --- reinforce -------------------------------------------------------------------------------------
def test_reinforce_baseline_tracks_rewards_and_the_policy_moves_towards_better():
    space = SPACES["uniform"]()
    ctrl = controllers.make("reinforce", space, seed=0, baseline_decay=0.9)
    first = ctrl.ask(4)
    metrics = ctrl.tell(first, [reward_of(space, a) for a in first])
    assert metrics["baseline"] == pytest.approx(np.mean([reward_of(space, a) for a in first]))
    for _ in range(150):
        tell_round(ctrl, 4)
    assert np.array_equal(ctrl.derive(), target_of(space))


def test_reinforce_validates_hyperparameters():
    with pytest.raises(ValueError, match="baseline_decay"):
        controllers.make("reinforce", SPACES["uniform"](), baseline_decay=1.0)
    with pytest.raises(ValueError, match="lr"):
        controllers.make("reinforce", SPACES["uniform"](), lr=0.0)


# --- asng ------------------------------------------------------------------------------------------
def test_asng_utility_ranks_and_ties_give_zero():
    from nasgen.controllers.asng import ASNG
    np.testing.assert_array_equal(ASNG.utility(np.array([1.0, 2.0])), [-1.0, 1.0])
    np.testing.assert_array_equal(ASNG.utility(np.array([3.0, 3.0])), [0.0, 0.0])
    np.testing.assert_allclose(ASNG.utility(np.array([5.0, 1.0, 3.0, 2.0])), [1.0, -1.0, 0.0, 0.0])


def test_asng_keeps_theta_a_clipped_distribution_with_mixed_choice_counts():
    space = SPACES["mixed"]()
    ctrl = controllers.make("asng", space, seed=0)
    assert ctrl.samples_per_step == 2
    for _ in range(200):
        tell_round(ctrl, 2)
    theta, mask = ctrl.op_probabilities(), space.choice_mask()
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    # theta_min = 1 / (D (K_i - 1)) with D = 3 decisions that have a choice to make.
    theta_min = 1.0 / (3 * (np.asarray(space.choices) - 1))
    assert np.all(theta[mask] >= np.repeat(theta_min, space.choices) - 1e-12)
    assert np.array_equal(ctrl.derive(), target_of(space))
    assert 0 < ctrl.delta < np.inf


def test_asng_waits_for_lam_samples_and_skips_ties():
    space = SPACES["uniform"]()
    ctrl = controllers.make("asng", space, seed=0)
    theta = ctrl.op_probabilities()
    a, b = ctrl.ask(2)
    assert ctrl.tell([a], [1.0])["updated"] == 0.0           # one sample: nothing to rank yet
    np.testing.assert_array_equal(ctrl.op_probabilities(), theta)
    assert ctrl.tell([b], [1.0])["updated"] == 0.0           # a tie: zero utility, no update
    np.testing.assert_array_equal(ctrl.op_probabilities(), theta)
    a, b = ctrl.ask(2)
    assert ctrl.tell([a, b], [0.0, 1.0])["updated"] == 1.0 or np.array_equal(a, b)


def test_asng_validates_lam():
    with pytest.raises(ValueError, match="lam"):
        controllers.make("asng", SPACES["uniform"](), lam=1)


# --- ga --------------------------------------------------------------------------------------------
def test_ga_ages_out_the_oldest_and_mutates_one_decision():
    space = SPACES["uniform"]()
    ctrl = controllers.make("ga", space, seed=0, population_size=5, sample_size=2)
    initial = ctrl.ask(5)
    ctrl.tell(initial, [reward_of(space, a) for a in initial])
    assert len(ctrl.population) == 5
    for _ in range(20):
        child = ctrl.ask(1)[0]
        # Every child is a member of the population with exactly one decision changed.
        assert any(int((child != member).sum()) == 1 for member, _ in ctrl.population)
        oldest = ctrl.population[0][0].copy()
        ctrl.tell([child], [reward_of(space, child)])
        assert len(ctrl.population) == 5
        assert np.array_equal(ctrl.population[-1][0], child)
        assert not any(m is oldest for m, _ in ctrl.population)
    best = max(ctrl.population, key=lambda m: m[1])[1]
    assert ctrl.best_reward >= best
    assert reward_of(space, ctrl.derive()) == ctrl.best_reward


def test_ga_mutation_rate_changes_several_decisions():
    space = SearchSpace("wide", [3] * 40)
    ctrl = controllers.make("ga", space, seed=0, mutation_rate=0.5)
    parent = np.zeros(40, dtype=np.int64)
    changed = [int((ctrl.mutate(parent) != parent).sum()) for _ in range(50)]
    assert min(changed) >= 1 and np.mean(changed) == pytest.approx(20, abs=4)
    one = controllers.make("ga", space, seed=0)
    assert all(int((one.mutate(parent) != parent).sum()) == 1 for _ in range(50))


def test_ga_validates_hyperparameters():
    with pytest.raises(ValueError, match="sample_size"):
        controllers.make("ga", SPACES["uniform"](), population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="mutation_rate"):
        controllers.make("ga", SPACES["uniform"](), mutation_rate=0.0)


# --- credit ----------------------------------------------------------------------------------------
def test_credit_declares_and_demands_credit():
    space = SPACES["uniform"]()
    ctrl = controllers.make("credit", space, seed=0)
    assert controllers.get("credit").env_requirements == {"credit": "taylor"}
    archs = ctrl.ask(2)
    with pytest.raises(ValueError, match="credit='taylor'"):
        ctrl.tell(archs, [0.0, 0.0], [{"evaluations": 1}, {"evaluations": 1}])
    with pytest.raises(ValueError, match="credit='taylor'"):
        ctrl.tell(archs, [0.0, 0.0])
    with pytest.raises(ValueError, match="5 decisions"):
        ctrl.tell(archs[:1], [0.0], [{"credit": np.zeros(4)}])
    assert ctrl.evaluations == 0


def test_credit_gradient_is_per_decision():
    """One sample, credit only on decision 0: only that row of theta moves, towards a_0."""
    space = SPACES["uniform"]()
    ctrl = controllers.make("credit", space, seed=0)
    arch = np.array([2, 1, 0, 3, 2])
    credit = np.zeros(5)
    credit[0] = 0.5
    ctrl.tell([arch], [0.0], [{"credit": credit}])
    theta = ctrl.policy.theta
    assert np.all(theta[1:] == 0)
    assert theta[0, 2] > 0 and np.all(theta[0, [0, 1, 3]] < 0)


def _zero_op_run(**kwargs):
    space = SPACES["zero-op"]()
    ctrl = controllers.make("credit", space, seed=0, **kwargs)
    # Decision 0: op 1 has hurt (credit -1); then the zero op is sampled there (credit 0).
    ctrl.tell([np.array([1, 1, 1])], [0.0], [{"credit": np.array([-1.0, 0.0, 0.0])}])
    before = ctrl.policy.theta.copy()
    ctrl.tell([np.array([0, 1, 1])], [0.0], [{"credit": np.array([0.0, 0.2, 0.2])}])
    return before, ctrl.policy.theta.copy(), ctrl


def test_credit_zero_op_options():
    _, plain, _ = _zero_op_run(zero_op_credit="zero")
    _, pessimistic, ctrl = _zero_op_run(zero_op_credit="pessimistic")
    # Pessimistic: the sampled "off" inherits op 1's bad credit (-1) instead of 0, so it loses
    # probability where plain credit leaves it to Adam's momentum alone.
    assert ctrl.op_credit[0, 1] == -1.0
    assert pessimistic[0, 0] < plain[0, 0]
    np.testing.assert_array_equal(pessimistic[1:], plain[1:])
    before, after, _ = _zero_op_run(skip_zero=True, baseline_decay=0.9)
    assert np.all(after[0] == before[0])               # skipped: row 0 not touched, momentum included
    assert np.any(after[1:] != before[1:])
    with pytest.raises(ValueError, match="zero_op_credit"):
        controllers.make("credit", SPACES["zero-op"](), zero_op_credit="optimistic")


# Decision 0..2 of the "zero-op" space ([4, 3, 4] choices); op 0 is the zero op.
_HISTORY = [(np.array([1, 1, 1]), np.array([-1.0, 0.5, 0.3])),
            (np.array([2, 0, 1]), np.array([0.4, 0.0, -0.2])),
            (np.array([0, 1, 0]), np.array([0.0, -0.6, 0.0]))]


def test_credit_authors_zero_op_rule_matches_a_hand_computation():
    """The authors' rule on a hand-made history: the EMA (coefficient 0.05, first update sets
    it, unseen ops at 0, zero column included) and the value a sampled zero op gets."""
    authors = controllers.make("credit", SPACES["zero-op"](), seed=0)
    assert authors.zero_op_credit == "authors"
    for arch, credit in _HISTORY:
        authors.tell([arch], [0.0], [{"credit": credit}])
    expected = np.zeros((3, 4))
    expected[0, 1] = -1.0                          # step 1 sets the EMA to its own credit
    expected[0, 2] = 0.05 * 0.4                    # first seen at step 2: 0.95 * 0 + 0.05 * 0.4
    expected[1, 1] = 0.95 * 0.5 + 0.05 * -0.6
    expected[2, 1] = 0.95 * 0.3 + 0.05 * -0.2
    np.testing.assert_allclose(authors.op_credit, expected, rtol=0, atol=1e-15)
    # Step 3's zero op on decision 0 gets min(0, -1, 0.02, 0, 0) = -1; on decision 2
    # min(0, 0.275, 0 (unseen), 0 (unseen)) = 0; on decision 1 at step 2, min(0, 0.5, 0, 0) = 0.
    # So the authors' run equals plain credit fed exactly those values.
    hand = controllers.make("credit", SPACES["zero-op"](), seed=0, zero_op_credit="zero")
    for (arch, credit), value in zip(_HISTORY, ([-1.0, 0.5, 0.3], [0.4, 0.0, -0.2], [-1.0, -0.6, 0.0])):
        hand.tell([arch], [0.0], [{"credit": np.array(value)}])
    np.testing.assert_array_equal(authors.policy.theta, hand.policy.theta)
    plain = controllers.make("credit", SPACES["zero-op"](), seed=0, zero_op_credit="zero")
    for arch, credit in _HISTORY:
        plain.tell([arch], [0.0], [{"credit": credit}])
    assert authors.policy.theta[0, 0] < plain.policy.theta[0, 0]  # "off" punished where op 1 hurt


def test_credit_authors_zero_op_never_gets_positive_credit():
    """Every op helps on every edge (positive credit): a sampled zero op still gets 0 at most,
    so it loses probability against the ops sampled before it."""
    space = SPACES["zero-op"]()
    ctrl = controllers.make("credit", space, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        arch = ctrl.ask(1)[0]
        credit = np.where(arch == 0, 0.0, rng.uniform(0.1, 1.0, 3))
        ctrl.tell([arch], [0.0], [{"credit": credit}])
        assert np.all(ctrl._zero_op_value() <= 0.0)
        assert np.all(ctrl.op_credit[:, 0] == 0.0)  # the zero column: the EMA of the 0 it received
    probs = ctrl.op_probabilities()
    assert np.all(probs[:, 0] < 1.0 / np.asarray(space.choices))


def test_credit_theta_optimizer_options():
    """Cosine schedule over total_steps down to 0, then no more movement; clip bounds the
    gradient; state holds only tensors and plain containers."""
    space = SPACES["uniform"]()
    ctrl = controllers.make("credit", space, seed=0, lr=0.1, total_steps=4, grad_clip=1.0, weight_decay=3e-3)
    lrs = [tell_round(ctrl, 1)[1]["lr"] for _ in range(5)]
    np.testing.assert_allclose(lrs[:4], [0.1 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(4)])
    assert lrs[4] == 0.0
    theta = ctrl.policy.theta.copy()
    tell_round(ctrl, 1)
    np.testing.assert_array_equal(ctrl.policy.theta, theta)
    constant = controllers.make("credit", space, seed=0, lr=0.1, total_steps=4, lr_schedule="constant")
    assert [tell_round(constant, 1)[1]["lr"] for _ in range(5)] == [0.1] * 5

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (torch.Tensor, str, int, float, bool))

    assert plain(ctrl.state_dict())


def test_credit_state_round_trip_through_weights_only_load(tmp_path):
    """Mid-schedule (cosine, clip, decay, the authors' zero-op EMA) a state saved with
    torch.save and loaded with weights_only=True continues exactly as the original."""
    space = SPACES["zero-op"]()
    kwargs = dict(lr=0.05, total_steps=12, grad_clip=1.0, weight_decay=3e-3, baseline_decay=0.9)
    original = controllers.make("credit", space, seed=0, **kwargs)
    drive(original)
    torch.save(original.state_dict(), tmp_path / "state.pt")
    expected = [tell_round(original, 1) for _ in range(5)]
    restored = controllers.make("credit", space, seed=7, **kwargs)
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for archs, metrics in expected:
        got_archs, got = tell_round(restored, 1)
        assert as_lists(got_archs) == as_lists(archs) and got == metrics
    np.testing.assert_array_equal(restored.policy.theta, original.policy.theta)
    np.testing.assert_array_equal(restored.op_credit, original.op_credit)
    with pytest.raises(ValueError, match="lr schedule"):
        controllers.make("credit", space, seed=0, lr=0.05).load_state_dict(original.state_dict())
    with pytest.raises(ValueError, match="lr_schedule"):
        controllers.make("credit", space, lr_schedule="linear")
    with pytest.raises(ValueError, match="grad_clip"):
        controllers.make("credit", space, grad_clip=0.0)


def test_credit_baseline_is_reported_and_learns_the_target():
    space = SPACES["mixed"]()
    ctrl = controllers.make("credit", space, seed=0, baseline_decay=0.9, lr=0.05)
    for _ in range(60):
        _, metrics = tell_round(ctrl, 2)
    assert "baseline" in metrics and "credit_mean" in metrics
    assert np.array_equal(ctrl.derive(), target_of(space))


def test_credit_passes_on_the_hybrid_health_signal():
    space = SPACES["uniform"]()
    ctrl = controllers.make("credit", space, seed=0)
    arch = ctrl.ask(1)[0]
    metrics = ctrl.tell([arch], [0.0], [{**info_of(space, arch), "credit_corr": 0.75}])
    assert metrics["credit_corr"] == 0.75


def test_credit_skips_nonfinite_credit():
    space = SPACES["uniform"]()
    ctrl = controllers.make("credit", space, seed=0)
    arch = ctrl.ask(1)[0]
    credit = np.zeros(5)
    credit[2] = np.nan
    metrics = ctrl.tell([arch], [0.0], [{"credit": credit}])
    assert metrics["nonfinite_rewards"] == 1.0
    assert np.all(ctrl.policy.theta == 0)


def test_credit_derives_as_the_space_does():
    """Plain argmax per edge on nb201 (the zero op may win an edge, as the authors derive); the
    DARTS two-inputs rule only on DARTS cell spaces."""
    from nasgen.searchspace import get

    nb201 = get("nb201")
    ctrl = controllers.make("credit", nb201, seed=0)
    ctrl.policy.theta[:, 0] = 1.0          # the zero op strongest everywhere...
    ctrl.policy.theta[0, 2] = 2.0          # ...but on edge 0
    assert ctrl.derive().tolist() == [2] + [0] * (nb201.n_decisions - 1)
    small = get("small")
    ctrl = controllers.make("credit", small, seed=0)
    ctrl.policy.theta[:, 0] = 1.0
    arch = ctrl.derive()
    assert np.array_equal(arch, small.derive(ctrl.op_probabilities())) and np.count_nonzero(arch) == 12
