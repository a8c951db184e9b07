"""How the strict-schema compiler and the validator fare on real function definitions (BFCL).

For each of the five non-live BFCL v4 files, every function definition is converted from BFCL's
dialect, built as a tool and compiled for OpenAI strict mode; the strict schemas are checked
against strict mode's rules by an independent checker; and every expected call is sent as a
strict-mode model would send it (``null`` for what it leaves out) and validated.

Usage::

    python benchmarks/bfcl_report.py [--data DIR] [--json]

``--data`` defaults to ``../shared/data/bfcl`` beside the checkout. The report is a Markdown
table followed by the same numbers as one JSON object; with ``--json`` only the JSON object is
printed. The exit status is 1 when an emitted strict schema breaks a strict-mode rule (that is a
compiler bug), else 0. Failed answers do not change it: BFCL has a few expected calls that
contradict their own schema.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import structlog

from intentflow.errors import InvalidToolArguments, StrictSchemaWarning
from intentflow.testing.bfcl import bfcl_tool, drop_nulls, load_bfcl_cases, strict_answer
from intentflow.testing.strict_rules import strict_violations

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "bfcl"
FILES = tuple(
    f"BFCL_v4_{c}.json"
    for c in ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
)
SHOWN_FAILURES = 5


def _kind(entry: str) -> str:
    """``"/properties/x: what happened"`` -> ``"what happened"`` (paths vary, kinds repeat)."""
    return entry.partition(": ")[2] or entry


def evaluate_file(path: Path) -> dict[str, Any]:
    """Every number of the report for one BFCL file."""
    started = time.perf_counter()
    cases = load_bfcl_cases(path)
    non_strict_reasons: collections.Counter[str] = collections.Counter()
    relaxed: collections.Counter[str] = collections.Counter()
    unenforced: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    failures: list[dict[str, Any]] = []
    functions = strict = warned = answer_cases = calls = validated = null_leaks = 0

    for case in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StrictSchemaWarning)
            tools = {fn["name"]: bfcl_tool(fn) for fn in case.functions}
        warned += sum(isinstance(w.message, StrictSchemaWarning) for w in caught)

        for tool in tools.values():
            functions += 1
            relaxed.update(_kind(r) for r in tool.relaxed)
            unenforced.update(_kind(u) for u in tool.unenforced)
            if not tool.strict:
                # A tool counts once per distinct reason, however many places it occurs in.
                non_strict_reasons.update({_kind(p) for p in tool.strict_problems})
                continue
            strict += 1
            entry = tool.to_openai(strict=True)["function"]
            found = strict_violations(entry["parameters"])
            if entry.get("strict") is not True:
                found.append("<root>: the entry lacks 'strict': true")
            violations += [f"{case.id} {tool.name} {v}" for v in found]

        if case.ground_truth is None:
            continue
        answer_cases += 1
        for i, call in enumerate(case.ground_truth):
            calls += 1
            ((name, params),) = call.items()
            try:
                sent = strict_answer(case.function(name), params)
                received = tools[name].validate(json.dumps(sent))
            except (InvalidToolArguments, ValueError, KeyError) as exc:
                failures.append({"id": case.id, "call": i, "function": name, "error": str(exc)})
                continue
            validated += 1
            # For a JSON-schema tool the validated arguments are what the handler receives.
            if received != drop_nulls(sent):
                null_leaks += 1

    return {
        "file": path.name,
        "functions": functions,
        "strict": strict,
        "non_strict": functions - strict,
        "non_strict_reasons": dict(non_strict_reasons.most_common()),
        "strict_warnings": warned,
        "strict_rule_violations": len(violations),
        "violation_examples": violations[:SHOWN_FAILURES],
        "relaxed": dict(relaxed.most_common()),
        "unenforced": dict(unenforced.most_common()),
        "answer_cases": answer_cases,
        "answer_calls": calls,
        "answers_validated": validated,
        "answers_failed": len(failures),
        "failures": failures[:SHOWN_FAILURES],
        "null_leaks": null_leaks,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"file": "total"}
    for key, value in rows[0].items():
        if key == "file":
            continue
        if isinstance(value, int | float):
            total[key] = sum(r[key] for r in rows)
        elif isinstance(value, dict):
            merged: collections.Counter[str] = collections.Counter()
            for r in rows:
                merged.update(r[key])
            total[key] = dict(merged.most_common())
        elif isinstance(value, list):
            total[key] = [item for r in rows for item in r[key]][:SHOWN_FAILURES]
    total["seconds"] = round(total["seconds"], 3)
    return total


def build_report(data_dir: Path) -> dict[str, Any]:
    """The whole report: one entry per file and the total."""
    rows = [evaluate_file(data_dir / name) for name in FILES]
    return {"data": str(data_dir), "files": rows, "total": _total(rows)}


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, followed by the details behind its columns."""
    columns = [
        ("file", "file"),
        ("functions", "functions"),
        ("strict", "strict"),
        ("non_strict", "non-strict"),
        ("strict_rule_violations", "rule violations"),
        ("answer_cases", "answer cases"),
        ("answer_calls", "calls"),
        ("answers_validated", "validated"),
        ("answers_failed", "failed"),
        ("null_leaks", "null leaks"),
        ("seconds", "seconds"),
    ]
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join("---" if key == "file" else "---:" for key, _ in columns) + "|",
    ]
    for row in [*report["files"], report["total"]]:
        cells = [str(row[key]) for key, _ in columns]
        if row is report["total"]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    total = report["total"]
    sections = [
        ("Non-strict tools, by reason", total["non_strict_reasons"]),
        ("Relaxed constraints (moved into descriptions, still validated)", total["relaxed"]),
        ("Keywords the validator does not enforce", total["unenforced"]),
    ]
    for title, counts in sections:
        lines += ["", f"{title}:"]
        lines += [f"- {reason}: {n}" for reason, n in counts.items()] or ["- none"]
    lines += [
        "",
        f"StrictSchemaWarnings (caught, one per non-strict tool): {total['strict_warnings']}",
    ]
    lines += ["", "Strict-rule violations:"]
    lines += [f"- {v}" for v in total["violation_examples"]] or ["- none"]
    lines += ["", f"Failed answers (first {SHOWN_FAILURES}):"]
    lines += [
        f"- {f['id']} call {f['call']} ({f['function']}): {f['error']}" for f in total["failures"]
    ] or ["- none"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the report; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the BFCL data directory")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"no BFCL data at {args.data}")
    # The library logs each strict-mode fallback; here they are counted instead, and stdout
    # must stay clean for the JSON.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    report = build_report(args.data)
    if not args.json:
        print(to_markdown(report))
        print()
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if report["total"]["strict_rule_violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
