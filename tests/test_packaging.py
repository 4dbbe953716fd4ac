"""What a reader on Colab gets: a non-editable install, imported from another working directory, has every
stored result of the book, the feature network and every subpackage, and finds nothing next to itself."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import json, os, sys
import sivae_core, sivae_core.results as r
from sivae_core.metrics import load_feature_net
assert "site-packages" in sivae_core.__file__ or os.environ["TARGET"] in sivae_core.__file__, sivae_core.__file__
names = r.available()
records = {n: r.load(n) for n in names}
load_feature_net()
print(json.dumps({"names": names, "provenance": [rec["provenance"]["commit"] for rec in records.values()]}))
"""


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sivae_core").rglob("__init__.py")}
    assert on_disk <= listed, on_disk - listed
    assert "sivae_core.stored_results" in listed


def test_non_editable_install_reads_every_stored_result(tmp_path):
    target, source = tmp_path / "site-packages", tmp_path / "source"
    # From a copy without build artifacts: setuptools reuses ./build, which keeps files deleted since (a removed
    # result would still be installed and the comparison below would fail for the wrong reason).
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "_build", "runs",
                                                                "gpu_carry", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, timeout=600, capture_output=True)
    elsewhere = tmp_path / "colab_content"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SIVAE_RESULTS")}
    env.update(PYTHONPATH=str(target), TARGET=str(target))
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    stored = sorted(p.stem for p in (ROOT / "book" / "results").glob("*.json"))
    assert got["names"] == stored and len(stored) > 10
    assert all(c for c in got["provenance"])


def test_every_stored_result_says_its_budget_and_was_made_by_committed_code():
    """The book prints a budget beside every stored number: each record has one, names a clean commit, and a
    command a reader can rerun (no absolute paths of the machine that made it)."""
    from sivae_core import results

    names = results.available()
    assert names
    for name in names:
        rec = results.load(name)
        line = results.budget_line(rec)
        assert rec["provenance"]["commit"][:7] in line, name
        assert "dirty" not in rec["provenance"]["commit"], f"{name}: made by uncommitted code"
        assert not any(part.startswith("/") for part in rec["provenance"]["command"].split()), \
            f"{name}: command has absolute paths: {rec['provenance']['command']}"
        for png in [rec["histogram"]] if "histogram" in rec else []:
            assert results.resource(png).is_file(), f"{name}: its figure {png} is missing"


def test_budget_line_states_the_fraction_and_refuses_a_record_without_budget():
    from sivae_core.results import budget_block, budget_line

    rec = {"provenance": {"hardware": "CPU x86_64", "commit": "0123456789abc"},
           "budget": budget_block("2,000 of 30,000 iterations, 3 of 5 seeds", 2000 / 30000 * 3 / 5)}
    assert budget_line(rec) == ("2,000 of 30,000 iterations, 3 of 5 seeds (4.0% of the paper's budget); CPU x86_64; "
                                "commit 0123456")
    rec["budget"]["fraction_of_paper"] = 1.0
    assert "(the paper's full budget)" in budget_line(rec)
    del rec["budget"]
    import pytest

    with pytest.raises(KeyError, match="no budget block"):
        budget_line(rec)
