"""The gymnasium environments: API conformance for every registered id, then the behaviour
of each env (credit, non-finite floor, warm-up, the sequential view, NAS-Bench-Graph)."""

from __future__ import annotations

import copy
import math
import re
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from nasgen.envs import ENV_SPECS, ArchitectureEnv, env_ids
from nasgen.envs.oneshot_seq import SequentialArchitectureEnv
from nasgen.searchspace import SearchSpace, Supernet

TINY_ONESHOT = dict(warmup_epochs=0, C=4, n_cells=3, limit=128, batch_size=32, space="small", dataset="digits")
#: Small keyword arguments per id; ids not listed here are made with their defaults.
TINY_KWARGS: dict[str, dict] = {
    "nasgen/OneShotNAS-v0": TINY_ONESHOT,
    "nasgen/OneShotNASSeq-v0": TINY_ONESHOT,
    "nasgen/TeacherArch-v0": dict(n_edges=6, n_ops=5, batch_size=32),
    "nasgen/NASBenchGraph-v0": dict(dataset="cora"),
}
#: Ids whose tiny kwargs come from a session fixture (the fixture's value is the kwargs' ``table``).
FIXTURE_TABLE = {"nasgen/Tabular-v0": "tiny_table"}
#: Ids that need an optional package (skipped cleanly when it is absent).
OPTIONAL_PACKAGE = {"nasgen/NASBenchGraph-v0": "nas_bench_graph"}
MAX_EPISODE_STEPS = 1000



@pytest.fixture(autouse=True)
def _tables_for_table_envs(request):
    """Build the tiny table only for the tests that make a table env."""
    for env_id, fixture in FIXTURE_TABLE.items():
        if env_id in request.node.name:
            TINY_KWARGS[env_id] = {"table": str(request.getfixturevalue(fixture))}


def make(env_id: str, **overrides) -> gym.Env:
    if env_id in OPTIONAL_PACKAGE:
        pytest.importorskip(OPTIONAL_PACKAGE[env_id])
    return gym.make(env_id, **{**TINY_KWARGS.get(env_id, {}), **overrides})


def action_mask(obs):
    if isinstance(obs, dict):
        for key in ("mask", "action_mask"):
            if key in obs:
                return np.asarray(obs[key], dtype=np.int8)
    return None


def valid_action(env: gym.Env, obs, rng: np.random.Generator):
    """A random valid action: masked when the observation carries a mask, from the env's
    search space when it has one (it knows which architectures exist)."""
    mask = action_mask(obs)
    if mask is not None:
        return env.action_space.sample(mask=mask)
    space = getattr(env.unwrapped, "space", None)
    if isinstance(env.action_space, gym.spaces.MultiDiscrete) and isinstance(space, SearchSpace):
        return space.sample(rng)
    return env.action_space.sample()


def run_episodes(env: gym.Env, seed: int, episodes: int) -> list[float]:
    """Rewards of every step of ``episodes`` episodes with seeded random valid actions."""
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rewards = []
    for _ in range(episodes):
        for _ in range(MAX_EPISODE_STEPS):
            obs, reward, terminated, truncated, _ = env.step(valid_action(env, obs, rng))
            rewards.append(reward)
            if terminated or truncated:
                obs, _ = env.reset()
                break
        else:
            pytest.fail(f"no episode end within {MAX_EPISODE_STEPS} steps")
    return rewards


def finish_episode(env: gym.Env, obs, rng: np.random.Generator) -> tuple[float, dict]:
    """Step with valid actions until the episode ends; returns the last reward and info."""
    for _ in range(MAX_EPISODE_STEPS):
        obs, reward, terminated, truncated, info = env.step(valid_action(env, obs, rng))
        if terminated or truncated:
            return reward, info
    pytest.fail(f"no episode end within {MAX_EPISODE_STEPS} steps")


def play(env: gym.Env, action):
    """One more one-step episode: an unseeded reset (the search state stays), then the step."""
    env.reset()
    return env.step(action)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- registration --------------------------------------------------------------------------------
def test_registration_rows():
    ids = env_ids()
    for wanted in ("nasgen/OneShotNAS-v0", "nasgen/TeacherArch-v0", "nasgen/OneShotNASSeq-v0",
                   "nasgen/NASBenchGraph-v0", "nasgen/Tabular-v0"):
        assert wanted in ids
    assert len(ids) == len(set(ids))
    for spec in ENV_SPECS:
        assert spec["id"] in gym.registry


# --- every registered id ---------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", env_ids())
def test_check_env_passes(env_id):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    gym_warnings = [str(w.message) for w in caught if "WARN" in str(w.message)]
    assert not gym_warnings, gym_warnings


@pytest.mark.parametrize("credit", ["taylor", "exact", "hybrid"])
def test_check_env_passes_with_every_credit_mode(credit):
    # The hybrid health signal is undefined on the first steps; a NaN in info once made
    # check_env's determinism check fail (NaN != NaN).
    check_env(make("nasgen/OneShotNAS-v0", credit=credit).unwrapped)


@pytest.mark.parametrize("env_id", env_ids())
def test_sync_vector_env(env_id):
    n_envs = 2
    venv = gym.vector.SyncVectorEnv([lambda: make(env_id) for _ in range(n_envs)])
    rng = np.random.default_rng(0)
    obs, _ = venv.reset(seed=0)
    episodes = np.zeros(n_envs, dtype=int)
    for _ in range(MAX_EPISODE_STEPS):
        actions = []
        for i, sub in enumerate(venv.envs):
            sub_obs = {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]
            actions.append(valid_action(sub, sub_obs, rng))
        obs, rewards, terminated, truncated, _ = venv.step(np.array(actions))
        assert rewards.shape == (n_envs,) and np.all(np.isfinite(rewards))
        assert obs in venv.observation_space
        episodes += terminated | truncated
        if episodes.min() >= 2:  # both sub-envs went through an autoreset
            break
    else:
        pytest.fail("the vectorised episodes did not end")
    venv.close()


@pytest.mark.parametrize("env_id", env_ids())
def test_same_seed_same_rewards(env_id):
    first = run_episodes(make(env_id), seed=3, episodes=3)
    second = run_episodes(make(env_id), seed=3, episodes=3)
    assert first == second
    assert all(math.isfinite(r) for r in first)


@pytest.mark.parametrize("env_id", env_ids())
def test_step_after_the_episode_ended_raises_until_reset(env_id):
    env = make(env_id)
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    first = valid_action(env, obs, rng)
    obs, _, terminated, truncated, _ = env.step(first)
    if not (terminated or truncated):
        finish_episode(env, obs, rng)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(first)
    obs, _ = env.reset()
    reward, _ = finish_episode(env, obs, rng)  # a reset starts the next episode as usual
    assert math.isfinite(reward)


@pytest.mark.parametrize("env_id", env_ids())
def test_a_failed_first_reset_through_gym_make_leaves_the_env_usable(env_id):
    env = make(env_id)
    inner = env.unwrapped

    def failing_reset(**kwargs):
        del inner.reset  # only the first reset fails
        raise RuntimeError("interrupted")

    inner.reset = failing_reset  # the wrappers call env.unwrapped's reset
    with pytest.raises(RuntimeError, match="interrupted"):
        env.reset(seed=3)
    rewards = run_episodes(env, seed=3, episodes=3)  # every later step works...
    assert rewards == run_episodes(make(env_id), seed=3, episodes=3)  # ...as in a fresh env


def test_an_interrupted_warm_up_is_redone_by_the_next_reset():
    env = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0)
    inner = env.unwrapped

    def interrupted():
        del inner._warm_up
        raise KeyboardInterrupt

    inner._warm_up = interrupted
    with pytest.raises(KeyboardInterrupt):
        env.reset(seed=2)
    assert run_episodes(env, seed=2, episodes=2) == run_episodes(make("nasgen/OneShotNAS-v0", warmup_epochs=1.0),
                                                                seed=2, episodes=2)


def test_the_sequential_view_takes_the_inner_env_keywords():
    from nasgen.envs import env_parameters

    assert env_parameters("nasgen/OneShotNASSeq-v0") == env_parameters("nasgen/OneShotNAS-v0")
    assert "dataset" in env_parameters("nasgen/OneShotNASSeq-v0")


def bad_actions(env: gym.Env):
    """``(label, action, range upper bound or None)``: actions every env must refuse."""
    space = env.action_space
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec).ravel()
        n = nvec.size
        ok = np.zeros(n, dtype=np.int64)
        high = ok.copy()
        high[-1] = nvec[-1]
        negative = ok.copy()
        negative[0] = -1
        nan = ok.astype(float)
        nan[0] = np.nan
        return [("too long", np.zeros(n + 1, dtype=np.int64), None),
                ("too short", np.zeros(max(n - 1, 0), dtype=np.int64), None),
                ("out of range", high, int(nvec[-1]) - 1),
                ("negative", negative, int(nvec[0]) - 1),
                ("nan", nan, None), ("fraction", ok + 0.5, None),
                ("strings", np.array(["a"] * n), None), ("none", None, None)]
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return [("out of range", int(space.start) + n, int(space.start) + n - 1),
                ("negative", int(space.start) - 1, None),
                ("nan", float("nan"), None), ("fraction", 0.5, None), ("string", "a", None),
                ("none", None, None), ("wrong length", np.zeros(2, dtype=np.int64), None)]
    pytest.skip(f"no bad-action catalogue for {type(space).__name__}")


@pytest.mark.parametrize("env_id", env_ids())
def test_bad_action_raises_and_env_keeps_working(env_id):
    env = make(env_id)
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for label, action, high in bad_actions(env):
        with pytest.raises(ValueError) as error:
            env.step(action)
        if high is not None:
            assert re.search(rf"\b{high}\b", str(error.value)), (label, str(error.value))
        reward, _ = finish_episode(env, obs, rng)  # still works, from where it was
        assert math.isfinite(reward), label
        obs, _ = env.reset()


# --- error messages ---------------------------------------------------------------------------------
def test_bad_action_message_names_decision_and_range():
    env = make("nasgen/OneShotNAS-v0")
    env.reset(seed=0)
    space = env.unwrapped.space
    arch = np.zeros(space.n_decisions, dtype=np.int64)
    arch[3] = space.choices[3]
    with pytest.raises(ValueError, match=re.escape(f"{space.decision_name(3)}: allowed 0..{space.choices[3] - 1}")):
        env.step(arch)
    arch[3] = 0
    arch[5] = np.iinfo(np.int64).max
    with pytest.raises(ValueError, match=re.escape(space.decision_name(5))):
        env.step(arch)

    seq = make("nasgen/OneShotNASSeq-v0")
    seq.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(f"{space.decision_name(0)} (step 1 of {space.n_decisions}): "
                                                   f"allowed 0..{space.choices[0] - 1}")):
        seq.step(space.max_choices)
    seq.step(1)
    with pytest.raises(ValueError, match=re.escape(space.decision_name(1))):
        seq.step(np.float64(1.0))
    assert seq.unwrapped.position == 1


# --- non-finite losses ----------------------------------------------------------------------------
def poison_next_val_batch(monkeypatch, env: ArchitectureEnv) -> None:
    """Make the next validation batches hold one NaN image (batch statistics spread it)."""
    original = env.next_val_batch

    def poisoned():
        x, y = original()
        x = x.clone()
        x[0] = float("nan")
        return x, y
    monkeypatch.setattr(env, "next_val_batch", poisoned)


@pytest.mark.parametrize("credit", [None, "taylor", "exact", "hybrid"])
def test_nonfinite_loss_gives_floor_and_leaves_weights(monkeypatch, credit):
    env = make("nasgen/OneShotNAS-v0", credit=credit, nonfinite_reward=-7.5)
    u = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(u.space.sample(rng))  # a normal step first: momentum buffers exist
    weights, optimizer = snapshot(u.model), copy.deepcopy(u.weight_optimizer.state_dict())
    drawn = u.train_stream.batches_drawn

    poison_next_val_batch(monkeypatch, u)
    arch = u.space.sample(rng)
    obs, reward, terminated, _, info = play(env, arch)
    assert reward == -7.5 and info["nonfinite"] is True and terminated
    assert obs in env.observation_space
    assert math.isnan(info["loss"])
    assert same_tensors(snapshot(u.model), weights)
    assert u.train_stream.batches_drawn == drawn  # no training batch was even drawn
    after = u.weight_optimizer.state_dict()
    assert after["state"].keys() == optimizer["state"].keys()
    assert all(torch.equal(after["state"][k]["momentum_buffer"], optimizer["state"][k]["momentum_buffer"])
               for k in after["state"])
    if credit is not None:
        assert np.array_equal(info["credit"], np.zeros(u.space.n_decisions))
    if credit == "hybrid":
        assert all(math.isfinite(t) and math.isfinite(a) for t, a in u._credit_pairs)

    monkeypatch.undo()
    _, reward, _, _, info = play(env, arch)
    assert info["nonfinite"] is False and math.isfinite(reward) and reward <= 0
    assert not same_tensors(snapshot(u.model), weights)  # training resumed


def test_nonfinite_loss_on_teacher_and_sequential_view(monkeypatch):
    teacher = make("nasgen/TeacherArch-v0", credit="taylor", nonfinite_reward=-3.0)
    teacher.reset(seed=0)
    frozen = snapshot(teacher.unwrapped.model)
    poison_next_val_batch(monkeypatch, teacher.unwrapped)
    _, reward, _, _, info = teacher.step(teacher.unwrapped.space.sample(np.random.default_rng(0)))
    assert reward == -3.0 and info["nonfinite"] is True and not info["credit"].any()
    assert same_tensors(snapshot(teacher.unwrapped.model), frozen)

    seq = make("nasgen/OneShotNASSeq-v0", nonfinite_reward=-5.0)
    obs, _ = seq.reset(seed=0)
    inner = seq.unwrapped.inner
    weights = snapshot(inner.model)
    poison_next_val_batch(monkeypatch, inner)
    reward, info = finish_episode(seq, obs, np.random.default_rng(0))
    assert reward == -5.0 and info["nonfinite"] is True
    assert same_tensors(snapshot(inner.model), weights)


# --- credit ------------------------------------------------------------------------------------
def credits(mode: str, archs: list[np.ndarray], **kwargs) -> np.ndarray:
    env = make("nasgen/TeacherArch-v0", credit=mode, **kwargs)
    env.reset(seed=0)
    return np.stack([play(env, arch)[4]["credit"] for arch in archs])


def test_taylor_credit_correlates_with_exact_on_teacher():
    kwargs = dict(n_edges=10, n_ops=10, batch_size=100)  # the paper's toy
    rng = np.random.default_rng(1)
    archs = [rng.integers(0, 10, 10) for _ in range(30)]
    # Same seed and architectures: both envs draw the same reward batches.
    taylor, exact = credits("taylor", archs, **kwargs), credits("exact", archs, **kwargs)
    corr = np.corrcoef(taylor.ravel(), exact.ravel())[0, 1]
    assert corr > 0.9, corr
    assert not np.allclose(taylor, exact)  # first order only: they are not the same numbers


def test_hybrid_credit_is_unbiased_on_teacher(monkeypatch):
    kwargs = dict(n_edges=10, n_ops=10, batch_size=100)
    hybrid = make("nasgen/TeacherArch-v0", credit="hybrid", **kwargs).unwrapped
    exact = make("nasgen/TeacherArch-v0", credit="exact", **kwargs).unwrapped
    taylor = make("nasgen/TeacherArch-v0", credit="taylor", **kwargs).unwrapped
    for env in (hybrid, exact, taylor):
        env.reset(seed=0)  # same seed: same frozen model and teacher
    batch = hybrid.next_val_batch()
    for env in (hybrid, exact, taylor):
        monkeypatch.setattr(env, "_reward_batch", lambda: batch)  # only K stays random
    arch = np.random.default_rng(2).integers(0, 10, 10)
    target = exact.step(arch)[4]["credit"]
    first_order = taylor.step(arch)[4]["credit"]
    draws = np.stack([play(hybrid, arch)[4]["credit"] for _ in range(800)])
    mean, standard_error = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - target) <= 4 * standard_error + 1e-9), (mean, target, standard_error)
    # ...and the correction matters: the Taylor credit alone is off by more than that.
    assert np.abs(mean - target).sum() < np.abs(first_order - target).sum()
    assert math.isfinite(hybrid.credit_correlation())


@pytest.mark.parametrize("mode,subset", [("taylor", 1), ("exact", 1), ("hybrid", 1), ("hybrid", 3)])
def test_evaluation_counts(mode, subset):
    env = make("nasgen/OneShotNAS-v0", credit=mode, credit_subset=subset, train_weights=False)
    u = env.unwrapped
    env.reset(seed=0)
    arch = u.space.sample(np.random.default_rng(0))
    arch[::3] = 0  # some edges off
    active = int(np.count_nonzero(arch))
    expected = {"taylor": 1, "exact": 1 + active, "hybrid": 1 + min(subset, active)}[mode]
    info = env.step(arch)[4]
    assert info["evaluations"] == expected
    assert np.all(info["credit"][arch == 0] == 0)
    info = play(env, np.zeros_like(arch))[4]  # nothing active: nothing to ablate
    assert info["evaluations"] == 1 and not info["credit"].any()
    assert u.evaluations == expected + 1

    teacher = make("nasgen/TeacherArch-v0", credit=mode, credit_subset=subset)
    teacher.reset(seed=0)
    edges = teacher.unwrapped.n_edges  # the toy has no zero op: every edge is active
    info = teacher.step(teacher.unwrapped.space.sample(np.random.default_rng(0)))[4]
    assert info["evaluations"] == {"taylor": 1, "exact": 1 + edges, "hybrid": 1 + subset}[mode]


# --- OneShotNAS --------------------------------------------------------------------------------
def test_oneshot_info_keys():
    env = make("nasgen/OneShotNAS-v0", credit="taylor")
    u = env.unwrapped
    env.reset(seed=0)
    arch = u.space.sample(np.random.default_rng(0))
    obs, reward, terminated, truncated, info = env.step(arch)
    assert terminated is True and truncated is False
    for key in ("val_accuracy", "val_loss", "params", "credit", "loss", "evaluations", "nonfinite", "train_loss"):
        assert key in info, key
    assert 0.0 <= info["val_accuracy"] <= 1.0
    assert info["val_loss"] == pytest.approx(-reward)
    assert info["params"] == u.model.parameter_count(arch) > 0
    assert info["credit"].shape == (u.space.n_decisions,) and np.all(np.isfinite(info["credit"]))
    assert obs[1] == pytest.approx(reward)

    plain = make("nasgen/OneShotNAS-v0", train_weights=False)
    plain.reset(seed=0)
    weights = snapshot(plain.unwrapped.model)
    info = plain.step(arch)[4]
    assert "credit" not in info and "train_loss" not in info
    assert same_tensors(snapshot(plain.unwrapped.model), weights)


def test_warmup_trains_the_shared_weights():
    cold = make("nasgen/OneShotNAS-v0", warmup_epochs=0).unwrapped
    warm = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0).unwrapped
    again = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0).unwrapped
    obs_cold, _ = cold.reset(seed=0)
    obs_warm, _ = warm.reset(seed=0)
    again.reset(seed=0)
    assert warm.train_stream.batches_drawn == warm.train_stream.batches_per_epoch == 128 // 32
    assert warm.weight_epochs == pytest.approx(1.0) and obs_warm[0] == pytest.approx(1.0)
    assert cold.train_stream.batches_drawn == 0 and obs_cold[0] == 0.0
    assert not same_tensors(snapshot(cold.model), snapshot(warm.model))
    assert same_tensors(snapshot(warm.model), snapshot(again.model))  # the warm-up is seeded


# --- credit from the training pass (credit_batch="train") and the weight-lr schedule -------------
@pytest.mark.parametrize("mode", ["taylor", "hybrid"])
def test_train_batch_credit_is_the_taylor_credit_of_the_training_batch(mode):
    from nasgen.searchspace import taylor_credit

    env = make("nasgen/OneShotNAS-v0", credit=mode, credit_batch="train")
    u = env.unwrapped
    env.reset(seed=0)
    arch = u.space.sample(np.random.default_rng(1))
    arch[::4] = 0
    # The same training batch, and a copy of the weights before the step.
    position = u.train_stream.state_dict()
    x, y = u.train_stream.next()
    u.train_stream.load_state_dict(position)
    model = copy.deepcopy(u.model).train()
    separate = taylor_credit(lambda g: u.loss_fn(model(x, arch, gates=g), y), arch != 0)
    reference = torch.optim.SGD(model.parameters(), **u.weight_hparams)
    reference.zero_grad()
    u.loss_fn(model(x, arch), y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), u.grad_clip)
    reference.step()

    _, reward, _, _, info = env.step(arch)
    assert reward == pytest.approx(-separate.loss, abs=1e-6)
    assert info["train_loss"] == pytest.approx(separate.loss, abs=1e-6) and "val_loss" not in info
    if mode == "taylor":
        np.testing.assert_allclose(info["credit"], separate.credit, rtol=1e-5, atol=1e-7)
    else:  # hybrid: the Taylor part is the same; one checked edge is corrected
        changed = np.flatnonzero(~np.isclose(info["credit"], separate.credit, rtol=1e-5, atol=1e-7))
        assert len(changed) <= 1 and info["evaluations"] == 2
    assert u.train_stream.batches_drawn == 1 and u.val_stream.batches_drawn == 0
    for mine, theirs in zip(u.model.parameters(), model.parameters()):  # the step the batch gives
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_train_batch_credit_halves_the_forward_passes():
    passes = {}
    for batch in ("val", "train"):
        env = make("nasgen/OneShotNAS-v0", credit="taylor", credit_batch=batch)
        u = env.unwrapped
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        calls = []
        hook = u.model.register_forward_hook(lambda *_: calls.append(1))
        infos = [play(env, u.space.sample(rng))[4] for _ in range(3)]
        hook.remove()
        assert sum(i["forward_passes"] for i in infos) == len(calls)  # the counter counts them all
        passes[batch] = len(calls)
    assert passes == {"val": 6, "train": 3}


def test_cosine_weight_lr_over_warmup_and_search():
    env = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0, weight_lr_schedule="cosine", schedule_epochs=3.0,
               weight_lr=0.1, weight_lr_min=0.01)
    u = env.unwrapped
    env.reset(seed=0)
    per_epoch = u.train_batches_per_epoch
    assert per_epoch == u.train_stream.batches_per_epoch == 4

    def expected(steps):
        return 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * min(steps / per_epoch / 3.0, 1.0)))

    lrs = [u.weight_optimizer.param_groups[0]["lr"]]
    assert lrs[0] == pytest.approx(expected(per_epoch))  # the warm-up moved it already
    for _ in range(3 * per_epoch):
        play(env, u.space.sample(np.random.default_rng(0)))
        lrs.append(u.weight_optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([expected(per_epoch + k) for k in range(len(lrs))])
    assert lrs[-1] == pytest.approx(0.01)
    constant = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0, weight_lr=0.1).unwrapped
    constant.reset(seed=0)
    assert constant.weight_optimizer.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("kwargs,match", [
    (dict(weight_lr_schedule="step"), "weight_lr_schedule"),
    (dict(weight_lr_schedule="cosine"), "schedule_epochs"),
    (dict(credit_batch="test"), "credit_batch"),
])
def test_bad_schedule_and_credit_batch_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make("nasgen/OneShotNAS-v0", **kwargs)


def test_seeding_through_make_kwarg():
    for env_id in ("nasgen/OneShotNAS-v0", "nasgen/TeacherArch-v0"):
        arch = make(env_id).unwrapped.space.sample(np.random.default_rng(0))
        by_kwarg = make(env_id, seed=5)
        by_kwarg.reset()
        by_reset = make(env_id)
        by_reset.reset(seed=5)
        other = make(env_id)
        other.reset(seed=6)
        rewards = [e.step(arch)[1] for e in (by_kwarg, by_reset, other)]
        assert rewards[0] == rewards[1] != rewards[2]


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree.clone()]
    if isinstance(tree, dict):
        return [t for key in sorted(tree, key=str) for t in _tensors(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in _tensors(item)]
    return []


def test_a_loaded_state_is_never_stepped_in_place():
    """One warm-up state loaded into two searches: the second starts where the first did
    (torch.optim keeps a loaded momentum buffer and steps it in place unless it is copied)."""
    warm = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0)
    warm.reset(seed=0)
    state = warm.unwrapped.state_dict()
    before = _tensors(state)
    assert any(t.numel() > 1 for t in _tensors(state["weight_optimizer"]))  # the momentum buffers

    def search_from(state) -> list[float]:
        env = make("nasgen/OneShotNAS-v0", warmup_epochs=1.0)
        env.reset(seed=1, options={"warmup": False})
        env.unwrapped.load_state_dict(state)
        rng = np.random.default_rng(0)
        rewards = []
        for _ in range(3):
            rewards.append(env.step(env.unwrapped.space.sample(rng))[1])
            env.reset()
        return rewards

    first = search_from(state)
    assert all(torch.equal(a, b) for a, b in zip(before, _tensors(state)))
    assert search_from(state) == first


def test_unwrapped_attributes_for_gradient_controllers():
    env = make("nasgen/OneShotNAS-v0")
    u = env.unwrapped
    env.reset(seed=0)
    assert isinstance(u.model, Supernet) and isinstance(u.weight_optimizer, torch.optim.Optimizer)
    x, y = u.next_train_batch()
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    xv, yv = u.next_val_batch()
    assert xv.shape == x.shape
    # A DARTS-style architecture gradient through the relaxed supernet.
    alpha = torch.zeros(u.space.n_decisions, len(u.space.op_names), requires_grad=True)
    loss = u.loss_fn(u.model(xv, weights=alpha.softmax(-1)), yv)
    loss.backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0
    before = snapshot(u.model)
    assert math.isfinite(u.train_step(arch=u.space.sample(np.random.default_rng(0))))
    assert math.isfinite(u.train_step(weights=alpha.detach().softmax(-1)))
    assert not same_tensors(before, snapshot(u.model))
    drawn = (u.train_stream.batches_drawn, u.val_stream.batches_drawn)
    score = u.score(u.space.sample(np.random.default_rng(1)))
    assert math.isfinite(score) and score <= 0
    assert (u.train_stream.batches_drawn, u.val_stream.batches_drawn) == drawn

    teacher = make("nasgen/TeacherArch-v0").unwrapped
    teacher.reset(seed=0)
    for name in ("model", "teacher", "next_train_batch", "next_val_batch", "loss_fn", "score", "space"):
        assert hasattr(teacher, name), name
    assert teacher.score(teacher.teacher) == 0.0
    xt, target = teacher.next_train_batch()
    weights = torch.zeros(teacher.n_edges, teacher.n_ops, requires_grad=True)
    teacher.loss_fn(teacher.model(xt, weights=weights.softmax(-1)), target).backward()
    assert weights.grad is not None and weights.grad.abs().sum() > 0


# --- the sequential view ---------------------------------------------------------------------
class StubEnv(ArchitectureEnv):
    """A three-decision env with uneven choices (3, 1, 2); reward = -sum(arch)."""

    def __init__(self, seed=None):
        super().__init__(SearchSpace("stub", [3, 1, 2], decision_names=["first", "second", "third"]), seed=seed)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _build(self):
        pass

    def _reward_batch(self):
        return None

    def _loss(self, arch, batch, gates):
        return torch.tensor(float(arch.sum())), {}

    def _observation(self):
        return np.zeros(1, dtype=np.float32)

    def score(self, arch):
        return -float(self.space.validate(arch).sum())


def test_sequential_view_masks_uneven_choices():
    # (no check_env here: it steps with unmasked samples, which uneven choices refuse)
    env = SequentialArchitectureEnv(StubEnv())
    obs, _ = env.reset(seed=0)
    assert obs["mask"].tolist() == [1, 1, 1] and env.action_masks().tolist() == [True, True, True]
    obs, reward, terminated, _, info = env.step(2)
    assert (reward, terminated, info) == (0.0, False, {})
    assert obs["mask"].tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match=r"second \(step 2 of 3\): allowed 0\.\.0"):
        env.step(1)
    obs, _, _, _, _ = env.step(0)
    assert obs["mask"].tolist() == [1, 1, 0]
    # one-hot decisions made so far, then the position
    assert obs["obs"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0] + [0, 0, 1, 0]
    obs, reward, terminated, truncated, info = env.step(np.int64(1))
    assert (reward, terminated, truncated) == (-3.0, True, False)
    assert info["arch"].tolist() == [2, 0, 1] and info["loss"] == 3.0
    assert obs["mask"].tolist() == [0, 0, 0] and obs["obs"][-1] == 1
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    assert env.score([1, 0, 1]) == -2.0


class PickySpace(SearchSpace):
    """Refuses the all-zero architecture, which its mask does not know about."""

    def validate(self, arch):
        arch = super().validate(arch)
        if not arch.any():
            raise ValueError("the all-zero architecture is refused")
        return arch


def test_sequential_view_undoes_a_refused_last_decision():
    inner = StubEnv()
    inner.space = PickySpace("picky", [3, 1, 2])
    env = SequentialArchitectureEnv(inner)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    with pytest.raises(ValueError, match="refused"):
        env.step(0)
    assert env.position == 2 and inner.steps == 0
    obs, reward, terminated, _, info = env.step(1)
    assert terminated and reward == -1.0 and info["arch"].tolist() == [0, 0, 1]


def test_oneshot_seq_matches_the_one_step_env():
    kwargs = dict(credit="taylor")
    seq = make("nasgen/OneShotNASSeq-v0", **kwargs)
    one = make("nasgen/OneShotNAS-v0", **kwargs)
    u = seq.unwrapped
    n = u.space.n_decisions
    assert seq.action_space == gym.spaces.Discrete(u.space.max_choices)
    assert u.inner.credit_mode == "taylor" and u.inner.batch_size == 32  # kwargs passed through
    arch = u.space.sample(np.random.default_rng(0))
    obs, _ = seq.reset(seed=4)
    one.reset(seed=4)
    for p in range(n):
        assert obs["obs"][n * u.space.max_choices + p] == 1
        obs, reward, terminated, truncated, info = seq.step(int(arch[p]))
        if p < n - 1:
            assert (reward, terminated, truncated, info) == (0.0, False, False, {})
    _, expected, _, _, one_info = one.step(arch)
    assert terminated and not truncated and reward == expected
    assert np.array_equal(info["arch"], arch) and np.array_equal(info["credit"], one_info["credit"])
    for key in ("val_accuracy", "val_loss", "params"):
        assert info[key] == one_info[key]
    assert obs["obs"][: n * u.space.max_choices].reshape(n, -1).argmax(1).tolist() == arch.tolist()
    assert math.isfinite(u.score(arch))


# --- NAS-Bench-Graph ---------------------------------------------------------------------------
@pytest.fixture
def bench():
    return pytest.importorskip("nas_bench_graph")


def test_nas_bench_graph_rewards_come_from_the_table(bench):
    from nas_bench_graph.architecture import Arch

    env = make("nasgen/NASBenchGraph-v0", dataset="citeseer")
    u = env.unwrapped
    assert u.space.choices == (9, 9, 9, 9, 9) and u.space.zero_op is False
    env.reset(seed=0)
    arch = np.array([8, 1, 2, 7, 3])  # chain: gcn -> gin -> fc -> cheb
    record = bench.light_read("citeseer")[Arch([0, 1, 2, 3], ["gcn", "gin", "fc", "cheb"]).valid_hash()]
    obs, reward, terminated, truncated, info = env.step(arch)
    assert reward == record["valid_perf"] == info["valid_perf"] and terminated and not truncated
    assert info["test_perf"] == record["perf"]
    assert info["test_regret"] == pytest.approx(u.best_test - record["perf"]) and info["test_regret"] >= 0
    assert info["valid_regret"] >= 0 and obs[0] == pytest.approx(reward)
    assert u.best_valid == max(r["valid_perf"] for r in u.table.values())
    assert u.best_test == max(r["perf"] for r in u.table.values())
    assert u.score(u.best_arch) == u.best_valid and u.lookup(u.best_arch)["test_perf"] == u.best_arch_test
    assert u.score(arch) == reward


@pytest.mark.parametrize("dataset", ["cora", "citeseer", "pubmed", "cs", "physics", "photo",
                                     "computers", "arxiv", "proteins"])
def test_nas_bench_graph_datasets(bench, dataset):
    env = make("nasgen/NASBenchGraph-v0", dataset=dataset)
    u = env.unwrapped
    n_ops = 5 if dataset == "proteins" else 9
    assert u.space.choices == (9,) + (n_ops,) * 4
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = u.space.sample(rng)
        _, reward, _, _, info = play(env, arch)
        assert 0 < reward <= u.best_valid and 0 < info["test_perf"] <= u.best_test


def test_nas_bench_graph_invalid_architectures(bench):
    env = make("nasgen/NASBenchGraph-v0", dataset="proteins")
    u = env.unwrapped
    env.reset(seed=0)
    skip = u.space.skip_index
    with pytest.raises(ValueError, match=r"op of node 1\.\.4.*'skip'"):
        env.step([3, skip, skip, skip, skip])
    with pytest.raises(ValueError, match=r"op of node 1: allowed 0\.\.4"):
        env.step([0, 5, 0, 0, 0])
    assert u.steps == 0 and math.isfinite(env.step([3, skip, 0, skip, skip])[1])
    with pytest.raises(RuntimeError, match="call reset"):  # one architecture per episode
        env.step([3, skip, 0, skip, skip])
    rng = np.random.default_rng(0)
    assert not any(u.space.is_all_skip(u.space.sample(rng)) for _ in range(2000))

    with pytest.raises(ValueError, match="credit"):
        make("nasgen/NASBenchGraph-v0", credit="taylor")
    with pytest.raises(ValueError, match="known: cora"):
        make("nasgen/NASBenchGraph-v0", dataset="Cora")
    lenient = make("nasgen/NASBenchGraph-v0", dataset="proteins", invalid_reward=-1.0)
    lenient.reset(seed=0)
    obs, reward, _, _, info = lenient.step([3, skip, skip, skip, skip])
    assert reward == -1.0 and info["invalid"] is True and obs in lenient.observation_space
    # score() agrees with step(): a search whose derived architecture is all-skip still finishes.
    assert lenient.unwrapped.score([3, skip, skip, skip, skip]) == -1.0
    with pytest.raises(ValueError, match="'skip'"):
        u.score([3, skip, skip, skip, skip])
    assert u.score([3, skip, 0, skip, skip]) == u.lookup([3, skip, 0, skip, skip])["valid_perf"]

    # One decision per step, the mask keeps the all-skip architectures out.
    seq = SequentialArchitectureEnv(u)
    obs, _ = seq.reset(seed=0)
    for choice in (3, skip, skip):
        obs, *_ = seq.step(choice)
    assert obs["mask"].tolist() == [1] * 5 + [0] * 4
    obs, *_ = seq.step(skip)
    assert obs["mask"].tolist() == [1] * 4 + [0] * 5  # skip is masked out for the last node
    with pytest.raises(ValueError, match=r"op of node 4 \(step 5 of 5\).*allowed 0, 1, 2, 3"):
        seq.step(skip)
    assert seq.position == 4 and seq.step(0)[2] is True


def test_nas_bench_graph_controllers_learn_from_invalid_rewards(bench):
    """Factorised controllers can sample all-skip architectures; with ``invalid_reward`` the
    env rewards them, so every black-box controller must take them back in ``tell``."""
    from nasgen import controllers

    env = make("nasgen/NASBenchGraph-v0", dataset="proteins", invalid_reward=0.0)
    env.reset(seed=0)
    u = env.unwrapped
    all_skip = np.array([0] + [u.space.skip_index] * 4)
    for name in controllers.names():
        spec = controllers.get(name)
        if spec.kind != "black-box" or "credit" in spec.env_requirements:
            continue
        ctrl = controllers.make(name, u.space, seed=0)
        archs = ctrl.ask(ctrl.samples_per_step)
        archs[0] = all_skip
        rewards, infos = [], []
        for arch in archs:
            _, reward, _, _, info = play(env, arch)
            rewards.append(reward)
            infos.append(info)
        ctrl.tell(archs, rewards, infos)
        assert ctrl.evaluations == len(archs), name
        with pytest.raises(ValueError, match="out of range"):
            ctrl.tell([np.array([0, 99, 0, 0, 0])], [0.5], [{}])


def test_nas_bench_graph_every_architecture_is_in_the_table(bench):
    import itertools

    u = make("nasgen/NASBenchGraph-v0", dataset="proteins").unwrapped
    keys = set()
    for arch in itertools.product(*(range(c) for c in u.space.choices)):
        arch = np.array(arch)
        if u.space.is_all_skip(arch):
            continue
        key = u._key(arch)
        assert key in u.table, u.space.describe(arch)
        keys.add(key)
    assert keys == set(u.table)  # and every table entry is reachable


def test_nas_bench_graph_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "nas_bench_graph", None)  # import now fails
    with pytest.raises(ImportError, match=re.escape('pip install "nasgen[bench]"')):
        gym.make("nasgen/NASBenchGraph-v0")
    # Importing nasgen.envs (which registers the id) does not need the package.
    code = ("import sys; sys.modules['nas_bench_graph'] = None\n"
            "import gymnasium as gym, nasgen.envs\n"
            "assert 'nasgen/NASBenchGraph-v0' in gym.registry")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_oneshot_env_on_nb201_and_mnist1d_gives_per_edge_credit():
    env = gym.make("nasgen/OneShotNAS-v0", space="nb201", dataset="mnist1d", credit="taylor", C=4, n_cells=1,
                   warmup_epochs=0, batch_size=16, dataset_options={"n_train": 200, "n_test": 50, "seed": 3})
    check_env(env.unwrapped)
    unwrapped = env.unwrapped
    assert unwrapped.data.train.x.shape == (160, 1, 40) and unwrapped.model.config["dims"] == 1
    env.reset(seed=0)
    arch = np.array([3, 0, 2, 4, 0, 1])
    _, reward, terminated, _, info = env.step(arch)
    assert terminated and reward < 0 and info["credit"].shape == (6,)
    assert (info["credit"][arch == 0] == 0).all() and (info["credit"][arch != 0] != 0).all()


@pytest.mark.parametrize("space,dataset,expected", [("nb201", "mnist1d", "table"), ("nb201-nozero", "mnist1d", "table"),
                                                   ("nb201", "digits", 5), ("small", "digits", 5)])
def test_the_supernet_defaults_to_the_depth_of_the_judging_table(space, dataset, expected):
    """A search a shipped table judges gets the table's skeleton; others get 5 cells."""
    from nasgen.nb1d import judge as ground_truth, load

    if expected == "table":
        expected = load(ground_truth.table_for(space, dataset)).manifest["recipe"]["cells_per_stage"]
    options = {"n_train": 200, "n_test": 50, "seed": 3} if dataset == "mnist1d" else None
    env = gym.make("nasgen/OneShotNAS-v0", space=space, dataset=dataset, C=4, warmup_epochs=0, limit=100,
                   dataset_options=options)
    env.reset(seed=0)
    assert env.unwrapped.model.config["n_cells"] == expected
    given = gym.make("nasgen/OneShotNAS-v0", space=space, dataset=dataset, C=4, n_cells=2, warmup_epochs=0,
                     limit=100, dataset_options=options)
    given.reset(seed=0)
    assert given.unwrapped.model.config["n_cells"] == 2


# --- credit quality -------------------------------------------------------------------------------
def _hand_credit(env: ArchitectureEnv, arch: np.ndarray, batch) -> tuple[np.ndarray, np.ndarray]:
    """Taylor (-dL/dg at g = 1) and exact (L(edge i off) - L) credit of ``arch``, by hand."""
    x, target = batch
    n = len(arch)

    def loss(gates):
        return torch.mean((env.model(x, arch, gates=gates) - target) ** 2)

    gates = torch.ones(n, requires_grad=True)
    value = loss(gates)
    value.backward()
    taylor = -gates.grad.double().numpy()
    exact = np.array([loss(torch.ones(n).index_fill(0, torch.tensor([i]), 0.0)).item() - value.item()
                      for i in range(n)])
    return taylor, exact


def test_credit_check_matches_a_hand_computation():
    env = make("nasgen/TeacherArch-v0", n_edges=5, n_ops=3, credit="taylor", credit_check_every=2,
               credit_subset=5)
    u = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(3)
    first = play(env, rng.integers(0, 3, 5))[4]
    assert "credit_check" not in first  # every 2nd step only
    arch = rng.integers(0, 3, 5)
    env.reset()
    twin = copy.deepcopy(u)  # same generator state: draws the same reward batch
    info = env.step(arch)[4]
    taylor, exact = _hand_credit(twin, arch, twin.next_val_batch())
    np.testing.assert_allclose(info["credit"], taylor, rtol=1e-5, atol=1e-9)
    figures = info["credit_check"]
    dt, da = taylor - taylor.mean(), exact - exact.mean()
    assert figures["taylor_corr"] == pytest.approx((dt * da).sum() / math.sqrt((dt ** 2).sum() * (da ** 2).sum()),
                                                   rel=1e-4)
    assert figures["taylor_sign_agreement"] == pytest.approx(np.mean((taylor > 0) == (exact > 0)))
    assert figures["taylor_bias"] == pytest.approx(np.mean(taylor - exact), rel=1e-4, abs=1e-9)
    assert figures["taylor_below_exact"] == pytest.approx(np.mean(taylor <= exact))
    # Checking every edge (|K| = E) makes the hybrid estimate exact: its error vanishes.
    assert figures["hybrid_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert figures["hybrid_corr"] == pytest.approx(1.0)
    assert figures["hybrid_extra_passes"] == 5 and figures["exact_extra_passes"] == 5
    assert info["evaluations"] == 1  # the check's passes are not the search's
    quality = u.credit_quality()
    assert quality["checks"] == 1 and quality["every"] == 2
    assert quality["pooled"]["taylor_bias"] == pytest.approx(figures["taylor_bias"])
    final = u.credit_quality(arch)["final"]
    assert set(final) == set(figures) and u.credit_quality()["checks"] == 1


@pytest.mark.parametrize("credit_batch", ["val", "train"])
def test_credit_checks_change_nothing_in_the_run(credit_batch):
    """Same seed with and without checks: the same rewards, credit and shared weights (BatchNorm
    buffers included), also when reward, credit and weight step share one training pass; with
    checks off or without credit there is no report."""
    runs = []
    for every in (0, 2):
        env = make("nasgen/OneShotNAS-v0", credit="hybrid", credit_check_every=every, credit_batch=credit_batch)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        steps = [play(env, env.unwrapped.space.sample(rng))[4] for _ in range(4)]
        runs.append((steps, snapshot(env.unwrapped.model), env.unwrapped))
    (plain, w0, u0), (checked, w1, u1) = runs
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a["credit"], b["credit"])
        assert a["loss"] == b["loss"]
    assert same_tensors(w0, w1)
    assert [("credit_check" in i) for i in checked] == [False, True, False, True]
    assert u0.credit_quality() is None and u1.credit_quality()["checks"] == 2
    assert make("nasgen/TeacherArch-v0").unwrapped.credit_quality() is None
    with pytest.raises(ValueError, match="credit_check_every"):
        make("nasgen/TeacherArch-v0", credit="taylor", credit_check_every=-1)
