"""Ground truth in the main job: a search on a space and dataset with a table is judged by it
(``nasgen.nb1d.judge``; result.json ``ground_truth``, TensorBoard ``ground_truth/``)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nasgen.nb1d import judge as ground_truth, load
from nasgen.nb1d import table as table_module
from nasgen.cli import main
from nasgen.searchspace import get

from _synthetic_table import write_synthetic_nb201_table

TINY_NB201 = ["--space", "nb201", "--dataset", "mnist1d", "--warmup-epochs", "0", "--no-progress",
              "--steps", "3", "--controller", "random",
              "--env-kwargs", "C=4", "n_cells=1", "batch_size=32", "limit=64"]


@pytest.fixture(scope="module")
def nb201_table(tmp_path_factory):
    return write_synthetic_nb201_table(tmp_path_factory.mktemp("nb201-table"))


def only_run(logdir):
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_judge_maps_nozero_archs_and_checks_the_task(nb201_table):
    table = load(nb201_table)
    nb201, nozero = get("nb201"), get("nb201-nozero")
    judge = ground_truth.for_search(str(nb201_table), nozero, "mnist1d", {"n_train": 5000, "seed": 3})
    arch = np.array([0, 1, 2, 3, 0, 1])  # nozero op k is nb201 op k + 1
    verdict = judge.judge(arch)
    same = table.query(nb201.from_genotype(nozero.to_genotype(arch)))
    assert verdict["test_accuracy"] == pytest.approx(same["mean"]["test_accuracy"])
    assert verdict["test_regret"] == pytest.approx(table.best()["value"] - same["mean"]["test_accuracy"])
    assert verdict["percentile"] == table.percentile(same["arch"]) and verdict["n_archs"] == 6466
    best = ground_truth.Judge(table, nb201).judge(table.best()["arch"])
    assert best["test_regret"] == 0.0 and best["percentile"] == 100.0
    for args, match in (((get("small"), "mnist1d"), "cannot judge architectures of space 'small'"),
                        ((nb201, "digits"), "trained on dataset 'mnist1d', the search runs on 'digits'")):
        with pytest.raises(ground_truth.TableError, match=match):
            ground_truth.for_search(str(nb201_table), *args)
    with pytest.raises(ground_truth.TableError, match="unknown mnist1d option 'noise'"):
        ground_truth.for_search(str(nb201_table), nb201, "mnist1d", {"noise": 0.5})
    with pytest.raises(ground_truth.TableError, match="trained on mnist1d with iid_noise_scale=0.02, the search "
                                                      "runs it with iid_noise_scale=0.04"):
        ground_truth.for_search(str(nb201_table), nb201, "mnist1d", {"iid_noise_scale": 0.04})
    with pytest.raises(ground_truth.TableError, match="--table nope: no table 'nope'"):
        ground_truth.for_search("nope", nb201, "mnist1d")
    assert ground_truth.for_search("none", nb201, "mnist1d") is None


def test_a_table_of_a_harder_task_judges_only_searches_of_that_task(nb201_table, tmp_path):
    """A table trained on noisier MNIST-1D (NAS-Bench-1D v2) refuses a search of the default task,
    names the options to give, and judges a search that gives them."""
    from nasgen import compare

    manifest = json.loads(nb201_table.read_text())
    manifest["recipe"]["data_options"] = {"iid_noise_scale": 0.04, "corr_noise_scale": 0.5, "n_train": 500}
    harder = tmp_path / "harder.json"
    harder.write_text(json.dumps(manifest))
    shutil.copy(nb201_table.with_suffix(".npz"), harder.with_suffix(".npz"))
    nb201 = get("nb201")
    with pytest.raises(ground_truth.TableError, match=r"with iid_noise_scale=0.04, the search runs it with "
                       r"iid_noise_scale=0.02; search the table's task: --env-kwargs "
                       r'dataset_options=\{"iid_noise_scale":0.04,"corr_noise_scale":0.5\}'):
        ground_truth.for_search(str(harder), nb201, "mnist1d", {"n_train": 400})
    options = {"iid_noise_scale": 0.04, "corr_noise_scale": 0.5, "n_train": 400}  # the split size is free
    assert ground_truth.for_search(str(harder), nb201, "mnist1d", options) is not None
    assert ground_truth.task_options(load(harder)) == {"iid_noise_scale": 0.04, "corr_noise_scale": 0.5}
    plan = compare.check(compare.CompareConfig(controllers=("random",), suites=("nb1d", "nb1d-table"), seeds=1,
                                               local=True, table=str(harder), out=str(tmp_path / "c")))
    for task in plan.tasks:  # nasgen compare searches the table's task
        if task.spec["runner"] in ("supernet",):
            assert task.spec["config"]["env_kwargs"]["dataset_options"] == {"iid_noise_scale": 0.04,
                                                                            "corr_noise_scale": 0.5}
    assert {t.spec["runner"] for t in plan.tasks} >= {"supernet", "table"}


def test_every_shipped_table_is_registered_with_its_depth_and_task():
    for name in ground_truth.TABLES:
        if (table_module.SHIPPED_DIR / f"{name}.json").is_file():
            entry, table = ground_truth.TABLES.get(name), load(name)
            assert entry.cells_per_stage == table.manifest["recipe"]["cells_per_stage"]
            assert entry.dataset_options == ground_truth.task_options(table), name


def test_the_v2_build_trains_the_task_v2_is_registered_for():
    """``benchmarks/nb1d_v2.sh`` spells v2's generator options for its build; ``TABLES`` spells
    them for the searches v2 judges. The committed build folder must hold the registered task."""
    build = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "nb1d-v2-build" / "build.json"
    if not build.is_file():
        pytest.skip("no v2 build folder in this checkout")
    recipe = json.loads(build.read_text())["recipe"]
    free = ground_truth.FREE_DATA_OPTIONS["mnist1d"]
    assert {k: v for k, v in recipe["data_options"].items() if k not in free} == \
        ground_truth.TABLES.get("nb201-mnist1d-v2").dataset_options


def test_the_shipped_table_of_the_search_task_judges_it(nb201_table, tmp_path, monkeypatch, capsys):
    """v1 judges the default MNIST-1D, v2 (registered, shipped here as a copy) the doubled noise."""
    manifest = json.loads(nb201_table.read_text())
    for name, options in (("nb201-mnist1d", {}), ("nb201-mnist1d-v2", {"iid_noise_scale": 0.04,
                                                                        "corr_noise_scale": 0.5})):
        manifest["name"], manifest["recipe"]["data_options"] = name, options
        (tmp_path / f"{name}.json").write_text(json.dumps(manifest))
        shutil.copy(nb201_table.with_suffix(".npz"), tmp_path / f"{name}.npz")
    monkeypatch.setattr(table_module, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(ground_truth, "SHIPPED_DIR", tmp_path)
    harder = {"iid_noise_scale": 0.04, "corr_noise_scale": 0.5, "n_train": 300}
    assert ground_truth.table_for("nb201", "mnist1d") == "nb201-mnist1d"
    assert ground_truth.table_for("nb201", "mnist1d", {"n_train": 300}) == "nb201-mnist1d"
    assert ground_truth.table_for("nb201", "mnist1d", harder) == "nb201-mnist1d-v2"
    assert ground_truth.for_search(None, get("nb201"), "mnist1d", harder).table.name == "nb201-mnist1d-v2"
    assert ground_truth.for_search(None, get("nb201"), "mnist1d", {"iid_noise_scale": 0.1}) is None
    err = capsys.readouterr().err
    assert "note: no shipped table was trained on this task (nb201-mnist1d was trained on mnist1d with " \
           "iid_noise_scale=0.02, the search runs it with iid_noise_scale=0.1)" in err


def test_shipped_table_is_found_by_space_and_dataset(nb201_table, tmp_path, monkeypatch):
    assert ground_truth.table_for("nb201", "mnist1d") in (None, "nb201-mnist1d")
    for suffix in (".json", ".npz"):
        shutil.copy(nb201_table.with_suffix(suffix), tmp_path / f"nb201-mnist1d{suffix}")
    monkeypatch.setattr(table_module, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(ground_truth, "SHIPPED_DIR", tmp_path)
    assert ground_truth.table_for("nb201", "mnist1d") == "nb201-mnist1d"
    assert ground_truth.table_for("nb201-nozero", "mnist1d") == "nb201-mnist1d"
    assert ground_truth.table_for("nb201", "digits") is None and ground_truth.table_for("small", "mnist1d") is None
    assert ground_truth.for_search(None, get("nb201"), "mnist1d").table.name == "synthetic"
    (tmp_path / "nb201-mnist1d.npz").write_bytes(b"tampered")
    assert ground_truth.for_search(None, get("nb201"), "mnist1d") is None  # a warning, no error


def test_search_logs_the_ground_truth(nb201_table, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["search", "--logdir", str(tmp_path), "--table", str(nb201_table), *TINY_NB201]) == 0
    run_dir = only_run(tmp_path)
    result = json.loads((run_dir / "result.json").read_text())
    verdict = result["ground_truth"]
    expected = load(nb201_table).query(result["derived_arch"])["mean"]["test_accuracy"]
    assert verdict["test_accuracy"] == pytest.approx(expected) and verdict["table"] == "synthetic"
    assert f"percentile {verdict['percentile']:.1f}" in capsys.readouterr().out
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"ground_truth/test_accuracy", "ground_truth/test_regret", "ground_truth/percentile"} <= tags
    assert events.Scalars("ground_truth/test_regret")[-1].value == pytest.approx(verdict["test_regret"])
    assert math.isfinite(verdict["test_regret_se"])  # the synthetic table has two seeds per cell
    assert events.Scalars("ground_truth/test_regret_se")[-1].value == pytest.approx(verdict["test_regret_se"])


def test_search_on_a_sampled_table_trains_the_derived_cell(tmp_path, capsys):
    from nasgen.nb1d import Recipe, build, pack

    recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
    build(get("nb201"), "mnist1d", [0], recipe, tmp_path / "b", local=True, progress=False, limit_archs=3)
    table = pack(tmp_path / "b", "sample")
    assert main(["search", "--logdir", str(tmp_path / "runs"), "--table", str(table), *TINY_NB201]) == 0
    run_dir = only_run(tmp_path / "runs")
    verdict = json.loads((run_dir / "result.json").read_text())["ground_truth"]
    assert "error" not in verdict and verdict["n_archs"] == 3
    in_table = tuple(verdict["arch"]) in set(map(tuple, load(table).archs.tolist()))
    assert verdict["trained_on_demand"] is not in_table
    if not in_table:  # almost surely: 3 of 6,466 cells
        rows = (run_dir / ground_truth.FILL_NAME / "rows.jsonl").read_text().splitlines()
        assert len(rows) == 1 and json.loads(rows[0])["arch"] == verdict["arch"]
        assert "was trained with its recipe" in capsys.readouterr().out
    else:
        assert not (run_dir / ground_truth.FILL_NAME).exists()


def test_search_without_a_table_is_not_judged_and_a_bad_table_exits_2(tmp_path, capsys):
    assert main(["search", "--logdir", str(tmp_path / "a"), "--table", "none", *TINY_NB201]) == 0
    assert "ground_truth" not in json.loads((only_run(tmp_path / "a") / "result.json").read_text())
    assert main(["search", "--logdir", str(tmp_path / "b"), "--table", "nope", *TINY_NB201]) == 2
    assert "--table nope: no table 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_paired_statistics_of_the_harness():
    import itertools
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import _stats

    def brute(a, b):  # every sign assignment of the ranks
        d = np.asarray(a) - np.asarray(b)
        d = d[d != 0]
        ranks = _stats._average_ranks(np.abs(d))
        observed = abs(ranks[d > 0].sum() - ranks.sum() / 2)
        hits = sum(abs(sum(r for r, s in zip(ranks, signs) if s) - ranks.sum() / 2) >= observed - 1e-9
                   for signs in itertools.product((0, 1), repeat=len(d)))
        return hits / 2 ** len(d)

    rng = np.random.default_rng(0)
    for n in (5, 6, 9):
        for _ in range(10):  # coarse values: ties and zero differences
            a, b = rng.integers(0, 4, n) / 10, rng.integers(0, 4, n) / 10
            assert _stats.wilcoxon_signed_rank(a, b)["p"] == pytest.approx(brute(a, b))
    result = _stats.wilcoxon_signed_rank([1, 2, 3, 4, 5], [0] * 5)
    assert result["p"] == pytest.approx(0.0625) == result["min_p"] and result["w_plus"] == 15
    assert _stats.wilcoxon_signed_rank([1, 2], [1, 2])["p"] == 1.0
    ci = _stats.paired_bootstrap_ci([1, 2, 3, 4, 5], [0, 0, 0, 0, 1], np.random.default_rng(0))
    assert ci["mean"] == pytest.approx(2.8) and ci["low"] <= 2.8 <= ci["high"] and ci["low"] >= 1.0


TINY_RECIPE_FIELDS = dict(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)


@pytest.fixture(scope="module")
def cut_build(tmp_path_factory):
    """A finished build of 4 cells (2 of them with both seeds), and the same build cut after
    its 2 paired cells, each packed: ``(finished folder, cut folder, finished table, cut table)``."""
    from nasgen.nb1d import Recipe, build, pack

    root = tmp_path_factory.mktemp("cut-build")
    kwargs = dict(local=True, progress=False, limit_archs=4, reliability_archs=2)
    build(get("nb201"), "mnist1d", [0, 1], Recipe(**TINY_RECIPE_FIELDS), root / "full", **kwargs)
    build(get("nb201"), "mnist1d", [0, 1], Recipe(**TINY_RECIPE_FIELDS), root / "cut", stop_after=4, **kwargs)
    return root / "full", root / "cut", pack(root / "full", "full"), pack(root / "cut", "sample")


def test_a_sampled_table_trains_a_missing_cell_with_its_planned_seeds_once(tmp_path, cut_build):
    from nasgen.nb1d import merge, plan_archs, plan_items, read_rows

    full_dir, cut_dir, _, cut_path = cut_build
    space = get("nb201")
    table = load(cut_path)
    assert table.manifest["plan"] == {"limit_archs": 4, "reliability_archs": 2} and len(table.archs) == 2
    unpaired = [a for a, _ in plan_items(plan_archs(space, 4), [0, 1], 2)[4:]]  # the build gives them seed 0 only
    planned = set(map(tuple, plan_archs(space, 4).tolist()))
    outside = next(a for a in ([3] * 6, [2] * 6, [1] * 6) if tuple(a) not in planned)
    with pytest.raises(ValueError, match="is not in table 'sample', which holds 2 distinct architectures"):
        ground_truth.Judge(table, space).judge(unpaired[0])
    fill = tmp_path / "fill"
    verdict = ground_truth.Judge(table, space, fill=fill).judge(unpaired[0])
    rows = read_rows(fill / "rows.jsonl")
    assert verdict["trained_on_demand"] and [(r["arch"], r["seed"]) for r in rows] == [(unpaired[0], 0)]
    finished = {(tuple(r["arch"]), r["seed"]): r for r in read_rows(full_dir / "rows.jsonl")}
    for m in ("test_accuracy", "val_accuracy", "train_loss"):  # the very row the finished build trains
        assert rows[0][m] == finished[(tuple(unpaired[0]), 0)][m]
    assert verdict["test_accuracy"] == pytest.approx(rows[0]["test_accuracy"][-1])
    assert verdict["test_regret"] == pytest.approx(table.best()["value"] - verdict["test_accuracy"])
    values = table.mean("test_accuracy")
    assert verdict["percentile"] == pytest.approx(100 * (values <= verdict["test_accuracy"]).mean())
    again = ground_truth.Judge(table, space, fill=fill).judge(unpaired[0])  # reused, not retrained
    assert again == verdict and len(read_rows(fill / "rows.jsonl")) == 1
    ground_truth.Judge(table, space, fill=fill).judge(outside)  # outside the build's plan: every seed of the table
    assert [(r["arch"], r["seed"]) for r in read_rows(fill / "rows.jsonl")][1:] == [(outside, 0), (outside, 1)]
    assert not ground_truth.Judge(table, space, fill=fill).judge(table.archs[0])["trained_on_demand"]
    # the fill folder is a folder of the table's build: it merges into it, once
    assert merge(fill, cut_dir) == 3 and merge(fill, cut_dir) == 0
    assert json.loads((cut_dir / "build.json").read_text())["sessions"][-1]["on_demand"] is True
    # a fill folder of another build is refused in one line, its rows kept
    settings = json.loads((fill / "build.json").read_text())
    settings["recipe"]["epochs"] = 2
    (fill / "build.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match=r"^fill folder .*fill holds rows of a build with other recipe; use another "
                                         r"folder for this table$"):
        ground_truth.Judge(table, space, fill=fill).judge(unpaired[1])
    assert len(read_rows(fill / "rows.jsonl")) == 3


def test_tabular_on_a_sampled_table_answers_as_on_the_finished_one(tmp_path, cut_build):
    import gymnasium as gym

    from nasgen.nb1d import plan_archs, read_rows

    _, _, full_path, cut_path = cut_build
    with pytest.raises(ValueError, match="Tabular-v0 needs a complete table or fill=FOLDER"):
        gym.make("nasgen/Tabular-v0", table=str(cut_path))
    envs = [gym.make("nasgen/Tabular-v0", table=str(path), fill=str(tmp_path / name))
            for path, name in ((full_path, "a"), (cut_path, "b"))]
    for env in envs:
        env.reset(seed=3)
    archs = plan_archs(get("nb201"), 4)
    for step, k in enumerate((0, 1, 2, 3, 3, 2, 1, 0, 2, 3)):  # cells the cut table has and lacks, some again
        for env in envs if step else ():
            env.reset()  # one cell an episode; the seed's generator goes on
        (_, reward, *_, info), (_, reward_cut, *_, info_cut) = (env.step(archs[k]) for env in envs)
        assert reward == pytest.approx(reward_cut, abs=1e-7) and info["seed"] == info_cut["seed"]
        for key in ("test_accuracy", "params", "flops"):
            assert info[key] == pytest.approx(info_cut[key], abs=1e-7)
        assert info_cut["queries"] == info["queries"]
    assert not (tmp_path / "a").exists()  # the finished table trained nothing
    assert len(read_rows(tmp_path / "b" / "rows.jsonl")) == 2  # the cut one trained its 2 unpaired cells once


def test_a_training_that_fails_on_demand_scores_as_a_failed_table_row(tmp_path, cut_build, monkeypatch, capsys):
    """A cell a sampled table lacks whose training fails answers as a finished table's
    failed row does (reward 0, ``failed``, no test accuracy) instead of stopping the search;
    its error row stays in the fill, and a later judge trains it again, as a build's next
    start does."""
    import gymnasium as gym

    from nasgen.nb1d import plan_archs, plan_items, read_rows

    _, _, _, cut_path = cut_build
    space = get("nb201")
    unpaired = [a for a, _ in plan_items(plan_archs(space, 4), [0, 1], 2)[4:]]
    real = ground_truth.train_architecture

    def failing(space, arch, seed, dataset, recipe, *args):
        row = real(space, arch, seed, dataset, recipe, *args)
        if list(arch) == unpaired[0]:  # fails as a training does: a row with its error, no metrics
            row.update({m: [] for m in ("train_accuracy", "train_loss", "val_accuracy", "val_loss", "test_accuracy",
                                        "test_loss")}, error="RuntimeError: injected failure")
        return row

    monkeypatch.setattr(ground_truth, "train_architecture", failing)
    fill = tmp_path / "fill"
    env = gym.make("nasgen/Tabular-v0", table=str(cut_path), fill=str(fill))
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.asarray(unpaired[0]))
    assert reward == 0.0 and info["failed"] and info["seed"] == 0 and math.isnan(info["test_accuracy"])
    assert info["params"] > 0 and "on demand failed" in capsys.readouterr().err
    env.reset()
    _, reward, *_, info = env.step(np.asarray(unpaired[1]))  # the search goes on
    assert reward > 0 and not info["failed"]
    rows = read_rows(fill / "rows.jsonl")
    assert [r["error"] is not None for r in rows] == [True, False]
    monkeypatch.setattr(ground_truth, "train_architecture", real)
    verdict = ground_truth.Judge(load(cut_path), space, fill=fill).judge(unpaired[0])  # trained again
    assert math.isfinite(verdict["test_accuracy"]) and len(read_rows(fill / "rows.jsonl")) == 3


def _good_seed_build(tmp_path):
    """A finished build in ``tmp_path / "full"`` of 6 cells, 2 of them paired, with good seeds
    [0, 1, 2] above a threshold fixed from a probe's first seeds; returns the build's keyword
    arguments, ``{cell: the seeds the plan gives it}`` (checked against the build) and the rows."""
    from nasgen.nb1d import Recipe, build
    from nasgen.nb1d.build import seed_plan

    space, recipe = get("nb201"), Recipe(**TINY_RECIPE_FIELDS)
    probe = build(space, "mnist1d", [0], recipe, tmp_path / "probe", limit_archs=6, local=True, progress=False)
    first = {tuple(r["arch"]): r["test_accuracy"][-1] for r in probe}
    above = (min(first.values()) + max(first.values())) / 2  # fixed before the build, as a plan's threshold is
    kwargs = dict(limit_archs=6, reliability_archs=2, good_seeds=[0, 1, 2], good_above=above, local=True,
                  progress=False)
    full = build(space, "mnist1d", [0, 1], recipe, tmp_path / "full", **kwargs)
    planned = seed_plan(space, [0, 1], 6, 2)
    good = {c for c, a in first.items() if a > above}
    want = {c: sorted(set(s) | ({0, 1, 2} if c in good else set())) for c, s in planned.items()}
    assert 0 < len(good) < 6 and any(len(s) == 1 for s in want.values())
    got: dict[tuple, list] = {}
    for r in full:
        got.setdefault(tuple(r["arch"]), []).append(r["seed"])
    assert {c: sorted(s) for c, s in got.items()} == want
    return kwargs, want, full


def test_good_seeds_on_a_sampled_table_answer_as_on_the_finished_one(tmp_path):
    """A build with good seeds (a cell whose first seed ends above ``good_above`` gets more):
    a cell the cut table lacks is trained on demand with exactly the seeds the finished build
    gives it, and Tabular-v0 answers as on the finished table."""
    import gymnasium as gym

    from nasgen.nb1d import Recipe, build, pack, plan_archs, plan_items, read_rows

    space, recipe = get("nb201"), Recipe(**TINY_RECIPE_FIELDS)
    kwargs, want, _ = _good_seed_build(tmp_path)
    paired = dict.fromkeys(tuple(a) for a, _ in plan_items(plan_archs(space, 6), [0, 1], 2)[:4])
    cut = sum(len(want[c]) for c in paired)  # the build cut after its 2 paired cells, good seeds included
    build(space, "mnist1d", [0, 1], recipe, tmp_path / "cut", stop_after=cut, **kwargs)
    full_path, cut_path = pack(tmp_path / "full", "full"), pack(tmp_path / "cut", "sample")
    manifest = json.loads(cut_path.read_text())
    assert manifest["seeds"] == [0, 1, 2] and manifest["plan"]["good_seeds"] == [0, 1, 2]
    envs = [gym.make("nasgen/Tabular-v0", table=str(path), fill=str(tmp_path / name))
            for path, name in ((full_path, "a"), (cut_path, "b"))]
    for env in envs:
        env.reset(seed=5)
    archs = plan_archs(space, 6)
    for step, k in enumerate((0, 1, 2, 3, 4, 5, 5, 3, 4, 2, 0, 1)):
        for env in envs if step else ():
            env.reset()
        (_, reward, *_, info), (_, reward_cut, *_, info_cut) = (env.step(archs[k]) for env in envs)
        assert reward == pytest.approx(reward_cut, abs=1e-7) and info["seed"] == info_cut["seed"]
        assert info["test_accuracy"] == pytest.approx(info_cut["test_accuracy"], abs=1e-7)
    assert not (tmp_path / "a").exists()
    filled: dict[tuple, list] = {}
    for r in read_rows(tmp_path / "b" / "rows.jsonl"):
        filled.setdefault(tuple(r["arch"]), []).append(r["seed"])
    assert filled and all(sorted(s) == want[c] for c, s in filled.items())  # good cells: 3 seeds, others their plan


def test_a_cell_held_with_fewer_seeds_than_planned_answers_as_on_the_finished_table(tmp_path):
    """A build cut between a cell's seeds (its first seed trained, its paired seed or a good
    cell's extra seeds not yet) packs a table that holds the cell in part. With ``fill``,
    ``Judge`` and ``Tabular-v0`` train the seeds it lacks and answer as the finished table;
    without, the table answers with the seeds it holds."""
    import gymnasium as gym

    from nasgen.nb1d import pack, plan_archs, read_rows

    _, want, full = _good_seed_build(tmp_path)
    space = get("nb201")
    # every cell keeps its first seed; the rest of the first paired cell and of every good cell is cut
    cut_cells = {c for c, s in want.items() if len(s) == 3} | {next(c for c, s in want.items() if len(s) >= 2)}
    kept = [r for r in full if tuple(r["arch"]) not in cut_cells or r["seed"] == want[tuple(r["arch"])][0]]
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "build.json", part / "build.json")
    (part / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    full_path, part_path = pack(tmp_path / "full", "full"), pack(part, "part")
    full_table, part_table = load(full_path), load(part_path)
    fill = tmp_path / "fill"
    plain, filled = ground_truth.Judge(part_table, space), ground_truth.Judge(part_table, space, fill=fill)
    for cell in want:
        n_full = full_table.query(cell)["n_seeds"]
        assert filled.lacks(cell) == (cell in cut_cells) and not ground_truth.Judge(full_table, space).lacks(cell)
        assert plain.judge(cell)["test_accuracy"] == pytest.approx(part_table.query(cell)["mean"]["test_accuracy"])
        assert filled.judge(cell)["test_accuracy"] == pytest.approx(full_table.query(cell)["mean"]["test_accuracy"],
                                                                    abs=1e-7)
        assert part_table.query(cell)["n_seeds"] == (1 if cell in cut_cells else n_full)
    trained = sorted((tuple(r["arch"]), r["seed"]) for r in read_rows(fill / "rows.jsonl"))
    assert trained == sorted((tuple(r["arch"]), r["seed"]) for r in full if r not in kept)  # each cut row, once
    envs = [gym.make("nasgen/Tabular-v0", table=str(path), fill=str(tmp_path / name))
            for path, name in ((full_path, "a"), (part_path, "b"))]
    for env in envs:
        env.reset(seed=3)
    for step, k in enumerate((0, 1, 2, 3, 4, 5, 5, 3, 4, 2, 0, 1)):
        for env in envs if step else ():
            env.reset()
        (_, reward, *_, info), (_, reward_part, *_, info_part) = (env.step(plan_archs(space, 6)[k]) for env in envs)
        assert reward == pytest.approx(reward_part, abs=1e-7) and info["seed"] == info_part["seed"]
        assert info["test_accuracy"] == pytest.approx(info_part["test_accuracy"], abs=1e-7)
    assert not (tmp_path / "a").exists() and len(read_rows(tmp_path / "b" / "rows.jsonl")) == len(trained)
