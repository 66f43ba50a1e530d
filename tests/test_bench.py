"""NAS-Bench-1D: building a table on Ray (killed and resumed), packing, loading, querying,
and the ``Tabular-v0`` env on it."""

from __future__ import annotations

import json
import math
import os
import shutil

import gymnasium as gym
import numpy as np
import pytest

import nasgen.envs  # noqa: F401  (registers the ids)
from nasgen import nb1d
from nasgen.nb1d import METRICS, Recipe, build, load, pack, read_rows
from nasgen.nb1d.build import seed_plan
from nasgen.searchspace import CellSearchSpace, get

TINY_SPACE = CellSearchSpace("tiny", ("none", "skip_connect"), n_nodes=1)
TINY_RECIPE = Recipe(train_size=64, val_size=64, test_size=64, epochs=2, batch_size=32, C=2)
#: What must agree between two trainings of one (architecture, seed); times may differ.
SAME = ("arch", "seed", "epochs", *nb1d.METRICS, "params", "flops", "error")


def comparable(rows):
    return sorted((json.dumps({k: r[k] for k in SAME}) for r in rows))


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (1 CPU) for the whole module."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # as tests/test_sweep.py runs Ray
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


# --- recipe -------------------------------------------------------------------------------------
def test_recipe_defaults_and_bad_values():
    recipe = Recipe(epochs=10)
    assert recipe.record_epochs == (5, 10)  # half-way and full by default
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="Recipe.epochs must be an int >= 1, got 0"):
        Recipe(epochs=0)
    with pytest.raises(ValueError, match=r"record_epochs must be increasing epochs in 1\.\.4"):
        Recipe(epochs=4, record_epochs=(2, 6))
    with pytest.raises(ValueError, match="unknown recipe field 'epoch'; known: C, "):
        Recipe.from_dict({"epoch": 3})


def test_plan_archs():
    every = nb1d.plan_archs(TINY_SPACE)
    assert every.shape == (16, 4) and len({tuple(a) for a in every.tolist()}) == 16
    few = nb1d.plan_archs(TINY_SPACE, 5)
    assert len(few) == 5 and {tuple(a) for a in few.tolist()} <= {tuple(a) for a in every.tolist()}
    assert np.array_equal(few, nb1d.plan_archs(TINY_SPACE, 5))  # seeded
    with pytest.raises(ValueError, match="limit_archs"):
        nb1d.plan_archs(get("small"))  # 5**18 encodings, no canonical form to enumerate
    assert len(nb1d.plan_archs(get("small"), 3)) == 3


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 40).astype(float)
    b = a + rng.integers(0, 3, 40)
    assert nb1d.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0])
    assert nb1d.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(nb1d.spearman([1, 2], [1, 2])) and math.isnan(nb1d.spearman([1, 1, 1], [1, 2, 3]))
    f = nb1d.figures(np.array([[0.5, 0.6], [0.7, 0.7], [0.9, 0.8], [np.nan, np.nan]]))
    assert f["n_archs"] == 3 and f["best"] == pytest.approx(0.85) and f["spearman_all"] == pytest.approx(1.0)
    assert f["seed_gap"] == pytest.approx(0.2 / 3) and math.isnan(f["val_test_spearman"])
    assert f["seed_counts"] == {"2": 3}
    ragged = nb1d.figures(np.array([[0.5, 0.6, 0.7], [0.7, np.nan, np.nan], [0.9, 0.8, np.nan], [0.6, 0.6, 0.6]]))
    assert ragged["seed_counts"] == {"1": 1, "2": 1, "3": 2}
    val = np.array([[0.9, 0.9], [0.7, 0.7], [0.5, 0.5], [np.nan, np.nan]])
    assert nb1d.figures(np.array([[0.5, 0.6], [0.7, 0.7], [0.9, 0.8], [np.nan, np.nan]]), val)[
        "val_test_spearman"] == pytest.approx(-1.0)


# --- build ----------------------------------------------------------------------------------------
def test_ray_build_killed_midway_resumes_to_the_same_rows(tmp_path, local_ray):
    seeds = [0, 1]
    reference = build(TINY_SPACE, "digits", seeds, TINY_RECIPE, tmp_path / "ref", limit_archs=3,
                      local=True, progress=False)
    assert len(reference) == 6 and all(r["error"] is None for r in reference)

    out = tmp_path / "ray"
    first = build(TINY_SPACE, "digits", seeds, TINY_RECIPE, out, limit_archs=3, stop_after=2, progress=False)
    assert 2 <= len(first) < 6  # stopped midway, rows on disk
    with open(out / "rows.jsonl", "a") as f:
        f.write('{"arch": [0, 1')  # a kill tore the last line
    resumed = build(TINY_SPACE, "digits", seeds, TINY_RECIPE, out, limit_archs=3, progress=False)
    assert len(resumed) == 6
    assert comparable(resumed) == comparable(reference)  # the same training on a Ray worker
    assert {r["session"] for r in resumed} == {0, 1}
    assert [comparable([r]) for r in resumed[:len(first)]] == [comparable([r]) for r in first]
    row = resumed[0]
    assert row["epochs"] == [1, 2] and len(row["test_accuracy"]) == 2 and row["params"] > 0
    assert row["flops"] > 0 and row["train_time_s"] > 0
    # Nothing left to do: a third start trains nothing and adds no row.
    assert len(build(TINY_SPACE, "digits", seeds, TINY_RECIPE, out, limit_archs=3, progress=False)) == 6
    with pytest.raises(ValueError, match="other recipe"):
        build(TINY_SPACE, "digits", seeds, Recipe(epochs=3), out, limit_archs=3, progress=False)

    manifest = json.loads(pack(out, "t").read_text())
    assert manifest["n_rows"] == 6 and manifest["errors"] == [] and manifest["build_time_s"] > 0
    table = load(out / "t.npz")
    assert table.archs.shape == (3, 4) and table.metrics["test_accuracy"].shape == (3, 2, 2)
    assert np.isfinite(table.metrics["val_loss"]).all()


def test_good_cells_train_their_good_seeds_right_after_their_first(tmp_path, local_ray):
    """A folder started without good seeds gains them: each cell whose first seed ends above
    ``good_above`` then trains the good seeds it lacks, right after its planned ones, the
    cells in the plan's order; on Ray the same rows come."""
    kwargs = dict(reliability_archs=5, progress=False)
    cut = build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "b", stop_after=9, local=True, **kwargs)
    first = {tuple(r["arch"]): r["test_accuracy"][-1] for r in cut if r["seed"] == 0}
    above = (min(first.values()) + max(first.values())) / 2  # a threshold between the first cells' accuracies
    good_kwargs = dict(good_seeds=[0, 1, 2], good_above=above, **kwargs)
    with pytest.raises(ValueError, match="good_seeds and good_above go together"):
        build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "b", good_seeds=[2], local=True, **kwargs)
    chosen = [list(c) for c, a in first.items() if a > above]  # seed 2 trained elsewhere on the cut's good cells
    build(TINY_SPACE, "digits", [2], TINY_RECIPE, tmp_path / "chosen", archs=chosen, local=True, progress=False)
    with pytest.raises(ValueError, match=r"other seeds \(it trains \[2\], which .* does not\)"):
        nb1d.merge(tmp_path / "chosen", tmp_path / "b")  # not before the build trains seed 2
    build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "b", stop_after=1, local=True, **good_kwargs)
    merged = nb1d.merge(tmp_path / "chosen", tmp_path / "b")  # another plan, the same trainings
    assert len(chosen) - 1 <= merged <= len(chosen) and merged > 0
    rows = build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "b", local=True, **good_kwargs)
    items = nb1d.plan_items(nb1d.plan_archs(TINY_SPACE), [0, 1], 5)
    position = {c: i for i, c in enumerate(dict.fromkeys(tuple(a) for a, _ in items))}
    first = {tuple(r["arch"]): r["test_accuracy"][-1] for r in rows if r["seed"] == 0}
    planned = seed_plan(TINY_SPACE, [0, 1], None, 5)
    good = {c for c, a in first.items() if a > above}
    assert 0 < len(good) < 16
    seeds: dict[tuple, list] = {}
    for r in rows:
        seeds.setdefault(tuple(r["arch"]), []).append(r["seed"])
    assert {c: sorted(s) for c, s in seeds.items()} == {c: sorted(set(s) | ({0, 1, 2} if c in good else set()))
                                                         for c, s in planned.items()}
    later = [position[tuple(r["arch"])] for r in rows[len(cut) + 1 + merged:]]
    assert later == sorted(later)  # cell by cell in the plan's order, a good cell's extra seeds right after it
    assert any(len(seeds[c]) == 3 for c in list(position)[5:])  # good cells outside the subset too
    manifest = json.loads(pack(tmp_path / "b", "t").read_text())
    counts = {str(n): sum(len(s) == n for s in seeds.values()) for n in (1, 2, 3)}
    assert manifest["figures"]["seed_counts"] == {n: c for n, c in counts.items() if c}
    assert "cells by finished seeds: " + ", ".join(f"{c} with {n}" for n, c in counts.items() if c) in \
        load(tmp_path / "b" / "t.json").summary()
    assert manifest["seeds"] == [0, 1, 2] and manifest["plan"] == {
        "limit_archs": None, "reliability_archs": 5, "seeds": [0, 1], "good_seeds": [0, 1, 2], "good_above": above}
    assert load(tmp_path / "b" / "t.json").ran.sum() == len(rows)
    for other, message in ((kwargs, "other good_above, good_seeds"),
                           ({**good_kwargs, "good_above": above / 2}, "other good_above")):
        with pytest.raises(ValueError, match=message):  # the plan cannot lose or change its good seeds
            build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "b", local=True, **other)
    on_ray = build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, tmp_path / "ray", **good_kwargs)
    assert comparable(on_ray) == comparable(rows)


def test_a_failed_architecture_is_a_row_and_is_retried(tmp_path, monkeypatch):
    from nasgen.nb1d import recipe as recipe_module

    real = recipe_module.make_network
    bad = tuple(nb1d.plan_archs(TINY_SPACE, 2)[1].tolist())

    def failing(space, arch, recipe, data):
        if tuple(arch.tolist()) == bad:
            raise RuntimeError("injected failure")
        return real(space, arch, recipe, data)

    monkeypatch.setattr(recipe_module, "make_network", failing)
    rows = build(TINY_SPACE, "digits", [0], TINY_RECIPE, tmp_path, limit_archs=2, local=True, progress=False)
    errors = [r for r in rows if r["error"]]
    assert len(rows) == 2 and len(errors) == 1 and "RuntimeError: injected failure" in errors[0]["error"]
    manifest = json.loads(pack(tmp_path, "t").read_text())
    assert manifest["errors"] == [{"arch": list(bad), "seed": 0, "error": errors[0]["error"]}]
    table = load(tmp_path / "t.json")
    assert math.isnan(table.query(list(bad))["mean"]["test_accuracy"])
    monkeypatch.setattr(recipe_module, "make_network", real)
    rows = build(TINY_SPACE, "digits", [0], TINY_RECIPE, tmp_path, limit_archs=2, local=True, progress=False)
    assert len(rows) == 3 and rows[-1]["error"] is None  # only the failed one ran again
    assert json.loads(pack(tmp_path, "t").read_text())["errors"] == []


def test_the_table_records_which_device_and_versions_trained_each_row(tmp_path):
    from nasgen.nb1d.build import versions
    from nasgen.nb1d.table import format_summary

    build(TINY_SPACE, "digits", [0], TINY_RECIPE, tmp_path, limit_archs=2, local=True, progress=False)
    settings = json.loads((tmp_path / "build.json").read_text())
    settings["sessions"].insert(0, {"started": settings["sessions"][0]["started"] - 1})  # an old start: unknown
    (tmp_path / "build.json").write_text(json.dumps(settings))
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({**r, "session": k}) + "\n" for k, r in enumerate(rows)))
    manifest = json.loads(pack(tmp_path, "t").read_text())
    seconds = [r["train_time_s"] for r in rows]  # stored as float32 in the table
    assert manifest["builds"] == [
        {"device": None, "versions": None, "rows": 1, "train_time_s": pytest.approx(seconds[0], rel=1e-6)},
        {"device": "cpu", "versions": versions(), "rows": 1, "train_time_s": pytest.approx(seconds[1], rel=1e-6)}]
    seconds = [b["train_time_s"] for b in manifest["builds"]]
    table = load(tmp_path / "t.json")
    assert sorted(table.built_by[:, 0].tolist()) == [0, 1]
    assert (f"trained on: unknown device (1 rows, {seconds[0] / 3600:.2f} h of training); cpu torch "
            f"{versions()['torch']} (1 rows, {seconds[1] / 3600:.2f} h of training)") in format_summary(manifest)
    manifest["builds"][1]["device"] = "cuda"  # a GPU's time in minutes; a table packed before: its row count alone
    del manifest["builds"][0]["train_time_s"]
    assert (f"trained on: unknown device (1 rows); cuda torch {versions()['torch']} (1 rows, "
            f"{seconds[1] / 60:.1f} GPU min of training)") in format_summary(manifest)


def test_cli_refuses_a_bad_device_before_anything_is_written(tmp_path, capsys):
    import torch

    from nasgen.cli import main

    out = tmp_path / "out"
    cases = [(["--device", "tpu", "--local"], "--device: unknown device 'tpu'; choose from: cpu, cuda, cuda:N")]
    if torch.cuda.is_available():
        cases.append((["--device", "cuda"], "trains in this process: use local=True (--local)"))
    else:
        cases.append((["--device", "cuda", "--local"], "CUDA is not available here"))
    for argv, message in cases:
        assert main(["bench", "build", "--space", "nb201", "--dataset", "mnist1d", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not out.exists()


# --- the table --------------------------------------------------------------------------------------
def test_query_best_percentile(tiny_table):
    table = load(tiny_table)
    assert table.covers_space() and len(table.archs) == 16
    answer = table.query([1, 0, 1, 1])
    assert set(answer["per_seed"]) == {0, 1} and answer["arch"] == [1, 0, 1, 1]
    per_seed = [answer["per_seed"][s]["test_accuracy"] for s in (0, 1)]
    assert answer["mean"]["test_accuracy"] == pytest.approx(np.mean(per_seed))
    best = table.best("test_accuracy")
    assert best["value"] == pytest.approx(table.mean("test_accuracy").max())
    assert table.percentile(best["arch"]) == 100.0
    worst = table.archs[int(np.argmin(table.mean("test_accuracy")))]
    assert 0 < table.percentile(worst) <= 100 * (table.mean("test_accuracy") == table.mean().min()).mean()
    for metric in ("test_accuracy", "test_loss"):  # the share of cells no better, ties included
        means = table.mean(metric)
        for arch, value in zip(table.archs, means):
            no_better = means >= value if metric.endswith("loss") else means <= value
            assert table.percentile(arch, metric) == float(100.0 * no_better.mean())
    assert table.best("test_loss")["value"] == pytest.approx(table.mean("test_loss").min())
    assert table.query([1, 0, 1, 1], epoch=1)["epoch"] == 1
    with pytest.raises(ValueError, match="epoch 5 is not recorded"):
        table.query([1, 0, 1, 1], epoch=5)


def test_an_architecture_of_another_space_is_refused(tiny_table):
    table = load(tiny_table)
    small = get("small")
    with pytest.raises(ValueError, match="space 'tiny'"):
        table.query(small.sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="architecture of space 'small', but table 'tiny' is of space 'tiny'"):
        table.query([0, 0, 0, 0], space=small)
    with pytest.raises(ValueError, match="allowed 0..1"):
        table.query([0, 0, 0, 2])


def test_a_tampered_table_is_refused(tiny_table, tmp_path):
    for suffix in (".json", ".npz"):
        shutil.copy(tiny_table.with_suffix(suffix), tmp_path / f"t{suffix}")
    assert load(tmp_path / "t.json").name == "tiny"
    data = bytearray((tmp_path / "t.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "t.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"t\.npz fails its checksum"):
        load(tmp_path / "t.npz")
    with pytest.raises(ValueError, match="no table 'nope'.*shipped"):
        load("nope")


def test_equivalent_nb201_encodings_share_one_answer(tmp_path):
    """A real nb201 table on MNIST-1D (1 epoch): every encoding of a trained class gets that
    class's answer, and the representatives are what was trained."""
    from nasgen.searchspace.canonical import canonical_map

    space = get("nb201")
    cmap = canonical_map(tuple(space.op_names))
    # node 1 is zero, so the op on 2<-1 does not matter (5 encodings, one class); all-conv3x3
    chosen = [[0, 2, 3, 2, 0, 2], [3, 3, 3, 3, 3, 3]]
    recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
    rows = build(space, "mnist1d", [0], recipe, tmp_path, archs=chosen, local=True, progress=False)
    assert all(r["error"] is None for r in rows) and len(rows) == 2
    table = load(pack(tmp_path, "t"))
    assert table.archs.tolist() == sorted(list(cmap.canonical(a)) for a in chosen)
    members = cmap.members(chosen[0])
    assert len(members) >= 5
    answers = {json.dumps(table.query(m)) for m in members}
    assert len(answers) == 1 and table.query(chosen[0])["arch"] == list(cmap.canonical(chosen[0]))
    assert table.query(chosen[0]) != table.query(chosen[1])
    with pytest.raises(ValueError, match="is not in table 't'"):
        table.query([2, 2, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="space 'nb201'"):
        table.query([0] * 18)


# --- the env -----------------------------------------------------------------------------------------
def test_tabular_env_rewards_regret_and_budget(tiny_table):
    from gymnasium.utils.env_checker import check_env

    from nasgen.envs.tabular import QueryBudgetExhausted

    env = gym.make("nasgen/Tabular-v0", table=str(tiny_table), budget=3)
    check_env(env.unwrapped)
    u = env.unwrapped
    table = u.table
    env.reset(seed=0)
    arch = [1, 1, 0, 1]
    drawn = set()
    for _ in range(3):
        env.reset()  # an unseeded reset starts the next episode of the same search
        obs, reward, terminated, truncated, info = env.step(arch)
        row = table.row_of(arch)
        j = list(table.seeds).index(info["seed"])
        drawn.add(info["seed"])
        assert reward == pytest.approx(table.metrics["val_accuracy"][row, j, -1]) and terminated and not truncated
        assert info["test_regret"] == pytest.approx(u.best_test - table.query(arch)["mean"]["test_accuracy"])
        assert info["percentile"] == table.percentile(arch) and obs[0] == pytest.approx(reward)
    env.reset()
    with pytest.raises(QueryBudgetExhausted, match="budget of 3"):
        env.step(arch)
    env.reset(seed=1)  # a seeded reset starts a new search with a fresh budget
    env.step(arch)

    mean = gym.make("nasgen/Tabular-v0", table=str(tiny_table), reward="mean")
    mean.reset(seed=0)
    rewards = set()
    for _ in range(4):
        mean.reset()
        rewards.add(mean.step(arch)[1])
    assert len(rewards) == 1 and rewards.pop() == pytest.approx(table.query(arch)["mean"]["val_accuracy"])
    assert mean.unwrapped.score(arch) == pytest.approx(table.query(arch)["mean"]["val_accuracy"])
    mean.reset()
    assert mean.unwrapped.step(u.best_arch)[4]["test_regret"] == 0.0

    for kwargs, match in ((dict(reward="max"), "reward='max'"), (dict(budget=0), "budget"),
                          (dict(credit="taylor"), "credit")):
        with pytest.raises(ValueError, match=match):
            gym.make("nasgen/Tabular-v0", table=str(tiny_table), **kwargs)


def test_tabular_env_draws_only_the_seeds_a_cell_was_trained_with():
    """The shipped table trained its second seed on 1,000 of its cells: a query of another
    cell answers from seed 0 and is never a failed training; a paired cell draws both."""
    env = gym.make("nasgen/Tabular-v0")  # the shipped nb201-mnist1d table
    table = env.unwrapped.table
    assert table.ran[:, 0].all() and 0 < table.ran[:, 1].sum() < len(table.archs) and not table.failed.any()
    unpaired = [3, 1, 0, 0, 4, 4]
    assert not table.ran[table.row_of(unpaired), 1]
    paired = table.archs[np.flatnonzero(table.ran[:, 1])[0]].tolist()
    env.reset(seed=0)
    for arch, seeds in ((unpaired, {0}), (paired, {0, 1})):
        drawn = set()
        for _ in range(40):
            env.reset()
            _, reward, _, _, info = env.step(arch)
            assert not info["failed"] and reward > 0.5
            drawn.add(info["seed"])
        assert drawn == seeds
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    infos = []
    for _ in range(400):
        env.reset()
        infos.append(env.step(env.unwrapped.space.sample(rng))[4])
    assert not any(i["failed"] for i in infos) and min(i["val_accuracy"] for i in infos) > 0


# --- the noise floor ---------------------------------------------------------------------------
def test_noise_model_pools_seed_variance_per_accuracy_level():
    """Noisy low cells and quiet high ones: each level gets its own deviation, not the pooled mean."""
    from nasgen.nb1d.table import noise_model

    rng = np.random.default_rng(0)
    level = np.repeat([0.6, 0.9], 500)
    sd = np.where(level < 0.8, 0.03, 0.005)
    values = level[:, None] + sd[:, None] * rng.standard_normal((1000, 2))
    edges, found = noise_model(values)
    assert len(edges) == 9 and len(found) == 10
    assert np.allclose(found[:5], 0.03, rtol=0.2) and np.allclose(found[5:], 0.005, rtol=0.2)
    values[100:, 1] = np.nan  # the second seed on 100 cells only: fewer bins, still per level
    assert len(noise_model(values)[1]) == 5
    assert np.isnan(noise_model(values[:, :1])[1]).all()  # one seed: the noise is unknown


def test_standard_error_query_and_verdict_on_the_shipped_table():
    from nasgen.nb1d.judge import Judge, format_verdict

    table = load("nb201-mnist1d")
    judge = Judge(table, table.space)
    best_row = table.row_of(table.best()["arch"])
    se = table.standard_error("test_accuracy")
    for arch, n in (([3, 1, 0, 0, 4, 4], 1), (table.archs[np.flatnonzero(table.ran[:, 1])[0]].tolist(), 2)):
        answer = table.query(arch)
        mean = answer["mean"]["test_accuracy"]
        assert answer["n_seeds"] == len(answer["per_seed"]) == n  # a missing seed is not listed as nan
        expected = table.noise_sd(mean) / math.sqrt(n)
        assert answer["standard_error"]["test_accuracy"] == pytest.approx(expected) and 0.001 < expected < 0.05
        verdict = judge.judge(arch)
        assert verdict["test_accuracy_se"] == pytest.approx(expected)
        assert verdict["test_regret_se"] == pytest.approx(math.hypot(expected, se[best_row]))
        assert f"± {100 * verdict['test_regret_se']:.2f} (SE)" in format_verdict(verdict)
    assert judge.judge(table.archs[best_row])["test_regret_se"] == 0.0
    assert np.isfinite(se).all() and (se > 0).all()
    env = gym.make("nasgen/Tabular-v0")
    env.reset(seed=0)
    info = env.step([3, 1, 0, 0, 4, 4])[4]
    verdict = judge.judge([3, 1, 0, 0, 4, 4])
    assert info["test_regret_se"] == pytest.approx(verdict["test_regret_se"])
    assert info["test_accuracy_se"] == pytest.approx(verdict["test_accuracy_se"])
    assert "noise floor" in table.summary() and "above the median" in table.noise_summary()


def test_a_table_with_constant_seed_noise_gets_that_noise_back(tmp_path):
    from _synthetic_table import write_synthetic_nb201_table  # seed noise of 0.01 on every cell

    table = load(write_synthetic_nb201_table(tmp_path / "t"))
    assert np.allclose(table._noise("test_accuracy")[1], 0.01, rtol=0.15)
    assert np.allclose(table.standard_error("test_accuracy"), table.noise_sd(0.6) / math.sqrt(2), rtol=0.3)


def test_bench_query_prints_the_row_with_its_noise_and_refuses_a_bad_architecture(capsys):
    from nasgen.cli import main

    assert main(["bench", "query", "3,1,0,0,4,4"]) == 0
    out = capsys.readouterr().out
    assert "seed 0: test 95.71%" in out and "seed 1" not in out and "mean over 1 seed(s)" in out
    assert "(SE)" in out and "percentile" in out
    assert main(["bench", "query", "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|"
                 "nor_conv_3x3~2|", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["arch"] == [4, 3, 0, 4, 3, 3] and row["verdict"]["test_regret"] == 0.0
    for bad, message in (("9,9", "must be a vector of 6 ints"), ("abc", "expected a NAS-Bench-201 string"),
                         ("|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", "bogus")):
        assert main(["bench", "query", bad]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err


def test_tabular_env_scores_a_recorded_failure_as_failed(tmp_path):
    """A training the table records as failed (an error row) is the only failure."""
    build(TINY_SPACE, "digits", [0, 1], Recipe(train_size=32, val_size=32, test_size=32, epochs=1, C=2),
          tmp_path, local=True, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    broken = rows[0]
    rows.append({**broken, **{m: [] for m in METRICS}, "train_time_s": None, "error": "RuntimeError: boom"})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = gym.make("nasgen/Tabular-v0", table=str(pack(tmp_path, "failing")))
    table = env.unwrapped.table
    row = table.row_of(broken["arch"])
    j = list(table.seeds).index(broken["seed"])
    assert table.failed[row, j] and table.ran[row].all() and table.failed.sum() == 1
    env.reset(seed=0)
    seen = {}
    for _ in range(40):
        env.reset()
        _, reward, _, _, info = env.step(broken["arch"])
        seen[info["seed"]] = (reward, info["failed"])
    assert seen[broken["seed"]] == (0.0, True) and seen[1 - broken["seed"]][1] is False


def test_tabular_env_refuses_a_partial_table(tmp_path):
    build(TINY_SPACE, "digits", [0], Recipe(train_size=32, val_size=32, test_size=32, epochs=1, C=2),
          tmp_path, limit_archs=2, local=True, progress=False)
    path = pack(tmp_path, "partial")
    with pytest.raises(ValueError, match="holds 2 distinct architectures, not every one"):
        gym.make("nasgen/Tabular-v0", table=str(path))


# --- CLI ---------------------------------------------------------------------------------------------
def test_cli_info_and_bad_input(tiny_table, tmp_path, capsys):
    from nasgen.cli import main

    assert main(["bench", "info", str(tiny_table)]) == 0
    out = capsys.readouterr().out
    assert "table tiny: space tiny, dataset digits, 16 distinct architectures" in out and "Spearman" in out
    assert main(["bench", "info", "nope"]) == 2
    target = tmp_path / "never"
    for argv, message in (
            (["--space", "nope"], "unknown search space 'nope'"),
            (["--space", "small", "--dataset", "digits"], "give limit_archs"),
            (["--space", "small", "--dataset", "digits", "--recipe", "epochs=0"], "Recipe.epochs must be"),
            (["--space", "small", "--dataset", "digits", "--limit-archs", "0"], "--limit-archs must be >= 1"),
            (["--space", "small", "--dataset", "digits", "--seeds", "1,1"], "seed twice"),
            (["--good-seeds", "0,1,2"], "--good-seeds and --good-above go together"),
            (["--good-seeds", "0,x", "--good-above", "0.8"], "--good-seeds expects a count (3) or a comma-separated"),
            (["--good-seeds", "4", "--good-above", "1.5"], "--good-above must be a test accuracy in [0, 1), got 1.5")):
        assert main(["bench", "build", "--out", str(target), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
        assert not target.exists()


def test_cli_build_with_good_seeds(tmp_path, capsys):
    from nasgen.cli import main

    out = tmp_path / "out"
    assert main(["bench", "build", "--space", "nb201", "--dataset", "mnist1d", "--seeds", "0,", "--limit-archs", "3",
                 "--recipe", "train_size=64", "val_size=64", "test_size=64", "epochs=1", "batch_size=32", "C=2",
                 "--local", "--good-seeds", "0,1", "--good-above", "0", "--out", str(out), "--name", "t",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 trainings (3 distinct architectures with seed 0), plus the seeds of 0,1 a cell lacks when its seed 0 " \
           "ends above 0 % test accuracy" in printed
    table = load(out / "t.json")
    assert table.manifest["seeds"] == [0, 1] and table.ran.all()  # every cell above 0 %: seed 1 on each
    assert "x seeds [0, 1], 0 failed rows" in printed


def test_local_build_refuses_ray_flags(tmp_path, capsys):
    from nasgen.cli import main

    out = tmp_path / "out"
    assert main(["bench", "build", "--space", "nb201", "--dataset", "mnist1d", "--seeds", "0,1", "--local",
                 "--num-cpus", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--local" in err, err
    assert not out.exists()


def test_a_build_split_across_machines_merges_back(tmp_path, capsys):
    """A copy trained further elsewhere (a GPU) merges into a folder that grew meanwhile."""
    import shutil as sh
    from nasgen.cli import main

    seeds, here, there = [0, 1], tmp_path / "here", tmp_path / "there"
    first = build(TINY_SPACE, "digits", seeds, TINY_RECIPE, here, limit_archs=4, local=True, stop_after=2,
                  progress=False)
    sh.copytree(here, there)  # the copy that travels
    build(TINY_SPACE, "digits", seeds, TINY_RECIPE, there, limit_archs=4, local=True, progress=False)
    build(TINY_SPACE, "digits", seeds, TINY_RECIPE, here, limit_archs=4, local=True, stop_after=2, progress=False)
    grown = len(read_rows(here / "rows.jsonl"))
    assert len(first) == 2 and grown == 4
    assert main(["bench", "merge", str(there), str(here)]) == 0
    assert "merged 4 row(s)" in capsys.readouterr().out
    rows = read_rows(here / "rows.jsonl")
    assert len(rows) == 8 and len({(tuple(r["arch"]), r["seed"]) for r in rows}) == 8
    sessions = json.loads((here / "build.json").read_text())["sessions"]
    assert len(sessions) == 3  # its own two starts and the copy's second one
    assert {r["session"] for r in rows} == {0, 1, 2}
    elsewhere = json.loads((there / "build.json").read_text())["sessions"][1]
    assert sessions[2] == elsewhere and all(r["session"] == 2 for r in rows[4:])
    assert main(["bench", "merge", str(there), str(here)]) == 0 and "merged 0 row(s)" in capsys.readouterr().out
    assert main(["bench", "pack", str(here), "--name", "t"]) == 0
    printed = capsys.readouterr().out
    assert "table t: space tiny" in printed and "noise floor" in printed and json.loads(
        (here / "t.json").read_text())["n_rows"] == 8
    assert main(["bench", "pack", str(tmp_path / "nope"), "--name", "t"]) == 2
    assert "is not a build folder" in capsys.readouterr().err
    other = tmp_path / "other"
    build(TINY_SPACE, "digits", [5], TINY_RECIPE, other, limit_archs=4, local=True, stop_after=1, progress=False)
    for argv, message in (([str(other), str(here)], "hold builds with other seeds"),
                          ([str(tmp_path / "nope"), str(here)], "is not a build folder")):
        assert main(["bench", "merge", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert len(read_rows(here / "rows.jsonl")) == 8


def test_reliability_subset_comes_first_and_has_every_seed():
    archs = nb1d.plan_archs(TINY_SPACE)
    items = nb1d.plan_items(archs, [0, 1, 2], reliability_archs=5)
    assert len(items) == 5 * 3 + 11
    subset = [tuple(items[3 * k][0]) for k in range(5)]  # each subset cell with every seed in a row
    assert [s for _, s in items[:15]] == [0, 1, 2] * 5 and [s for _, s in items[15:]] == [0] * 11
    assert [tuple(a) for a, _ in items[:15]] == [a for a in subset for _ in range(3)]
    big = nb1d.plan_items(nb1d.plan_archs(get("nb201")), [0, 1], reliability_archs=2000)
    first = [tuple(a) for a, _ in big[:400:2]]
    assert first != sorted(first)  # a cut inside the subset is a random sample, not the first cells
    old_plan = np.random.default_rng(1)  # the subset and the rest's order are those of earlier versions
    chosen = np.zeros(16, dtype=bool)
    chosen[old_plan.choice(16, size=5, replace=False)] = True
    assert sorted(subset) == sorted(tuple(a) for a in archs[chosen].tolist())
    assert [tuple(a) for a, _ in items[15:]] == [tuple(a) for a in
                                                  archs[~chosen][old_plan.permutation(11)].tolist()]
    assert len({tuple(a) for a, _ in items}) == 16
    rest = [tuple(a) for a, _ in items[15:]]  # the rest in a random order: a cut build is a random sample
    assert rest != sorted(rest, key=lambda a: [tuple(x) for x in archs.tolist()].index(a))
    assert nb1d.plan_items(archs, [0, 1], None) == [(a, s) for s in (0, 1) for a in archs.tolist()]
    with pytest.raises(ValueError, match="reliability_archs must be >= 1, got 0"):
        nb1d.plan_items(archs, [0, 1], 0)


def test_the_shipped_table_is_complete_consistent_and_reproducible():
    """The shipped nb201-mnist1d: every distinct cell, checksum, figures from its own arrays,
    and one of its CPU-trained rows trained again here with the recipe it records gives the
    same numbers."""
    import torch

    from nasgen.nb1d.recipe import train_architecture
    from nasgen.nb1d.table import figures

    table = load("nb201-mnist1d")
    manifest = table.manifest
    assert manifest["space"]["name"] == "nb201" and manifest["dataset"] == "mnist1d"
    assert Recipe.from_dict(manifest["recipe"]) == Recipe()  # built with the defaults
    assert manifest["space_distinct"] == 6466 == len(table.archs) and table.covers_space()
    assert not manifest["errors"]
    test = table.metrics["test_accuracy"][:, :, -1]
    assert np.isfinite(test[:, 0]).all() and np.isfinite(test[:, 1]).sum() == manifest["figures"]["n_paired"] >= 1000
    again = figures(test, table.metrics["val_accuracy"][:, :, -1])
    for key, value in manifest["figures"].items():
        assert again[key] == pytest.approx(value, nan_ok=True), key
    builds = manifest["builds"]
    assert sum(b["rows"] for b in builds) == manifest["n_rows"] == int((table.built_by >= 0).sum())
    on_cpu = [k for k, b in enumerate(builds) if b["device"] == "cpu"]
    row = int(np.flatnonzero(np.isin(table.built_by[:, 0], on_cpu))[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the build's tasks: one thread, the same summation order
    try:
        redone = train_architecture(table.space, table.archs[row], 0, "mnist1d", Recipe.from_dict(manifest["recipe"]))
    finally:
        torch.set_num_threads(threads)
    assert redone["error"] is None
    for metric in ("test_accuracy", "val_accuracy", "train_loss"):
        assert np.allclose(redone[metric], table.metrics[metric][row, 0], atol=2e-3), metric
