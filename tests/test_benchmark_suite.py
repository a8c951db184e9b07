"""The one-command benchmark runner (`benchmarks/run_all.py`): output parsing and the report.

The benchmarks themselves are not run here (they measure; tests check behaviour), except the
cheapest one end to end, so that the runner's contract with a real script is checked.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run_all.py"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="no benchmarks/ here (an sdist)")


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_json_object_is_found_before_or_after_the_tables(run_all: ModuleType) -> None:
    obj = {"benchmark": "x", "nested": {"a": [1, 2]}}
    text = json.dumps(obj, indent=2)
    tables = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert run_all.split_output(f"{text}\n\n{tables}\n") == (obj, tables)
    assert run_all.split_output(f"# Title\n{tables}\n\n{text}\n") == (obj, f"# Title\n{tables}")
    # A line starting with "{" that is not JSON is skipped.
    assert run_all.split_output("{not json\n" + text) == (obj, "{not json")
    with pytest.raises(ValueError, match="no JSON object"):
        run_all.split_output("only a table\n")


def test_a_headline_that_cannot_be_read_does_not_break_the_report(run_all: ModuleType) -> None:
    entry: dict[str, Any] = {
        "what": "w",
        "command": "python benchmarks/fuzz.py",
        "started": "2026-01-01 00:00 UTC",
        "commit": "abc",
        "seconds": 1.0,
        "exit_code": 0,
        "result": {"unexpected": True},
        "markdown": "# Own heading\n| a |\n|---|\n| 1 |",
    }
    failed = {**entry, "exit_code": 2, "error": "Traceback: boom"}
    del failed["result"]
    suite = {
        "started": "2026-01-01 00:00 UTC",
        "commit": "abc",
        "quick": False,
        "machine": {"cpu": "cpu", "cpu_count": 2, "python": "3.11"},
        "benchmarks": {"fuzz": entry, "tokens": failed},
    }
    text = run_all.report(suite)
    assert "(no headline: KeyError: 'cases')" in text
    assert "failed (exit 2)" in text and "Traceback: boom" in text
    assert "#### Own heading" in text  # scripts' headings sit under the suite's own
    assert "[fuzz](#fuzz)" in text and "### fuzz" in text


def test_unknown_benchmark_names_are_refused(run_all: ModuleType) -> None:
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"])


def test_one_real_benchmark_end_to_end_and_only_merges(run_all: ModuleType, tmp_path: Path) -> None:
    kept = {
        "what": "kept",
        "command": "python benchmarks/fuzz.py",
        "started": "2026-01-01 00:00 UTC",
        "commit": "abc",
        "seconds": 1.0,
        "exit_code": 0,
        "result": {"cases": 5, "failed_tests": 0},
    }
    earlier = {"benchmarks": {"fuzz": kept}}
    (tmp_path / "latest.json").write_text(json.dumps(earlier))
    assert run_all.main(["--only", "bfcl", "--out", str(tmp_path)]) == 0
    suite = json.loads((tmp_path / "latest.json").read_text())
    bfcl = suite["benchmarks"]["bfcl"]
    assert bfcl["exit_code"] == 0 and bfcl["result"]["total"]["functions"] > 1000
    assert suite["benchmarks"]["fuzz"]["what"] == "kept"  # --only keeps the others' results
    assert list(suite["benchmarks"]) == ["bfcl", "fuzz"]  # in the suite's order
    markdown = (tmp_path / "latest.md").read_text()
    assert "strict-rule violations" in markdown and "### bfcl" in markdown
    assert "5 cases, 0 failed" in markdown
