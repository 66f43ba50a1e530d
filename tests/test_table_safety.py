"""Malformed NAS-Bench-1D tables and build folders are refused with one line, never a traceback.

A table is refused the same way through each way in (``load``, ``nasgen bench info``,
``Tabular-v0``, ``nasgen search --table``); a build folder is never built by two processes at
once, and a rows file with a bad line names the line and can have it moved aside.

Every case starts from a real table (the session's ``tiny_table``: 16 architectures x 2 seeds
x 1 recorded epoch) or its real build folder, copied and then corrupted in its real formats.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import nasgen.envs  # noqa: F401  (registers the ids)
from nasgen.nb1d import METRICS, Recipe, build, load, pack, read_rows
from nasgen.nb1d.build import build_lock, rejected_path, row_check
from nasgen.nb1d.table import SHIPPED_DIR, format_summary
from nasgen.searchspace import CellSearchSpace, get

TINY_SPACE = CellSearchSpace("tiny", ("none", "skip_connect"), n_nodes=1)
TINY_RECIPE = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
#: Longest error line allowed: a value echoed in it is clipped.
MAX_LINE = 500


# --- a table to corrupt --------------------------------------------------------------------------------
def copy_table(manifest: Path, folder: Path) -> Path:
    """``folder/t.json`` + ``t.npz``: a copy of the table of ``manifest``."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".npz"):
        shutil.copy(manifest.with_suffix(suffix), folder / f"t{suffix}")
    return folder / "t.json"


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "t.json").read_text())


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / "t.json").write_text(json.dumps(manifest))


def reseal(folder: Path) -> None:
    """Record the SHA-256 of the current ``t.npz`` in the manifest (a corruption that passes the checksum)."""
    manifest = read_manifest(folder)
    manifest["sha256"] = hashlib.sha256((folder / "t.npz").read_bytes()).hexdigest()
    write_manifest(folder, manifest)


def edit_manifest(edit):
    def corrupt(folder: Path) -> None:
        manifest = read_manifest(folder)
        edit(manifest)
        write_manifest(folder, manifest)
    return corrupt


def set_field(key, value):
    return edit_manifest(lambda m: m.__setitem__(key, value))


def drop_field(key):
    return edit_manifest(lambda m: m.pop(key))


def set_in(key, inner, value):
    return edit_manifest(lambda m: m[key].__setitem__(inner, value))


def edit_arrays(edit):
    def corrupt(folder: Path) -> None:
        with np.load(folder / "t.npz") as data:
            arrays = {k: data[k] for k in data.files}
        edit(arrays)
        np.savez_compressed(folder / "t.npz", **arrays)
        reseal(folder)
    return corrupt


def set_array(key, change):
    return edit_arrays(lambda a: a.__setitem__(key, change(a[key])))


def put(index, value):
    """An array change: ``array[index] = value`` on a copy."""
    def change(array):
        array = array.copy()
        array[index] = value
        return array
    return change


def npz_bytes(make):
    def corrupt(folder: Path) -> None:
        (folder / "t.npz").write_bytes(make((folder / "t.npz").read_bytes()))
        reseal(folder)
    return corrupt


def single_array(_: bytes) -> bytes:
    """A ``.npy`` file (one array) in place of the ``.npz`` archive."""
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def deep_json(folder: Path) -> None:
    (folder / "t.json").write_text("[" * 200_000 + "]" * 200_000)


def deep_field(folder: Path) -> None:
    text = json.dumps(read_manifest(folder))
    (folder / "t.json").write_text(text[:-1] + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}")


#: (id, corruption of a table folder, pattern of the error line). Every corruption is refused.
CASES = [
    # 1, 2: unreadable array files whose SHA-256 the manifest holds
    ("npz-truncated", npz_bytes(lambda b: b[:len(b) // 2]), r"t\.npz is unreadable"),
    ("npz-garbage", npz_bytes(lambda b: np.random.default_rng(0).bytes(len(b))), r"t\.npz is unreadable"),
    ("npz-bit-flips", npz_bytes(lambda b: b[:200] + bytes(x ^ 0x5A for x in b[200:400]) + b[400:]),
     r"t\.npz is unreadable"),
    ("npz-empty", npz_bytes(lambda b: b""), r"t\.npz is unreadable"),
    ("npz-single-array", npz_bytes(single_array), r"t\.npz is unreadable: .*single array"),
    ("npz-object-array", edit_arrays(lambda a: a.__setitem__("seeds", np.array([0, "x"], dtype=object))),
     r"t\.npz is unreadable"),
    # 3: manifest without name or space
    ("no-name", drop_field("name"), r"t\.json: name must be a plain name"),
    ("no-space", drop_field("space"), r"t\.json: space must be an object"),
    ("space-garbage", set_field("space", {"name": "tiny", "choices": "x"}), r"t\.json: space: "),
    ("no-dataset", drop_field("dataset"), r"t\.json: dataset must be a plain name"),
    # 4: a missing array
    ("no-metric", edit_arrays(lambda a: a.pop("test_loss")), r"t\.npz: no array test_loss"),
    ("no-archs", edit_arrays(lambda a: a.pop("archs")), r"t\.npz: no array archs"),
    # 5: shapes that disagree with archs [K, D], seeds [S], epochs [E]
    ("metric-10-rows", set_array("test_accuracy", lambda v: v[:10]),
     r"t\.npz: test_accuracy must have shape \[16, 2, 1\]"),
    ("metric-2d", set_array("val_loss", lambda v: v[:, :, 0]), r"val_loss must have shape \[16, 2, 1\]"),
    ("params-short", set_array("params", lambda v: v[:3]), r"params must have shape \[16\]"),
    ("flops-2d", set_array("flops", lambda v: np.stack([v, v], axis=1)), r"flops must have shape \[16\]"),
    ("train-time-short", set_array("train_time_s", lambda v: v[:, :1]), r"train_time_s must have shape \[16, 2\]"),
    ("built-by-shape", set_array("built_by", lambda v: v[:5]), r"built_by must have shape \[16, 2\]"),
    ("archs-columns", set_array("archs", lambda v: v[:, :3]), r"archs must be \[K, 4\]"),
    ("archs-1d", set_array("archs", lambda v: v.ravel()), r"archs must be \[K, 4\]"),
    ("seeds-2d", set_array("seeds", lambda v: v[None]), r"seeds must be a non-empty vector"),
    ("epochs-empty", set_array("epochs", lambda v: v[:0]), r"epochs must be a non-empty vector"),
    ("metric-ints", set_array("test_accuracy", lambda v: np.zeros(v.shape, dtype=np.int64)),
     r"test_accuracy must hold floats"),
    ("archs-floats", set_array("archs", lambda v: v.astype(np.float32)), r"archs must hold integers"),
    # 6: a manifest nested too deeply for the JSON parser
    ("deep-json", deep_json, r"t\.json is unreadable: nested too deeply"),
    ("deep-json-field", deep_field, r"t\.json is unreadable: nested too deeply"),
    ("manifest-not-utf8", lambda f: (f / "t.json").write_bytes(b"\xff\xfe{"), r"t\.json is unreadable"),
    # 7: missing or wrongly typed fields
    ("no-build-time", drop_field("build_time_s"), r"build_time_s must be a number of seconds"),
    ("build-time-text", set_field("build_time_s", "1h"), r"build_time_s must be a number of seconds"),
    ("no-train-time", drop_field("train_time_s"), r"train_time_s must be a number of seconds"),
    ("cpu-time-text", set_field("cpu_time_s", "x"), r"cpu_time_s must be a number of seconds"),
    ("no-created", drop_field("created"), r"created must be a printable string"),
    ("created-number", set_field("created", 5), r"created must be a printable string"),
    ("no-figures", drop_field("figures"), r"figures must be an object"),
    ("figures-list", set_field("figures", [1, 2]), r"figures must be an object"),
    ("figures-no-best", edit_manifest(lambda m: m["figures"].pop("best")), r"figures lack best"),
    ("figures-text", set_in("figures", "spread", "wide"), r"figures spread must be a number"),
    ("n-archs-text", set_in("figures", "n_archs", "16"), r"figures n_archs must be an integer"),
    ("seed-counts-key", set_in("figures", "seed_counts", {"two": 3}), r"figures seed_counts must map a number of seeds"),
    ("seed-counts-negative", set_in("figures", "seed_counts", {"2": -1}), r"figures seed_counts 2 must be"),
    ("plan-list", set_field("plan", [1]), r"plan must be an object"),
    ("plan-good-text", set_field("plan", {"good_seeds": [0], "good_above": "high"}),
     r"plan good_above must be a test accuracy in \[0, 1\), got 'high'"),
    ("plan-good-alone", set_field("plan", {"good_seeds": [0]}), r"plan good_seeds and good_above go together"),
    ("plan-seed-unknown", set_field("plan", {"seeds": [7]}), r"plan seeds must be distinct seeds of the table's"),
    ("no-recipe", drop_field("recipe"), r"recipe must be an object"),
    ("recipe-text", set_field("recipe", "epochs=1"), r"recipe must be an object"),
    ("recipe-unknown", set_in("recipe", "nope", 1), r"recipe: unknown recipe field 'nope'"),
    ("recipe-record-object", set_in("recipe", "record_epochs", {}), r"recipe: "),
    ("no-versions", drop_field("versions"), r"versions must be an object"),
    ("versions-text", set_field("versions", "torch 2"), r"versions must be an object"),
    ("version-number", set_in("versions", "torch", 2), r"versions\['torch'\] must be a printable string"),
    ("no-seeds", drop_field("seeds"), r"seeds must be a list"),
    ("seeds-text", set_field("seeds", "0,1"), r"seeds must be a list"),
    ("no-errors", drop_field("errors"), r"errors must be a list"),
    ("errors-object", set_field("errors", {}), r"errors must be a list"),
    ("error-bad-entry", set_field("errors", ["boom"]), r"errors\[0\] must be"),
    ("error-arch-outside", set_field("errors", [{"arch": [0, 0, 0, 7], "seed": 0, "error": "x"}]),
     r"errors\[0\]: arch\[3\] = 7 is out of range"),
    ("error-unknown-seed", set_field("errors", [{"arch": [0, 0, 0, 1], "seed": 9, "error": "x"}]),
     r"errors\[0\] must be"),
    ("builds-text", set_field("builds", "cpu"), r"builds must be a list"),
    ("build-device-number", set_field("builds", [{"device": 5, "versions": None, "rows": 1}]),
     r"builds\[0\] device must be a printable string"),
    ("build-rows-missing", set_field("builds", [{"device": "cpu", "versions": None}]),
     r"builds\[0\] rows must be an integer"),
    ("n-rows-text", set_field("n_rows", "32"), r"n_rows must be an integer"),
    ("space-distinct-text", set_field("space_distinct", "16"), r"space_distinct must be an integer"),
    ("sha-number", set_field("sha256", 5), r"sha256 must be 64 hex digits"),
    # 8: absurd values
    ("arch-outside-space", set_array("archs", put((3, 2), 5)), r"archs\[3\] = \[.*\] is not an architecture"),
    ("arch-negative", set_array("archs", put((0, 0), -1)), r"archs\[0\] = \[-1, .*\] is not an architecture"),
    ("archs-duplicate", set_array("archs", put(1, [0, 0, 0, 0])), r"archs holds an architecture twice"),
    ("accuracy-above-1", set_array("test_accuracy", put((0, 0, 0), 1.5)), r"test_accuracy holds values outside"),
    ("accuracy-negative", set_array("val_accuracy", put((2, 1, 0), -0.1)), r"val_accuracy holds values outside"),
    ("accuracy-infinite", set_array("train_accuracy", put((2, 1, 0), np.inf)),
     r"train_accuracy holds values outside"),
    ("loss-negative", set_array("test_loss", put((0, 0, 0), -1.0)), r"test_loss holds values outside"),
    ("params-negative", set_array("params", put(0, -5)), r"params and flops must be counts"),
    ("time-negative", set_array("train_time_s", put((0, 0), -1.0)), r"train_time_s must be seconds"),
    ("built-by-outside", set_array("built_by", put((0, 0), 7)), r"built_by must index the manifest's 1 builds"),
    ("seeds-differ", set_array("seeds", lambda v: v + 1), r"seeds \[1, 2\] are not the manifest's \[0, 1\]"),
    ("epochs-differ", set_array("epochs", lambda v: v + 3), r"epochs \[4\] are not the recipe's record_epochs"),
    ("seeds-repeated", set_field("seeds", [0, 0]), r"seeds must be unique"),
    ("seed-negative", set_field("seeds", [-1, 1]), r"each seed must be an integer >= 0"),
    ("seed-bool", set_field("seeds", [True, 1]), r"each seed must be an integer >= 0"),
    ("seed-float", set_field("seeds", [0.5, 1]), r"each seed must be an integer >= 0"),
    ("seeds-too-many", set_field("seeds", list(range(5000))), r"seeds must be a list of 1 to 1000 seeds"),
    ("recipe-epochs-0", set_in("recipe", "epochs", 0), r"recipe: Recipe\.epochs must be an int >= 1"),
    ("recipe-lr-negative", set_in("recipe", "lr", -1.0), r"recipe: Recipe\.lr must be a finite number"),
    ("recipe-epochs-huge", edit_manifest(lambda m: m["recipe"].update(epochs=100_000, record_epochs=[100_000])),
     r"recipe epochs=100000 is beyond the bound of 10000"),
    ("recipe-train-size-huge", set_in("recipe", "train_size", 10 ** 8), r"recipe train_size=100000000 is beyond"),
    ("recipe-width-huge", set_in("recipe", "C", 10 ** 6), r"recipe C=1000000 is beyond the bound"),
    ("recipe-data-seed-text", set_in("recipe", "data_seed", "zero"), r"recipe data_seed must be an integer"),
    ("recipe-data-options-huge", set_in("recipe", "data_options", {"x": "y" * 10_000}),
     r"recipe data_options are longer than 1000"),
    ("name-10mb", set_field("name", "n" * 10_000_000), r"name must be a plain name.*'nnnn.*\.\.\."),
    ("name-slash", set_field("name", "a/b"), r"name must be a plain name"),
    ("name-newline", set_field("name", "a\nb"), r"name must be a plain name"),
    ("name-dotdot", set_field("name", ".."), r"name must be a plain name"),
    ("space-name-10mb", set_in("space", "name", "s" * 10_000_000), r"space name must be a plain name"),
    ("created-10mb", set_field("created", "c" * 10_000_000), r"created must be a printable string of at most"),
    ("version-10mb", set_in("versions", "torch", "v" * 10_000_000), r"versions\['torch'\] must be a printable"),
    ("figure-huge", set_in("figures", "best", 1e300), r"figures best must be a number in \[0, 1\]"),
    ("spearman-outside", set_in("figures", "spearman_all", 3.0), r"figures spearman_all must be a number in \[-1, 1\]"),
    ("build-time-huge", set_field("build_time_s", 1e300), r"build_time_s must be a number of seconds"),
    ("n-rows-above-cells", set_field("n_rows", 33), r"n_rows 33 exceeds the 16 x 2 cells"),
]


@pytest.fixture
def broken(tiny_table, tmp_path, request):
    """``(table argument, pattern)``: a copy of the tiny table with the case's corruption."""
    _, corrupt, pattern = request.param
    manifest = copy_table(tiny_table, tmp_path / "table")
    corrupt(manifest.parent)
    return str(manifest), pattern


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text[:2000]
    assert len(lines[0]) < MAX_LINE, lines[0][:2000]
    return lines[0]


def assert_refused_everywhere(table: str, pattern: str, tmp_path: Path, capsys) -> None:
    """``table`` is refused with one line matching ``pattern`` by load, bench info, Tabular-v0 and search."""
    import re

    from nasgen.cli import main

    with pytest.raises(ValueError) as caught:
        load(table)
    assert re.search(pattern, one_line(str(caught.value))), str(caught.value)[:1000]
    with pytest.raises(ValueError) as caught:
        gym.make("nasgen/Tabular-v0", table=table)
    assert re.search(pattern, one_line(str(caught.value))), str(caught.value)[:1000]
    capsys.readouterr()
    assert main(["bench", "info", table]) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("nasgen bench: error: ") and re.search(pattern, line), line
    assert captured.out == ""
    logdir = tmp_path / "runs"
    assert main(["search", "--table", table, "--space", "nb201", "--dataset", "mnist1d", "--steps", "1",
                 "--warmup-epochs", "0", "--no-progress", "--logdir", str(logdir)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("nasgen search: error: ") and re.search(pattern, line), line
    assert not logdir.exists() or not any(logdir.iterdir())


@pytest.mark.parametrize("broken", CASES, ids=[c[0] for c in CASES], indirect=True)
def test_a_malformed_table_is_one_line_everywhere(broken, tmp_path, capsys):
    table, pattern = broken
    assert_refused_everywhere(table, pattern, tmp_path, capsys)


def test_the_untouched_copy_loads_everywhere(tiny_table, tmp_path, capsys):
    """The cases' starting point is a good table: each refusal above is the corruption's."""
    from nasgen.cli import main

    table = str(copy_table(tiny_table, tmp_path / "table"))
    assert load(table).name == "tiny"
    gym.make("nasgen/Tabular-v0", table=table).close()
    assert main(["bench", "info", table]) == 0
    assert "table tiny: space tiny" in capsys.readouterr().out
    assert main(["search", "--table", table, "--space", "nb201", "--dataset", "mnist1d", "--steps", "1",
                 "--warmup-epochs", "0", "--no-progress", "--logdir", str(tmp_path / "runs")]) == 2
    assert "table 'tiny' was trained on dataset 'digits'" in capsys.readouterr().err  # another task: not malformed


def test_a_table_name_resolves_only_in_the_shipped_folder(tiny_table, tmp_path, capsys):
    """A name with a path in it is not looked up outside ``SHIPPED_DIR``; a path needs its suffix."""
    manifest = copy_table(tiny_table, tmp_path / "x")
    outside = os.path.relpath(manifest.with_suffix(""), SHIPPED_DIR)
    assert outside.startswith("..")
    assert_refused_everywhere(outside, r"give a table's path as its \.json or \.npz file", tmp_path, capsys)
    assert_refused_everywhere(str(manifest.with_suffix("")), r"give a table's path", tmp_path, capsys)
    assert_refused_everywhere(str(tmp_path / "missing.json"), r"no table file .*missing\.json", tmp_path, capsys)
    for name in ("..", "a\\b", "n" * 1000):
        with pytest.raises(ValueError, match="no table") as caught:
            load(name)
        one_line(str(caught.value))
    assert load(manifest.with_suffix(".npz")).name == "tiny"  # a path, given as one, still loads


def test_bench_info_prints_a_manifest_without_its_optional_fields(tiny_table, tmp_path, capsys):
    """Tables packed before ``builds``, ``space_distinct``, ``cpu_time_s`` and some figures were recorded."""
    from nasgen.cli import main

    folder = copy_table(tiny_table, tmp_path / "t").parent

    def strip(m):
        for key in ("builds", "space_distinct", "cpu_time_s"):
            m.pop(key)
        for key in ("n_paired", "seed_gap", "val_test_spearman"):
            m["figures"].pop(key, None)
    edit_manifest(strip)(folder)
    edit_arrays(lambda a: a.pop("built_by"))(folder)
    assert main(["bench", "info", str(folder / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "16 distinct architectures x seeds [0, 1], 0 failed rows" in out and "trained on" not in out
    assert "nan CPU s per training" in out
    assert format_summary(load(folder / "t.json").manifest) in out


# --- build folders ----------------------------------------------------------------------------------------
def copy_build(tiny_table: Path, dest: Path) -> Path:
    """A copy of the tiny table's build folder (its build.json and rows.jsonl, 32 finished rows)."""
    shutil.copytree(tiny_table.parent, dest, ignore=shutil.ignore_patterns("tiny.*", "build.lock"))
    return dest


def rows_lines(folder: Path) -> list[str]:
    return (folder / "rows.jsonl").read_text().splitlines()


def write_lines(folder: Path, lines: list[str]) -> None:
    (folder / "rows.jsonl").write_text("".join(line + "\n" for line in lines))


BUILD_SCRIPT = """
import sys
from nasgen.nb1d import Recipe, build
from nasgen.searchspace import CellSearchSpace
space = CellSearchSpace("tiny", ("none", "skip_connect"), n_nodes=1)
recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
try:
    build(space, "digits", [0], recipe, sys.argv[1], local=True, progress=False)
except ValueError as error:
    print(error, file=sys.stderr)
    sys.exit(3)
"""


def test_a_second_build_of_a_folder_in_use_is_refused_before_it_writes(tmp_path):
    """The first process holds the folder (``build_lock``); a second, real process building into
    it is refused in one line with the holder's pid and writes nothing."""
    out = tmp_path / "out"
    with build_lock(out):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(out)], capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode == 3, proc.stderr[-2000:]
        assert one_line(proc.stderr) == f"build folder {out} is in use by another build (pid {os.getpid()})"
        assert sorted(p.name for p in out.iterdir()) == ["build.lock"]
        with pytest.raises(ValueError, match=r"is in use by another build \(pid \d+\)"):
            build(TINY_SPACE, "digits", [0], TINY_RECIPE, out, local=True, progress=False)
    assert not out.exists()  # the folder held only the lock: a refused start leaves nothing


def test_pack_refuses_a_folder_being_built(tiny_table, tmp_path, capsys):
    from nasgen.cli import main

    out = copy_build(tiny_table, tmp_path / "b")
    with build_lock(out):
        with pytest.raises(ValueError, match="is in use by another build"):
            pack(out, "t")
        assert not (out / "t.json").exists()
    assert load(pack(out, "t")).name == "t"  # released at the end of the with
    assert (out / "build.lock").exists()
    with pytest.raises(ValueError, match="a table name must be a plain name"):
        pack(out, "a/b")
    with pytest.raises(ValueError, match="is not a build folder"):
        pack(tmp_path / "nothing", "t")
    assert main(["bench", "info", str(out / "t.json")]) == 0


def test_a_corrupt_row_line_is_named_and_can_be_moved_aside(tiny_table, tmp_path):
    out = copy_build(tiny_table, tmp_path / "b")
    lines = rows_lines(out)
    bad = '{"arch": [0, 0, 0, 1], "seed": ,'
    write_lines(out, lines[:6] + [bad] + lines[6:])
    with pytest.raises(ValueError) as caught:
        read_rows(out / "rows.jsonl")
    message = one_line(str(caught.value))
    assert message.startswith(f"{out / 'rows.jsonl'} line 7 is not a JSON row: Expecting value"), message
    assert "--move-bad-rows" in message
    with pytest.raises(ValueError, match="rows.jsonl line 7 is not a JSON row"):
        pack(out, "t")
    with pytest.raises(ValueError, match="rows.jsonl line 7 is not a JSON row"):
        build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, out, local=True, progress=False)
    with open(out / "rows.jsonl", "a") as f:
        f.write('{"arch": [1, 0')  # the torn last line of a killed build: silently cut off
    rows = build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, out, local=True, progress=False, move_bad_rows=True)
    assert len(rows) == len(lines) == 32  # every good row kept, nothing to train again
    assert rejected_path(out / "rows.jsonl").read_text() == bad + "\n"
    assert rows_lines(out) == lines + ['{"arch": [1, 0']
    read_rows(out / "rows.jsonl", repair=True)
    assert rows_lines(out) == lines
    with open(out / "rows.jsonl", "a") as f:
        f.write("[1, 2]\n\n\"text\"\n")
    assert len(read_rows(out / "rows.jsonl", move_bad_lines=True)) == 32
    assert rejected_path(out / "rows.jsonl").read_text().splitlines() == [bad, "[1, 2]", '"text"']  # appended
    assert load(pack(out, "t")).name == "t"


def finished_row(arch, seed, value=0.5):
    return {"arch": arch, "seed": seed, "epochs": [1], **{m: [value] for m in METRICS}, "params": 10, "flops": 20,
            "train_time_s": 0.1, "cpu_time_s": 0.1, "error": None, "session": 0, "time": time.time()}


#: (id, bad row, pattern): rows ``pack`` cannot use, found when the rows are read.
BAD_ROWS = [
    ("no-metrics", {**finished_row([0, 0, 0, 1], 0), "test_accuracy": []}, r"test_accuracy must be 1 numbers"),
    ("metric-missing", {k: v for k, v in finished_row([0, 0, 0, 1], 0).items() if k != "val_loss"},
     r"val_loss must be 1 numbers"),
    ("metric-text", finished_row([0, 0, 0, 1], 0, "high"), r"train_accuracy must be 1 numbers"),
    ("accuracy-above-1", finished_row([0, 0, 0, 1], 0, 2.0), r"train_accuracy \[2\.0\] is outside \[0, 1\]"),
    ("arch-short", finished_row([0, 0, 1], 0), r"arch: architecture for space 'tiny' must be a vector of 4"),
    ("arch-outside", finished_row([0, 0, 0, 3], 0), r"arch: arch\[3\] = 3 is out of range"),
    ("arch-missing", {k: v for k, v in finished_row([0, 0, 0, 1], 0).items() if k != "arch"}, r"arch: "),
    ("seed-unknown", finished_row([0, 0, 0, 1], 5), r"seed 5 is not one of the build's seeds \[0, 1\]"),
    ("seed-text", finished_row([0, 0, 0, 1], "0"), r"seed '0' is not one of the build's seeds"),
    ("no-train-time", {**finished_row([0, 0, 0, 1], 0), "train_time_s": None}, r"train_time_s must be a number"),
    ("params-text", {**finished_row([0, 0, 0, 1], 0), "params": "10"}, r"params must be a count or null"),
    ("time-text", {**finished_row([0, 0, 0, 1], 0), "time": "now"}, r"time must be a finite number or null"),
    ("error-number", {"arch": [0, 0, 0, 1], "seed": 0, "error": 5}, r"error must be a string or null"),
]


@pytest.mark.parametrize("row, pattern", [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_a_row_pack_cannot_use_is_found_before_training(tiny_table, tmp_path, row, pattern):
    out = copy_build(tiny_table, tmp_path / "b")
    lines = rows_lines(out)
    write_lines(out, lines[:2] + [json.dumps(row)] + lines[2:-4])  # 4 rows to train again
    before = ((out / "rows.jsonl").read_bytes(), (out / "build.json").read_bytes())
    check = row_check(TINY_SPACE, [0, 1], TINY_RECIPE)
    with pytest.raises(ValueError, match=r"rows\.jsonl line 3 is not a row of this build: " + pattern) as caught:
        read_rows(out / "rows.jsonl", check=check)
    one_line(str(caught.value))
    with pytest.raises(ValueError, match=r"rows\.jsonl line 3 is not a row of this build: " + pattern):
        pack(out, "t")
    with pytest.raises(ValueError, match=r"rows\.jsonl line 3 is not a row of this build: " + pattern):
        build(TINY_SPACE, "digits", [0, 1], TINY_RECIPE, out, local=True, progress=False)
    assert ((out / "rows.jsonl").read_bytes(), (out / "build.json").read_bytes()) == before  # nothing trained
    assert not (out / "t.json").exists()
    assert len(read_rows(out / "rows.jsonl", move_bad_lines=True, check=check)) == len(lines) - 4
    assert json.loads(rejected_path(out / "rows.jsonl").read_text()) == row


def test_cli_build_names_a_bad_row_line_and_moves_it_with_the_flag(tmp_path, capsys):
    """``nasgen bench build`` on a finished one-architecture build (rows written in the real
    format, nothing to train) with a corrupt line: exit 2 naming the line, then
    ``--move-bad-rows`` moves it aside and packs."""
    from nasgen.cli import main
    from nasgen.nb1d import plan_archs

    space = get("small")
    (arch,) = plan_archs(space, 1).tolist()
    out = tmp_path / "b"
    out.mkdir()
    settings = {"space": space.to_dict(), "dataset": "digits", "seeds": [0], "recipe": TINY_RECIPE.to_dict(),
                "limit_archs": 1, "sessions": [{"started": time.time() - 1}]}
    (out / "build.json").write_text(json.dumps(settings))
    write_lines(out, ["{not json", json.dumps(finished_row(arch, 0))])
    argv = ["bench", "build", "--space", "small", "--dataset", "digits", "--seeds", "1", "--limit-archs", "1",
            "--local", "--no-progress", "--out", str(out), "--name", "t", "--recipe",
            *(f"{k}={v}" for k, v in (("train_size", 64), ("val_size", 64), ("test_size", 64), ("epochs", 1),
                                       ("batch_size", 32), ("C", 2)))]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"nasgen bench: error: {out / 'rows.jsonl'} line 1 is not a JSON row"), line
    assert main([*argv, "--move-bad-rows"]) == 0
    assert "table t: space small, dataset digits, 1 distinct architectures" in capsys.readouterr().out
    assert (out / "rows.rejected.jsonl").read_text() == "{not json\n"
    assert load(out / "t.json").manifest["n_rows"] == 1
    with build_lock(out):
        assert main(argv) == 2
        assert "is in use by another build" in one_line(capsys.readouterr().err)
    assert main([*argv[:-13], "--name", "a\nb"]) == 2
    assert "--name must be a plain name" in one_line(capsys.readouterr().err)
