"""Every intentflow benchmark in one command: one JSON document and one Markdown report.

Each benchmark runs as its own child process (so one's imports, caches, logging set-up and
memory cannot touch another's numbers), one after the other, on an otherwise idle machine.
Every script prints its JSON object and its Markdown tables on stdout; this runner keeps
both, adds a headline table of the numbers that matter most, and writes:

* ``benchmarks/results/latest.json``: machine, commit, and each benchmark's command, wall
  time, exit code and full JSON result;
* ``benchmarks/results/latest.md``: the headline table, then each benchmark's own tables.

``docs/performance.md`` shows ``latest.md``; a full run refreshes it. ``--quick`` runs every
script in its smoke mode (a few minutes in all) and writes ``quick.json`` / ``quick.md``
instead, which are not kept in git: their numbers are too rough to publish.

    python benchmarks/run_all.py                      # the full suite (about 30 minutes)
    python benchmarks/run_all.py --quick              # a smoke run of every benchmark
    python benchmarks/run_all.py --only tokens,import_time
    python benchmarks/run_all.py --list
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One script of the suite, and how to run it in full and in its smoke mode."""

    name: str
    script: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)


SUITE = (
    Benchmark("overhead", "overhead.py", "one agent run against a hand-written loop on the SDK"),
    Benchmark("graph", "graph.py", "the graph runner's cost; 200 and 1,000 concurrent runs"),
    Benchmark(
        "executor",
        "executor.py",
        "the tool executor against bare json + Pydantic",
        quick=("--samples", "3", "--iterations", "200"),
    ),
    Benchmark(
        "router",
        "router.py",
        "the router on CLINC150 (lexical and local-embedding classifiers)",
        quick=("--classifiers", "lexical"),
    ),
    Benchmark("tokens", "tokens.py", "tool-schema tokens per request with and without routing"),
    Benchmark("import_time", "import_time.py", "the import time of intentflow"),
    Benchmark("load", "load.py", "memory over 10,000 sequential runs"),
    Benchmark("store", "store.py", "checkpoint stores: save latency and cost per run"),
    Benchmark("bfcl", "bfcl_report.py", "BFCL function definitions through strict mode", quick=()),
    Benchmark("fuzz", "fuzz.py", "a long run of the model-output fuzz tests"),
)


def split_output(stdout: str) -> tuple[dict[str, Any], str]:
    """The JSON object a script printed, and the rest of its output (its Markdown tables).

    Scripts print the JSON before or after their tables; the object is the first line that
    starts with ``{`` and decodes as JSON from there.
    """
    decoder = json.JSONDecoder()
    offset = 0
    for line in stdout.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                value, end = decoder.raw_decode(stdout, offset)
            except json.JSONDecodeError:
                pass
            else:
                if isinstance(value, dict):
                    return value, (stdout[:offset] + stdout[end:]).strip()
        offset += len(line)
    raise ValueError("the script printed no JSON object")


def run(benchmark: Benchmark, quick: bool) -> dict[str, Any]:
    """Run one benchmark script; its command, time, exit code, JSON and Markdown."""
    args = benchmark.quick if quick else benchmark.full
    command = [sys.executable, f"benchmarks/{benchmark.script}", *args]
    print(f"[{benchmark.name}] {' '.join(command[1:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    entry: dict[str, Any] = {
        "what": benchmark.what,
        "started": _now(),
        "commit": _commit(),
        "command": "python " + " ".join(command[1:]),
        "seconds": round(seconds, 1),
        "exit_code": done.returncode,
    }
    try:
        entry["result"], entry["markdown"] = split_output(done.stdout)
    except ValueError as exc:
        entry["error"] = f"{exc}; stderr: {done.stderr[-3000:]}"
    if done.returncode != 0:
        entry["error"] = entry.get("error") or done.stderr[-3000:]
    print(f"[{benchmark.name}] exit {done.returncode} in {seconds:.0f} s", file=sys.stderr)
    return entry


# --------------------------------------------------------------------------- headlines
# One line per benchmark for the summary table. Each reads its script's JSON; a key that is
# missing (a script changed its output) shows as an error in the table, not a crash.


def _overhead(r: dict[str, Any]) -> str:
    rows = [s for s in r["scenarios"] if s["backend"] == "asyncio" and s["logging"] == "info"]
    return "; ".join(
        f"{s['tools']} tool{'s' if s['tools'] != 1 else ''}: "
        f"{s['contenders']['intentflow']['us_per_run']['median']:.0f} µs/run, "
        f"×{s['ratio']:.2f} of the hand-written loop"
        for s in sorted(rows, key=lambda s: s["tools"])
    )


def _graph(r: dict[str, Any]) -> str:
    o = r["overhead"]
    parts = [
        f"graph run {o['graph']['median']:.0f} µs (×{o['graph_ratio']:.2f} of one agent), "
        f"with router ×{o['graph+router_ratio']:.2f}"
    ]
    parts += [
        f"{c['runs']:,} concurrent: {c['wall_s']:.2f} s wall, "
        f"{c['client_cpu_ms_per_run']:.2f} ms CPU/run, peak RSS {c['peak_rss_mb']:.0f} MB"
        for c in r["concurrency"]
    ]
    return "; ".join(parts)


def _executor(r: dict[str, Any]) -> str:
    worst = max(r["goal"]["overhead_us_per_call"].values())
    return f"worst overhead over bare json + Pydantic: {worst:.2f} µs per call"


def _router(r: dict[str, Any]) -> str:
    return "; ".join(
        f"{kind}: in-scope {c['in_scope_accuracy']:.1%}, OOS recall {c['oos_recall']:.1%}, "
        f"p50 {c['p50_us']:.0f} µs"
        for kind, c in r["classifiers"].items()
    )


def _tokens(r: dict[str, Any]) -> str:
    return str(r["headline"])


def _import_time(r: dict[str, Any]) -> str:
    return str(r["headline"])


def _load(r: dict[str, Any]) -> str:
    seq = r["sequential"]
    return (
        f"{seq['runs']:,} sequential runs: RSS {seq['rss_after_warm_up_mb']:.1f} MB after "
        f"warm-up, {seq['rss_end_mb']:.1f} MB at the end (+{seq['growth_mb']:.2f} MB, "
        f"{seq['growth_bytes_per_run']:.0f} B/run), {seq['runs_per_s']:.0f} runs/s"
    )


def _store(r: dict[str, Any]) -> str:
    runs = r["run"]
    return (
        "run time ×"
        + ", ×".join(f"{row['ratio']:.2f} ({name})" for name, row in runs.items() if name != "none")
        + " of a run without a store"
    )


def _bfcl(r: dict[str, Any]) -> str:
    total = r["total"]
    return (
        f"{total['functions']} functions, {total['strict']} sent strict, "
        f"{total['strict_rule_violations']} strict-rule violations"
    )


def _fuzz(r: dict[str, Any]) -> str:
    return f"{r['cases']:,} cases, {r['failed_tests']} failed"


HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "overhead": _overhead,
    "graph": _graph,
    "executor": _executor,
    "router": _router,
    "tokens": _tokens,
    "import_time": _import_time,
    "load": _load,
    "store": _store,
    "bfcl": _bfcl,
    "fuzz": _fuzz,
}


def headline(name: str, entry: dict[str, Any]) -> str:
    if "result" not in entry:
        return f"failed (exit {entry['exit_code']})"
    try:
        text = HEADLINES[name](entry["result"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        text = f"(no headline: {type(exc).__name__}: {exc})"
    return text if entry["exit_code"] == 0 else f"exit {entry['exit_code']}: {text}"


def report(suite: dict[str, Any]) -> str:
    """The Markdown report of a suite run."""
    machine = suite["machine"]
    lines = [
        f"Run {suite['started']} on {machine.get('cpu', 'an unknown CPU')} "
        f"({machine.get('cpu_count', '?')} CPUs), Python {machine.get('python')}, "
        f"commit `{suite['commit']}`{' (quick mode: rough numbers)' if suite['quick'] else ''}.",
        "",
        markdown_table(
            ["benchmark", "headline", "s"],
            [
                [f"[{name}](#{name.replace('_', '-')})", headline(name, e), e["seconds"]]
                for name, e in suite["benchmarks"].items()
            ],
            "llr",
        ),
    ]
    for name, entry in suite["benchmarks"].items():
        lines += [
            "",
            f"### {name.replace('_', '-')}",
            "",
            f"{entry['what']}: `{entry['command']}` (run {entry['started']}, "
            f"commit `{entry['commit']}`)",
        ]
        if entry.get("markdown"):
            lines += ["", _demote(entry["markdown"])]
        if entry.get("error"):
            lines += ["", "```text", entry["error"].strip(), "```"]
    return "\n".join(lines) + "\n"


def _demote(markdown: str) -> str:
    """Scripts' own headings, moved under this report's per-benchmark heading."""
    return "\n".join(
        "#" * max(4, len(line) - len(line.lstrip("#"))) + line.lstrip("#")
        if line.startswith("#")
        else line
        for line in markdown.splitlines()
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every script's smoke mode")
    parser.add_argument("--only", help="comma-separated benchmark names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the files")
    args = parser.parse_args(argv)
    if args.list:
        for b in SUITE:
            print(f"{b.name:12} benchmarks/{b.script:18} {b.what}")
        return 0
    chosen = SUITE
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {b.name for b in SUITE})
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; see --list")
        chosen = tuple(b for b in SUITE if b.name in names)
    stem = "quick" if args.quick else "latest"
    path = args.out / f"{stem}.json"
    ran = {b.name: run(b, args.quick) for b in chosen}
    # With --only, the other benchmarks' last results are kept (each entry says when it ran).
    previous = json.loads(path.read_text())["benchmarks"] if args.only and path.exists() else {}
    merged = {**previous, **ran}
    suite: dict[str, Any] = {
        "suite": "intentflow benchmarks",
        "started": _now(),
        "commit": _commit(),
        "quick": args.quick,
        "machine": machine_info(),
        "packages": package_versions(["intentflow", "openai", "pydantic", "anyio", "networkx"]),
        "benchmarks": {b.name: merged[b.name] for b in SUITE if b.name in merged},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = report(suite)
    path.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n")
    path.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"wrote {path} and {path.with_suffix('.md')}", file=sys.stderr)
    return 0 if all(e["exit_code"] == 0 for e in ran.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
