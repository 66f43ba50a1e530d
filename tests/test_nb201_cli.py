"""``nasgen search/retrain`` on the NAS-Bench-201 cell and MNIST-1D, as a user types them."""

import json

import pytest

from nasgen import controllers
from nasgen.cli import main

TINY_NB201 = ["--space", "nb201", "--dataset", "mnist1d", "--warmup-epochs", "0", "--no-progress",
              "--env-kwargs", "C=4", "n_cells=1", "batch_size=32", "limit=64"]


def only_run(logdir):
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# ~5 s each on 2 busy cores (most of it drawing the op-probability heatmaps): the default run
# keeps one controller per mode (single path with Taylor credit, [E, J] weights, black box);
# ``-m slow`` runs all ten.
FAST = ("credit", "darts", "random")


@pytest.mark.parametrize("controller", [c if c in FAST else pytest.param(c, marks=pytest.mark.slow)
                                        for c in controllers.names()])
def test_every_controller_searches_nb201_on_mnist1d(controller, tmp_path, capsys):
    assert main(["search", "--controller", controller, "--steps", "20", "--logdir", str(tmp_path),
                 *TINY_NB201]) == 0
    result = json.loads((only_run(tmp_path) / "result.json").read_text())
    assert result["steps"] == 20 and len(result["derived_arch"]) == 6
    assert result["space"]["name"] == "nb201" and result["config"]["env_kwargs"]["dataset"] == "mnist1d"
    # The derived cell prints and parses as a NAS-Bench-201 string.
    assert result["genotype"] == result["architecture"] and result["genotype"].count("~") == 6
    assert result["genotype"] in capsys.readouterr().out
    assert result["score"] < 0


def test_credit_estimators_run_on_nb201(tmp_path):
    for credit in ("exact", "hybrid"):
        assert main(["search", "--controller", "credit", "--steps", "5", "--logdir", str(tmp_path / credit),
                     *TINY_NB201, f"credit={credit}"]) == 0


def test_nb201_run_retrains_on_images_and_its_string_file_on_signals(tmp_path, capsys):
    assert main(["search", "--controller", "random", "--steps", "3", "--logdir", str(tmp_path / "runs"),
                 *TINY_NB201]) == 0
    run_dir = only_run(tmp_path / "runs")
    # The run's arch retrains on 2-D digits (the ops follow the data) ...
    assert main(["retrain", str(run_dir), "--dataset", "digits", "--epochs", "1", "--channels", "4",
                 "--cells", "1", "--limit", "64", "--no-progress"]) == 0
    record = json.loads((run_dir / "retrain" / "retrain.json").read_text())
    assert record["dataset"] == "digits" and record["architecture"].startswith("|")
    # ... and genotype.txt, which holds the NAS-Bench-201 string, retrains on MNIST-1D.
    text = (run_dir / "genotype.txt").read_text().strip()
    assert text.startswith("|") and "\n" not in text
    out = tmp_path / "from-string"
    assert main(["retrain", str(run_dir / "genotype.txt"), "--dataset", "mnist1d", "--epochs", "1",
                 "--channels", "4", "--cells", "1", "--limit", "64", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "retrain.json").read_text())["architecture"] == text
    # Without --cells an nb201 cell retrains with NAS-Bench-201's N = 5 cells per stage.
    assert main(["retrain", str(run_dir / "genotype.txt"), "--dataset", "mnist1d", "--epochs", "1",
                 "--channels", "4", "--limit", "64", "--out", str(tmp_path / "n5"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "n5" / "retrain.json").read_text())["cells"] == 5


def test_darts_genotype_retrains_on_1d_signals(tmp_path):
    from nasgen.searchspace import DARTS_V2

    path = tmp_path / "darts_v2.json"
    path.write_text(json.dumps({"space": "darts", "genotype": DARTS_V2._asdict()}))
    assert main(["retrain", str(path), "--dataset", "mnist1d", "--epochs", "1", "--channels", "4",
                 "--cells", "3", "--limit", "64", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    record = json.loads((tmp_path / "out" / "retrain.json").read_text())
    assert record["dataset"] == "mnist1d" and 0.0 <= record["test_accuracy"] <= 1.0


@pytest.mark.parametrize("argv,message", [
    (["search", "--space", "nb202"], "unknown search space 'nb202'; choose from: darts, small, nb201, nb201-nozero"),
    (["search", "--dataset", "mnist2d"], "unknown dataset 'mnist2d'; choose from: digits, cifar10, mnist, "
                                         "fashion_mnist, mnist1d"),
    (["search", "--dataset", "mnist1d", "--env-kwargs", "dataset_options={'n_test':5}"],
     "test split would hold 5 signals"),
    (["search", "--dataset", "digits", "--env-kwargs", "dataset_options={'n_test':50}"],
     "dataset 'digits' takes no options"),
    (["retrain", "ARCH", "--dataset", "mnist1d", "--cutout", "4"], "augment images; mnist1d holds 1-D signals"),
])
def test_bad_names_and_sizes_exit_2_with_one_line(argv, message, tmp_path, capsys):
    arch = tmp_path / "arch.txt"
    arch.write_text("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|\n")
    argv = [str(arch) if a == "ARCH" else a for a in argv]
    if argv[0] == "search":
        argv += ["--logdir", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_list_shows_mnist1d_and_the_nb201_spaces(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist1d", "nb201", "nb201-nozero"):
        assert f"  {name}\n" in out
