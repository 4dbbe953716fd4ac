"""The style benchmark's ``--json`` record carries the budget block every stored result needs."""

import importlib.util
from pathlib import Path

from sivae_core.results import budget_line

ROOT = Path(__file__).resolve().parents[1]


def test_bench_style_record_has_a_budget_block():
    spec = importlib.util.spec_from_file_location("bench_style", ROOT / "benchmarks" / "bench_style.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rec = {"provenance": {"hardware": "CPU", "commit": "0123456789"}, **bench.record({"preset": "cpu32"}, 8)}
    assert rec["budget"] == {"description": "benchmark: timed training steps, no training result",
                             "fraction_of_paper": None}
    assert budget_line(rec) == "benchmark: timed training steps, no training result; CPU; commit 0123456"
