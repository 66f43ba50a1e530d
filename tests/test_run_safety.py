"""Runs never collide and nothing is lost: exclusive run directories, strict JSON results."""

import json
import math
import os
import subprocess
import sys
import threading

from nasgen import jsonfile
from nasgen.cli.search import make_run_dir
from nasgen.config import SearchConfig

SUBPROCESS_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_run_directories_are_created_exclusively(tmp_path):
    config = SearchConfig(env="nasgen/OneShotNAS-v0", controller="random", seed=0)
    barrier = threading.Barrier(8)
    made = []

    def start():
        barrier.wait()  # all in the same second, so all want the same name
        made.append(make_run_dir(str(tmp_path / "logs"), config))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(path.is_dir() for path in made)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == sorted(p.name for p in made)


def test_two_searches_started_together_end_in_two_directories(tmp_path):
    argv = [sys.executable, "-m", "nasgen", "search", "--steps", "2", "--warmup-epochs", "0", "--controller",
            "random", "--env-kwargs", "C=4", "n_cells=3", "limit=64", "batch_size=16", "--logdir",
            str(tmp_path), "--no-progress"]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=SUBPROCESS_ENV) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert strict_loads((run / "result.json").read_text())["steps"] == 2
        assert len(list(run.glob("events.out.tfevents.*"))) == 1 and (run / "checkpoint.pt").is_file()
    assert {str(run) for run in runs} == {out.split("results: ")[1].split()[0] for out, _ in outputs}


def test_json_files_are_strict_and_flag_nonfinite_values(tmp_path):
    record = {"score": math.nan, "best": -math.inf, "steps": 3, "config": {"lr": math.inf, "ok": 0.5},
              "rows": [{"x": 1.0}, {"x": math.nan}]}
    text = jsonfile.dumps(record)
    data = strict_loads(text)
    assert data["score"] is None and data["best"] is None and data["config"] == {"lr": None, "ok": 0.5}
    assert data["nonfinite"] == ["best", "config.lr", "rows[1].x", "score"]
    assert "nonfinite" not in strict_loads(jsonfile.dumps({"score": 1.0}))
    assert record["score"] != record["score"]  # the caller's record is left as it was


def test_a_nonfinite_score_writes_valid_result_json(tmp_path):
    from nasgen.search import Search, SearchConfig

    search = Search(SearchConfig(controller="random", env="nasgen/TeacherArch-v0", steps=2,
                                 env_kwargs={"n_edges": 3, "n_ops": 3}), tmp_path / "run")
    (tmp_path / "run").mkdir()
    search._start(None, None)
    search.env.unwrapped.score = lambda arch: math.nan  # a diverged supernet scores NaN
    result = search.finish()
    assert math.isnan(result["score"])
    written = strict_loads((tmp_path / "run" / "result.json").read_text())
    assert written["score"] is None and written["nonfinite"] == ["score"]


def test_a_diverged_retrain_writes_valid_retrain_json(tmp_path, capsys):
    from nasgen.cli import main
    from nasgen.searchspace import DARTS_V2

    genotype = tmp_path / "g.json"
    genotype.write_text(json.dumps({"genotype": DARTS_V2._asdict(), "space": "darts"}))
    assert main(["retrain", str(genotype), "--epochs", "1", "--channels", "4", "--cells", "3", "--limit", "64",
                 "--lr", "1e12", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    record = strict_loads((tmp_path / "out" / "retrain.json").read_text())
    assert "test_loss" in record["nonfinite"] and record["test_loss"] is None
