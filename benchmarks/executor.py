"""Per-call overhead of intentflow's executor, against calling the tool function directly.

What is measured: the time ``Executor(toolset).execute(calls)`` adds around a trivial async
tool (``async def add(a: int, b: int) -> int``): argument JSON parsing, validation, the
null-to-default plan, execution, the outcome, the error policy and the serialization of the
result. Two baselines:

* **direct**: ``await add(1, 2)``, the floor;
* **json**: the least a hand-written tool loop does: ``json.loads(arguments)``, then
  ``await add(**args)``, then ``json.dumps(result)``. The overhead against this one is the
  honest number: what a user gives up by using the executor instead of their own loop. It uses
  the stdlib ``json`` (~2.4 µs of its ~3 µs here); against a hand loop using a fast JSON
  library (the executor uses ``pydantic_core``'s) the overhead is about 2 µs larger.

Scenarios: one call per ``execute``; a batch of 8 parallel calls per ``execute`` (against 8
sequential awaits and an ``anyio`` task group of 8 hand-written calls); a function tool with
optional parameters sent as ``null`` (the null-to-default plan); the same shape as a JSON-Schema
tool (``Tool.from_json_schema``, the schema-derived validator); the main scenarios on trio; and
the main scenario with debug logging on, rendered to JSON and written to a null sink.

Method: each backend runs all its scenarios inside one event loop. A *sample* times
``--iterations`` calls (a batch counts as 8) with ``time.perf_counter_ns``. The variants of a
scenario are interleaved sample by sample (direct, json, intentflow, direct, json, ...) so
machine noise hits all of them alike. After a checked warm-up, ``--samples`` samples are taken;
the reported value is the median of the sample means in µs per call, with their p10/p90.
Overhead is ``median(intentflow) - median(baseline)``; its p10/p90 are those of the per-sample
paired differences. The garbage collector stays on: collecting what the executor allocates is
part of its real cost.

Logging is configured as a production app would: structlog filtering below INFO, loggers cached
on first use. The debug row runs in a child process, because a structlog logger cached on first
use keeps its configuration for the life of the process.

Run it from the repository root (about 30 s with the defaults on a 2-core machine)::

    python benchmarks/executor.py                  # JSON, then Markdown tables
    python benchmarks/executor.py --json           # JSON only
    python benchmarks/executor.py --samples 11 --iterations 500   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from _stats import machine_info, markdown_table, package_versions, paired_differences, summarize

from intentflow import Executor, Tool, ToolCall, ToolCallOutcome, Toolset

GOAL_US = 30.0
"""The issue's target: under 30 µs of executor overhead per call (against the json baseline)."""

BATCH = 8
ARGS = '{"a": 1, "b": 2}'
NULL_ARGS = '{"a": 1, "b": null, "unit": null}'

# What an MCP server would send for ``add_optional``: the very schema Pydantic generates for the
# function tool, so the two optional-parameter rows differ only in the validator behind them.
OPTIONAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "b": {"type": "integer", "default": 0},
        "unit": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["a"],
    "additionalProperties": False,
}

DEBUG_PROCESSORS = ("merge_contextvars", "add_log_level", "TimeStamper(iso, utc)", "JSONRenderer")


# --------------------------------------------------------------------------- the tools


async def add(a: int, b: int) -> int:
    return a + b


async def add_optional(a: int, b: int = 0, unit: str | None = None) -> int:
    return a + b


async def add_from_dict(args: dict[str, int]) -> int:
    return args["a"] + args.get("b", 0)


# --------------------------------------------------------------------------- variants

Runner = Callable[[int], Awaitable[Any]]
"""Runs ``n`` invocations and returns the last result (checked once, before any timing)."""
Call = Callable[[str], Awaitable[str]]
"""One hand-written tool call: raw argument text in, serialized result out."""


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    label: str
    run: Runner
    expect: Callable[[Any], bool]
    baseline: bool


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    calls_per_execute: int
    variants: tuple[Variant, ...]


# Every runner is its own loop rather than a shared ``for ...: await once()``: one more Python
# call per iteration would add ~50 ns to a ~120 ns direct await and distort the ratios.


def direct_runner(fn: Callable[..., Awaitable[Any]], *args: Any, repeat: int = 1) -> Runner:
    if repeat == 1:

        async def run_one(n: int) -> Any:
            result = None
            for _ in range(n):
                result = await fn(*args)
            return result

        return run_one

    async def run_many(n: int) -> Any:
        result = None
        for _ in range(n):
            for _ in range(repeat):
                result = await fn(*args)
        return result

    return run_many


def json_call(fn: Callable[..., Awaitable[Any]], *, drop_nulls: bool, as_dict: bool) -> Call:
    """The least a hand-written loop does per call: parse, call, serialize.

    ``drop_nulls`` removes ``null`` values too, as a hand-written loop must to give a strict
    model's "not given" its Python default; ``as_dict`` passes the arguments as one dict (the
    calling convention of a JSON-schema tool).
    """
    loads, dumps = json.loads, json.dumps
    if as_dict:

        async def call_with_dict(text: str) -> str:
            return dumps(await fn({k: v for k, v in loads(text).items() if v is not None}))

        return call_with_dict
    if drop_nulls:

        async def call_without_nulls(text: str) -> str:
            return dumps(await fn(**{k: v for k, v in loads(text).items() if v is not None}))

        return call_without_nulls

    async def call(text: str) -> str:
        return dumps(await fn(**loads(text)))

    return call


def json_runner(one: Call, text: str, *, repeat: int = 1) -> Runner:
    if repeat == 1:

        async def run_one(n: int) -> Any:
            result = None
            for _ in range(n):
                result = await one(text)
            return result

        return run_one

    async def run_many(n: int) -> Any:
        result = None
        for _ in range(n):
            for _ in range(repeat):
                result = await one(text)
        return result

    return run_many


def taskgroup_runner(one: Call, text: str, *, size: int) -> Runner:
    """A hand-written parallel loop: one task per call, results kept in the model's order."""

    async def store(results: list[str | None], i: int) -> None:
        results[i] = await one(text)

    async def run(n: int) -> Any:
        results: list[str | None] = []
        for _ in range(n):
            results = [None] * size
            async with anyio.create_task_group() as tg:
                for i in range(size):
                    tg.start_soon(store, results, i)
        return results

    return run


def executor_runner(executor: Executor, calls: Sequence[ToolCall]) -> Runner:
    execute = executor.execute

    async def run(n: int) -> Any:
        result = None
        for _ in range(n):
            result = await execute(calls)
        return result

    return run


def tool_calls(tool: Tool, arguments: str, count: int) -> list[ToolCall]:
    # Built once, outside the timed loop: parsing the model's response is not executor work.
    return [ToolCall(id=f"call_{i}", name=tool.api_name, arguments=arguments) for i in range(count)]


def equals(value: Any) -> Callable[[Any], bool]:
    return lambda result: result == value


def all_succeed(content: str, count: int) -> Callable[[Any], bool]:
    # Guards against timing the error path: every outcome must be a success with this content.
    def check(outcomes: Any) -> bool:
        return (
            isinstance(outcomes, list)
            and len(outcomes) == count
            and all(isinstance(o, ToolCallOutcome) and o.ok for o in outcomes)
            and all(o.content == content for o in outcomes)
        )

    return check


def build_scenarios(which: Sequence[str]) -> list[Scenario]:
    """The scenarios named in ``which``, with freshly built tools and executors."""
    plain = Tool.from_function(add)
    optional = Tool.from_function(add_optional)
    schema = Tool.from_json_schema(
        "add_from_dict", "Add two integers.", OPTIONAL_SCHEMA, add_from_dict
    )
    simple_json = json_call(add, drop_nulls=False, as_dict=False)
    out: dict[str, Scenario] = {}

    out["single"] = Scenario(
        "single",
        "add(a, b): 1 call per execute",
        1,
        (
            Variant("direct", "await add(1, 2)", direct_runner(add, 1, 2), equals(3), True),
            Variant(
                "json",
                "json.loads + await + json.dumps",
                json_runner(simple_json, ARGS),
                equals("3"),
                True,
            ),
            Variant(
                "intentflow",
                "Executor.execute([call])",
                executor_runner(Executor(Toolset("bench", [plain])), tool_calls(plain, ARGS, 1)),
                all_succeed("3", 1),
                False,
            ),
        ),
    )

    batch_calls = tool_calls(plain, ARGS, BATCH)
    out["batch8"] = Scenario(
        "batch8",
        f"add(a, b): {BATCH} parallel calls per execute",
        BATCH,
        (
            Variant(
                "direct",
                f"{BATCH} sequential awaits",
                direct_runner(add, 1, 2, repeat=BATCH),
                equals(3),
                True,
            ),
            Variant(
                "json",
                f"{BATCH} sequential json calls",
                json_runner(simple_json, ARGS, repeat=BATCH),
                equals("3"),
                True,
            ),
            Variant(
                "taskgroup",
                f"anyio task group, {BATCH} json calls",
                taskgroup_runner(simple_json, ARGS, size=BATCH),
                equals(["3"] * BATCH),
                True,
            ),
            Variant(
                "intentflow",
                f"Executor.execute({BATCH} calls), max_concurrency=4 (default)",
                executor_runner(Executor(Toolset("bench", [plain])), batch_calls),
                all_succeed("3", BATCH),
                False,
            ),
            Variant(
                "intentflow_mc8",
                f"Executor.execute({BATCH} calls), max_concurrency={BATCH}",
                executor_runner(
                    Executor(Toolset("bench", [plain]), max_concurrency=BATCH), batch_calls
                ),
                all_succeed("3", BATCH),
                False,
            ),
        ),
    )

    out["optional_nulls"] = Scenario(
        "optional_nulls",
        "add_optional(a, b=0, unit=None) sent with nulls (function tool)",
        1,
        (
            Variant(
                "direct", "await add_optional(1)", direct_runner(add_optional, 1), equals(1), True
            ),
            Variant(
                "json",
                "json.loads + drop nulls + await + json.dumps",
                json_runner(json_call(add_optional, drop_nulls=True, as_dict=False), NULL_ARGS),
                equals("1"),
                True,
            ),
            Variant(
                "intentflow",
                "Executor.execute([call])",
                executor_runner(
                    Executor(Toolset("bench", [optional])), tool_calls(optional, NULL_ARGS, 1)
                ),
                all_succeed("1", 1),
                False,
            ),
        ),
    )

    out["json_schema"] = Scenario(
        "json_schema",
        "same shape as Tool.from_json_schema, sent with nulls",
        1,
        (
            Variant(
                "direct",
                'await add_from_dict({"a": 1})',
                direct_runner(add_from_dict, {"a": 1}),
                equals(1),
                True,
            ),
            Variant(
                "json",
                "json.loads + drop nulls + await + json.dumps",
                json_runner(json_call(add_from_dict, drop_nulls=True, as_dict=True), NULL_ARGS),
                equals("1"),
                True,
            ),
            Variant(
                "intentflow",
                "Executor.execute([call])",
                executor_runner(
                    Executor(Toolset("bench", [schema])), tool_calls(schema, NULL_ARGS, 1)
                ),
                all_succeed("1", 1),
                False,
            ),
        ),
    )
    return [out[k] for k in which]


# --------------------------------------------------------------------------- measurement


def progress(message: str) -> None:
    # Progress goes to stderr so that stdout stays one JSON document (and the tables).
    print(message, file=sys.stderr, flush=True)


async def measure(
    scenarios: Sequence[Scenario], *, backend: str, logging_mode: str, samples: int, iterations: int
) -> list[dict[str, Any]]:
    """Time every scenario in the running event loop; return one JSON-ready result each."""
    clock = time.perf_counter_ns
    results = []
    for scenario in scenarios:
        progress(f"  {scenario.key} ({backend}, logging={logging_mode})")
        executes = max(1, iterations // scenario.calls_per_execute)
        calls = executes * scenario.calls_per_execute
        for variant in scenario.variants:
            last = await variant.run(1)
            if not variant.expect(last):
                raise AssertionError(f"{scenario.key}/{variant.key} returned {last!r}")
            # Warm-up: fills caches (pydantic validators, structlog's cached logger, the
            # interpreter's specializing bytecode) before anything is recorded.
            await variant.run(executes)
        gc.collect()

        per_call: dict[str, list[float]] = {v.key: [] for v in scenario.variants}
        for _ in range(samples):
            # Interleaved: sample i of every variant runs under the same machine conditions.
            for variant in scenario.variants:
                start = clock()
                await variant.run(executes)
                per_call[variant.key].append((clock() - start) / 1000 / calls)

        results.append(report_scenario(scenario, backend, logging_mode, per_call, executes, calls))
    return results


def report_scenario(
    scenario: Scenario,
    backend: str,
    logging_mode: str,
    per_call: dict[str, list[float]],
    executes: int,
    calls: int,
) -> dict[str, Any]:
    variants = {
        v.key: {
            "label": v.label,
            "baseline": v.baseline,
            "us_per_call": summarize(per_call[v.key]).to_dict(),
        }
        for v in scenario.variants
    }
    overheads = []
    for subject in (v for v in scenario.variants if not v.baseline):
        s = summarize(per_call[subject.key]).median
        for base in (v for v in scenario.variants if v.baseline):
            b = summarize(per_call[base.key]).median
            paired = paired_differences(per_call[subject.key], per_call[base.key])
            overheads.append(
                {
                    "subject": subject.key,
                    "baseline": base.key,
                    "us_per_call": round(s - b, 3),
                    "us_per_execute": round((s - b) * scenario.calls_per_execute, 3),
                    "ratio": round(s / b, 2),
                    "paired_us_per_call": paired.to_dict(),
                }
            )
    return {
        "key": scenario.key,
        "title": scenario.title,
        "backend": backend,
        "logging": logging_mode,
        "calls_per_execute": scenario.calls_per_execute,
        "executes_per_sample": executes,
        "calls_per_sample": calls,
        "variants": variants,
        "overheads": overheads,
    }


def configure_logging(mode: str, sink: Any = None) -> None:
    if mode == "info":
        # The production configuration: events below INFO are dropped by the bound logger's
        # method table, and the logger is built once. Output goes to stderr only so that
        # nothing logged at tool registration can corrupt the JSON on stdout.
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
    else:
        # Debug on, with a typical production chain, written to os.devnull: the cost of
        # building and rendering every event, without the variable cost of a real disk.
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.WriteLoggerFactory(file=sink),
            cache_logger_on_first_use=True,
        )


def run_backend(
    backend: str, which: Sequence[str], logging_mode: str, samples: int, iterations: int
) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        # Tools and executors are built inside the loop, as an application would.
        return await measure(
            build_scenarios(which),
            backend=backend,
            logging_mode=logging_mode,
            samples=samples,
            iterations=iterations,
        )

    result: list[dict[str, Any]] = anyio.run(main, backend=backend)
    return result


def run_debug_child(samples: int, iterations: int) -> list[dict[str, Any]]:
    """The debug-logging row, measured in a fresh process (see the module docstring)."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--samples",
        str(samples),
        "--iterations",
        str(iterations),
        "--debug-worker",
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    child: list[dict[str, Any]] = json.loads(done.stdout)
    return child


# --------------------------------------------------------------------------- report


def goal_summary(scenarios: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goal, checked on every scenario with production logging (not debug)."""
    checked = {}
    for sc in scenarios:
        if sc["logging"] != "info":
            continue
        for o in sc["overheads"]:
            if o["subject"] == "intentflow" and o["baseline"] == "json":
                checked[f"{sc['key']}/{sc['backend']}"] = o["us_per_call"]
    return {
        "target_us_per_call": GOAL_US,
        "against": "json",
        "overhead_us_per_call": checked,
        "met": all(v < GOAL_US for v in checked.values()),
    }


def timing_table(scenarios: Sequence[dict[str, Any]]) -> str:
    rows = []
    for sc in scenarios:
        for key, v in sc["variants"].items():
            t = v["us_per_call"]
            rows.append(
                [
                    sc["key"],
                    sc["backend"],
                    sc["logging"],
                    key,
                    v["label"],
                    f"{t['median']:.3f}",
                    f"{t['p10']:.3f}",
                    f"{t['p90']:.3f}",
                ]
            )
    headers = ["scenario", "backend", "logging", "variant", "what", "µs/call", "p10", "p90"]
    return markdown_table(headers, rows, "lllllrrr")


def overhead_table(scenarios: Sequence[dict[str, Any]]) -> str:
    rows = []
    for sc in scenarios:
        for o in sc["overheads"]:
            p = o["paired_us_per_call"]
            rows.append(
                [
                    sc["key"],
                    sc["backend"],
                    sc["logging"],
                    o["subject"],
                    o["baseline"],
                    f"{o['us_per_call']:.2f}",
                    f"{p['p10']:.2f} – {p['p90']:.2f}",
                    f"{o['us_per_execute']:.2f}",
                    f"{o['ratio']:.1f}×",
                ]
            )
    headers = [
        "scenario",
        "backend",
        "logging",
        "intentflow",
        "vs",
        "overhead µs/call",
        "paired p10 – p90",
        "µs/execute",
        "ratio",
    ]
    return markdown_table(headers, rows, "lllllrrrr")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=31, help="samples per variant (31)")
    parser.add_argument(
        "--iterations", type=int, default=2000, help="calls per sample; a batch counts 8 (2000)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON only")
    parser.add_argument("--debug-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.iterations < BATCH:
        parser.error(f"--samples must be >= 1 and --iterations >= {BATCH}")

    if args.debug_worker:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            configure_logging("debug", sink)
            rows = run_backend("asyncio", ["single"], "debug", args.samples, args.iterations)
        print(json.dumps(rows))
        return

    configure_logging("info")
    started = time.perf_counter()
    progress("asyncio:")
    scenarios = run_backend(
        "asyncio",
        ["single", "batch8", "optional_nulls", "json_schema"],
        "info",
        args.samples,
        args.iterations,
    )
    progress("trio:")
    scenarios += run_backend("trio", ["single", "batch8"], "info", args.samples, args.iterations)
    progress("asyncio, debug logging (child process):")
    scenarios += run_debug_child(args.samples, args.iterations)

    goal = goal_summary(scenarios)
    report: dict[str, Any] = {
        "benchmark": "executor",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": machine_info(),
        "python": sys.version.split()[0],
        "packages": package_versions(
            ["intentflow", "anyio", "trio", "pydantic", "pydantic-core", "structlog"]
        ),
        "parameters": {
            "samples": args.samples,
            "iterations_per_sample": args.iterations,
            "batch_size": BATCH,
            "interleaved": True,
            "statistic": "median of sample means, µs per call; p10/p90 of sample means",
            "gc": "enabled",
            "event_loop": "anyio.run: asyncio (default loop, no uvloop) and trio",
            "logging": {
                "info": "structlog.make_filtering_bound_logger(INFO), cached on first use",
                "debug": "make_filtering_bound_logger(DEBUG), cached on first use, processors "
                + " -> ".join(DEBUG_PROCESSORS)
                + ", written to os.devnull",
            },
        },
        "goal": goal,
        "scenarios": scenarios,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not args.json:
        print()
        print("### Time per call (median of sample means)\n")
        print(timing_table(scenarios))
        print("\n### Overhead of intentflow (median − median)\n")
        print(overhead_table(scenarios))
        worst = max(goal["overhead_us_per_call"].values())
        print(
            f"\nGoal: < {GOAL_US:g} µs overhead per call against the json baseline: "
            f"{'met' if goal['met'] else 'NOT met'} (worst: {worst:.2f} µs/call)."
        )


if __name__ == "__main__":
    main()
