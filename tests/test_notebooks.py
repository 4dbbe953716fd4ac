"""Structure of every chapter: the conventions a reader relies on, and papermill parameter injection.

nbval executes the notebooks and compares their outputs (``pytest --nbval book``); these checks are the
cheap part: each chapter in the table of contents has its Colab badge and install cell, a ``parameters``
cell with ``FAST = True`` that papermill can override, and the standard sections.
"""

import re
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from execute_notebooks import toc_notebooks  # noqa: E402

NOTEBOOKS = toc_notebooks()


def test_toc_lists_every_chapter_notebook():
    """Every chapter in book/ is in the table of contents (only listed files are built), and vice versa."""
    on_disk = sorted(p.name for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in NOTEBOOKS) == on_disk and len(on_disk) >= 9


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_conventions(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert f"colab.research.google.com/github/introspective-vae/sivae-book/blob/main/book/{path.name}" in first.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source and "pip" in code[0].source, "first code cell installs on Colab"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one papermill parameters cell"
    assert re.search(r"^FAST = True", params[0].source, re.M), "fast mode is the default"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for section in ("## Overview", "## Prerequisites", "## Summary", "## What's next"):
        assert section in text, f"missing section {section!r}"
    assert all(c.get("outputs") is not None for c in code)
    assert any(c.get("outputs") for c in code), "notebooks are stored with their fast-mode outputs"
    drawing = [c for c in code if re.search(r"\bplt\.|\bplot_\w+\(|_figure\(", c.source)]
    figures = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert not drawing or figures, ("the chapter draws but stores no figure: it was executed with MPLBACKEND=Agg "
                                    "(use scripts/execute_notebooks.py, which unsets it)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_injects_full_mode(path, tmp_path):
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters={"FAST": False}, prepare_only=True, kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "FAST = False" in injected[0].source
    order = [c.metadata.get("tags", []) for c in nb.cells]
    assert order.index(["injected-parameters"]) == [i for i, t in enumerate(order) if "parameters" in t][0] + 1
