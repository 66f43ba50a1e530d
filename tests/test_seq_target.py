"""``nasgen/SeqTarget-v0``: the report's toy sequence tasks as a gymnasium episode."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import nasgen.envs
from nasgen.envs.seq_target import SeqTargetEnv

ID = "nasgen/SeqTarget-v0"


def play(env, actions, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, rewards, flags, infos = [obs], [], [], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        flags.append((terminated, truncated))
        infos.append(info)
    return observations, rewards, flags, infos


def test_registered():
    assert ID in nasgen.envs.env_ids() and ID in gym.registry
    assert isinstance(gym.make(ID, mode="generate").unwrapped, SeqTargetEnv)


@pytest.mark.parametrize("kwargs", [dict(), dict(mode="generate"), dict(reward="per_token"),
                                    dict(mode="generate", observe_position=True, target=(2, 0, 1), z_dim=3)])
def test_check_env(kwargs):
    env = gym.make(ID, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [str(w.message) for w in caught if "WARN" in str(w.message)]


def test_map_rewards_count_wrong_tokens_at_the_end():
    env = SeqTargetEnv()
    _, rewards, flags, infos = play(env, [1, 1, 0, 0], seed=0)
    assert rewards == [0.0, 0.0, 0.0, 0.0]
    assert flags == [(False, False)] * 3 + [(True, False)]
    assert infos[-1]["correct"] and infos[-1]["sequence"] == [1, 1, 0, 0]
    _, rewards, _, infos = play(env, [0, 0, 0, 0])
    assert rewards == [0.0, 0.0, 0.0, -2.0] and infos[-1]["wrong"] == 2
    per_token = SeqTargetEnv(reward="per_token")
    _, rewards, _, _ = play(per_token, [0, 0, 0, 1], seed=0)
    assert rewards == [-1.0, -1.0, 0.0, -1.0]


def test_map_observation_shows_the_input_and_the_previous_action():
    env = SeqTargetEnv(z_dim=2)
    observations, _, _, _ = play(env, [1, 0, 1, 0], seed=0)
    for t, obs in enumerate(observations[:4]):
        np.testing.assert_array_equal(obs[:2], 0.0)                    # no z in map mode
        assert obs[2 + (1, 0, 1, 0)[t]] == 1.0 and obs[2:4].sum() == 1.0
        if t:
            assert obs[4 + (1, 0, 1, 0)[t - 1]] == 1.0 and obs[4:6].sum() == 1.0
    np.testing.assert_array_equal(observations[0][4:], 0.0)


def test_generate_shows_z_only_at_the_start_from_np_random():
    env = SeqTargetEnv(mode="generate", z_dim=4)
    observations, _, _, _ = play(env, [1, 1, 0, 0], seed=3)
    z = observations[0][:4]
    assert np.abs(z).sum() > 0 and np.all(np.abs(z) <= 1)
    for obs in observations[1:]:
        np.testing.assert_array_equal(obs[:4], 0.0)
        np.testing.assert_array_equal(obs[4:6], 0.0)                   # no input sequence
    again, _ = SeqTargetEnv(mode="generate", z_dim=4).reset(seed=3)
    other, _ = SeqTargetEnv(mode="generate", z_dim=4).reset(seed=4)
    np.testing.assert_array_equal(again[:4], z)
    assert not np.array_equal(other[:4], z)


@pytest.mark.parametrize("action", [2, -1, 0.5, float("nan"), "a", None, np.zeros(2, dtype=np.int64), True])
def test_bad_actions_raise_and_leave_the_episode(action):
    env = SeqTargetEnv()
    env.reset(seed=0)
    env.step(1)
    with pytest.raises(ValueError):
        env.step(action)
    assert env.position == 1
    _, rewards, _, infos = play_from(env, [1, 0, 0])
    assert infos[-1]["correct"] and rewards[-1] == 0.0


def play_from(env, actions):
    rewards, infos = [], []
    for action in actions:
        _, reward, _, _, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
    return None, rewards, None, infos


def test_numpy_integer_actions_are_accepted():
    env = SeqTargetEnv()
    env.reset(seed=0)
    env.step(np.int64(1))
    env.step(np.array(1))
    assert env.emitted == [1, 1]


def test_bad_arguments_raise():
    for kwargs in (dict(mode="x"), dict(reward="x"), dict(target=()), dict(input=(1, 0)), dict(n_tokens=1),
                   dict(z_dim=0)):
        with pytest.raises(ValueError):
            SeqTargetEnv(**kwargs)


@pytest.mark.parametrize("reward", ["sequence", "per_token"])
def test_a_sequence_is_an_architecture_for_the_search(reward):
    env = gym.make(ID, target=(1, 0, 2), input=(0, 1, 1), reward=reward)
    space = env.unwrapped.space
    assert space.choices == (3, 3, 3) and space.decision_name(2) == "token 2"
    for sequence in ([1, 0, 2], [0, 0, 0], [2, 1, 0]):
        _, rewards, _, _ = play(env, sequence, seed=0)
        assert env.unwrapped.score(sequence) == sum(rewards)  # the episode's return
    assert env.unwrapped.score([1, 0, 2]) == 0.0 and env.unwrapped.score([2, 1, 0]) == -3.0
    with pytest.raises(ValueError, match="token 1: allowed 0..2"):
        env.unwrapped.score([1, 5, 2])
