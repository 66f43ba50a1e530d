"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link, a missing
page or a missing API object fails the build), and every Python example of its pages and of
README.md runs.

An example is a fenced ```` ```python ```` block. Each runs in a fresh namespace (as
``__main__``) in a temporary working directory, with one torch thread. A block that must not
run (a long search, a package layout) carries ``<!-- no-test -->`` on the line before its
fence; keep such marks rare.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
NO_TEST = "<!-- no-test -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
#: The two set-up lines CI runs and greps README.md for, verbatim (.ci/run).
SETUP_LINES = ('python -m venv .venv && . .venv/bin/activate && pip install -e . && nasgen search',
               '. .venv/bin/activate && pip install -e ".[dev]" && python -m pytest -q')


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [README]


def code_blocks(path: Path) -> list[tuple[int, str, str, bool]]:
    """``(first line number, language, code, marked no-test)`` of every fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening["indent"], opening["fence"], opening["lang"].lower()
        previous = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        blocks.append((i + 1, lang, textwrap.dedent("\n".join(body)) + "\n", previous == NO_TEST))
        i = j + 1
    return blocks


def examples() -> list[tuple[str, int, str]]:
    return [(str(page.relative_to(ROOT)), line, code) for page in pages()
            for line, lang, code, skipped in code_blocks(page) if lang in ("python", "py") and not skipped]


EXAMPLES = examples()


def test_the_examples_are_found_and_few_are_skipped():
    marked = [(page, line) for page in pages() for line, lang, _, skipped in code_blocks(page)
              if skipped and lang in ("python", "py")]
    assert len(EXAMPLES) >= 8, EXAMPLES
    assert any(page == "README.md" for page, _, _ in EXAMPLES), "README.md lost its library example"
    assert len(marked) <= 3, f"too many examples marked {NO_TEST}: {marked}"
    for page in pages():  # a no-test mark that marks nothing is a typo
        text = page.read_text(encoding="utf-8").splitlines()
        for k, line in enumerate(text):
            if line.strip() == NO_TEST:
                following = next((t for t in text[k + 1:] if t.strip()), "")
                assert FENCE.match(following), f"{page}:{k + 1}: {NO_TEST} is not followed by a code fence"


def test_readme_is_a_front_page_with_the_ci_setup_lines_and_working_links():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; the details belong in docs/"
    for setup in SETUP_LINES:
        assert setup in lines, f"README.md must give, on a line of its own: {setup}"
    # The CPU-only torch step comes before the first install a reader runs.
    assert text.index("download.pytorch.org/whl/cpu") < text.index(SETUP_LINES[0])
    for target in re.findall(r"\]\(((?:docs/)[^)#\s]+)(?:#[^)]*)?\)", text):
        assert (ROOT / target).is_file(), f"README.md links to {target}, which does not exist"


@pytest.fixture()
def one_thread():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("page,line,code", EXAMPLES, ids=[f"{page}:{line}" for page, line, _ in EXAMPLES])
def test_example_runs(page, line, code, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__", "__file__": str(tmp_path / "example.py")}
    exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102  (the docs' own examples)


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for page in ("index.html", "reference/controllers/index.html", "controllers/credit/index.html",
                 "results/ground-truth/index.html", "writing-your-own/index.html"):
        assert (site / page).is_file(), page
    # mkdocstrings rendered the API from the docstrings (an empty page would still build).
    reference = (site / "reference" / "controllers" / "index.html").read_text(encoding="utf-8")
    assert 'id="nasgen.controllers.Controller"' in reference and 'id="nasgen.controllers.make"' in reference
