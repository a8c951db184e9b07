"""A long run of the model-output fuzz tests: many more Hypothesis examples than the test suite.

``tests/pressure/test_fuzz_model_output.py`` drives malformed model output (arguments that are
not JSON, truncated JSON, wrong types, extra fields, unknown or other-intent tool names,
duplicate and missing call ids, empty replies, control characters, lone surrogates, deep
nesting, 1 MB arguments, raw bodies no server should send) through the whole agent loop, in
process and over HTTP, on asyncio and trio. Every case must end in a typed error sent to the
model or a typed `RunError`, with the transcript complete, and never hang. The suite runs 150
examples per property (40 over HTTP); this script runs the same file with
``INTENTFLOW_FUZZ_EXAMPLES`` set higher, in a child ``pytest`` process, once per round with a
different Hypothesis seed, and counts the cases that ran.

Cases counted: each property's passing examples, as Hypothesis reports them per test (one
test per backend), plus each explicit parametrized case (one pytest item each). A failure
exits non-zero and prints pytest's report, which holds the falsifying example.

    python benchmarks/fuzz.py                        # 1,500 examples per property (~5 min)
    python benchmarks/fuzz.py --examples 5000 --rounds 3
    python benchmarks/fuzz.py --quick                # a smoke run
    python benchmarks/fuzz.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions

ROOT = Path(__file__).resolve().parent.parent
TESTS = "tests/pressure/test_fuzz_model_output.py"
_TEST = re.compile(r"^(\S+::\S+):$")
_PASSING = re.compile(r"- (\d+) passing, (\d+) failing")
_PASSED = re.compile(r"(\d+) passed")
_FAILED = re.compile(r"(\d+) failed")


def run_round(examples: int, seed: int) -> dict[str, Any]:
    """One pytest run of the fuzz file; what it ran and whether it passed."""
    env = {**os.environ, "INTENTFLOW_FUZZ_EXAMPLES": str(examples)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        TESTS,
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        f"--hypothesis-seed={seed}",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    out = done.stdout
    generated: dict[str, int] = {}
    failing = 0
    test = None
    for line in out.splitlines():
        if match := _TEST.match(line.strip()):
            test = match.group(1)
        elif (match := _PASSING.search(line)) and test is not None:
            # A test's phases (generate, shrink) each report; the passing ones add up.
            generated[test] = generated.get(test, 0) + int(match.group(1))
            failing += int(match.group(2))
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    passed = int(m.group(1)) if (m := _PASSED.search(summary)) else 0
    failed = int(m.group(1)) if (m := _FAILED.search(summary)) else 0
    explicit = passed - sum(1 for _ in generated)  # the property tests are pytest items too
    return {
        "seed": seed,
        "examples_setting": examples,
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        "property_tests": len(generated),
        "property_cases": sum(generated.values()),
        "explicit_cases": max(explicit, 0),
        "cases": sum(generated.values()) + max(explicit, 0),
        "failed_tests": failed,
        "failing_examples": failing,
        "per_property": generated,
        "report": out[-6000:] + done.stderr[-2000:] if done.returncode != 0 else "",
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a result of this script."""
    rows = [
        [
            r["seed"],
            f"{r['examples_setting']:,}",
            f"{r['property_cases']:,}",
            f"{r['explicit_cases']:,}",
            f"{r['cases']:,}",
            r["failed_tests"],
            r["seconds"],
        ]
        for r in result["rounds"]
    ]
    rows.append(["total", "", "", "", f"{result['cases']:,}", result["failed_tests"], ""])
    header = ["seed", "examples/property", "drawn cases", "explicit", "cases", "failed", "s"]
    return markdown_table(header, rows, "rrrrrrr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1500, help="examples per property")
    parser.add_argument("--rounds", type=int, default=1, help="runs, each with its own seed")
    parser.add_argument("--seed", type=int, default=20261124, help="the first round's seed")
    parser.add_argument("--quick", action="store_true", help="a smoke run (20 examples)")
    parser.add_argument("--json", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.rounds = 20, 1
    rounds = [run_round(args.examples, args.seed + i) for i in range(args.rounds)]
    result: dict[str, Any] = {
        "benchmark": "fuzz",
        "machine": machine_info(),
        "packages": package_versions(["intentflow", "openai", "hypothesis"]),
        "rounds": rounds,
        "cases": sum(r["cases"] for r in rounds),
        "failed_tests": sum(r["failed_tests"] for r in rounds),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print()
    print(markdown(result))
    for r in rounds:
        if r["exit_code"] != 0:
            print(f"\nround with seed {r['seed']} failed:\n{r['report']}", file=sys.stderr)
    return 0 if all(r["exit_code"] == 0 for r in rounds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
