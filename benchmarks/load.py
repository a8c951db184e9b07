"""Load: memory over 10,000 sequential runs in one process, and 1,000 concurrent runs.

The application is a `Router` (a keyword classifier: "refund" or "status") and a 3-node
graph: triage hands off to billing or support, which call a ``lookup`` tool with the order
id of the run's own message, then answer with its result (three model calls per run). It
runs through `OpenAIChatModel` and one ``openai.AsyncOpenAI`` client against the fake
OpenAI server in a child process (so the client's memory and CPU are its own). Logging is
production-like: `configure_logging` JSON at INFO, into /dev/null.

**Sequential** (``--runs``, default 10,000; server latency 0): after ``--warm-up`` runs,
the client process's *current* RSS (``/proc/self/statm``, after ``gc.collect()``) is read,
and again at 10 %, 25 %, 50 %, 75 % and 100 % of the runs. Reported: RSS at each point, the
growth after warm-up in MB and in bytes per run, and runs/s (without tracing). Every run's
output and path are checked.

**Growth sites** (``--trace-runs``, default 1,000): a separate pass under ``tracemalloc``
(1 frame; it slows runs about 5x): memory still allocated from those runs after
``gc.collect()``, per run, and the source lines whose allocations changed the most.
pydantic_core's JSON string cache (16,384 strings, process-wide; each new order id adds one
until it is full, then replaces one) is filled under tracing first, so its filling does not
count here (its replacements show as a pair of sites, one up, one down); its filling does
show in the RSS of the sequential pass (at most about 1 MB).

**Concurrency** (``--concurrency``, default 1,000; server latency 50 ms): wall time, client
CPU per run and the batch's peak RSS growth (current RSS sampled every 50 ms) for one batch
of concurrent runs, with the SDK's default connection pool (1,000 connections, 100 kept
alive) and with a 100-connection pool. ``benchmarks/graph.py`` measures concurrency more
broadly; this shows the pool's cost: httpcore2's pool walks every open connection whenever
a request enters or leaves it.

    python benchmarks/load.py                 # JSON, then tables (a few minutes)
    python benchmarks/load.py --quick         # a smoke run (seconds)
    python benchmarks/load.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pydantic_core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions

from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.runner import Runner
from intentflow.context import RunContext
from intentflow.log import configure_logging
from intentflow.models import OpenAIChatModel
from intentflow.router import Intent, Prediction, Router

SERVER = """
import re
import sys
import anyio
from intentflow.testing import FakeOpenAIServer, Reply

ORDER = re.compile(r"A-\\d+")

def script(body):
    messages = body["messages"]
    node = messages[0]["content"].removeprefix("node:")
    user = next(m["content"] for m in messages if m["role"] == "user")
    last = messages[-1]
    if node == "triage":
        return Reply.call("transfer_to_billing" if "refund" in user else "transfer_to_support", {})
    if last["role"] == "tool" and "settled" in (last.get("content") or ""):
        return Reply.text(node + ": " + last["content"].strip('"'))
    return Reply.call("lookup", {"order_id": ORDER.search(user).group()})

async def main():
    async with FakeOpenAIServer(script, latency=float(sys.argv[1])) as server:
        print(server.base_url, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def rss_bytes() -> int:
    """The process's current resident set size (not the peak)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE


class Keyword:
    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        if "refund" in text:
            return Prediction.from_scores([("refund", 0.9), ("status", 0.1)])
        return Prediction.from_scores([("status", 0.9), ("refund", 0.1)])


async def lookup(ctx: RunContext[str], order_id: str) -> str:
    """Look an order up."""
    if ctx.deps != order_id:
        raise AssertionError(f"run for {ctx.deps} got the argument {order_id}")
    return f"order {order_id} is settled"


def build_runner(model: Any) -> Runner:
    def node(name: str, **options: Any) -> Agent[str]:
        return Agent(name=name, instructions=f"node:{name}", model=model, **options)

    graph = AgentGraph(
        [
            node("triage", handoffs=["billing", "support"]),
            node("billing", tools=[lookup]),
            node("support", tools=[lookup]),
        ]
    )
    router = Router(
        [
            Intent("refund", examples=["refund"], entry="triage"),
            Intent("status", examples=["where is"], entry="triage"),
        ],
        Keyword(),
    )
    return Runner(router, graph)


def message_for(i: int) -> tuple[str, str, str]:
    """Run ``i``'s message, its order id and the node that must serve it."""
    order = f"A-{i}"
    if i % 2:
        return f"I want a refund for order {order}", order, "billing"
    return f"Where is order {order}?", order, "support"


async def one_run(runner: Runner, i: int) -> None:
    message, order, node = message_for(i)
    result = await runner.run(message, deps=order)
    if result.output != f"{node}: order {order} is settled" or result.path != ("triage", node):
        raise AssertionError(f"run {i}: {result.output!r} via {result.path}")


def client_for(base_url: str, pool: int | None = None) -> Any:
    import httpx2
    import openai

    options: dict[str, Any] = {}
    if pool is not None:
        limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
        options["http_client"] = openai.DefaultAsyncHttpxClient(limits=limits)
    return openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, **options)


async def sequential(base_url: str, runs: int, warm_up: int) -> dict[str, Any]:
    client = client_for(base_url)
    runner = build_runner(OpenAIChatModel("fake-model", client=client))
    for i in range(warm_up):
        await one_run(runner, i)
    gc.collect()
    start_rss = rss_bytes()
    marks = sorted({max(1, round(runs * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)})
    points: list[dict[str, Any]] = []
    done, busy = 0, 0.0
    for mark in marks:
        t0 = time.perf_counter()
        for i in range(warm_up + done, warm_up + mark):
            await one_run(runner, i)
        seconds = time.perf_counter() - t0
        busy += seconds
        gc.collect()
        rss = rss_bytes()
        points.append(
            {
                "runs": mark,
                "rss_mb": round(rss / MB, 2),
                "growth_mb": round((rss - start_rss) / MB, 2),
                "runs_per_s": round((mark - done) / seconds, 1),
            }
        )
        done = mark
    await client.close()
    growth = rss_bytes() - start_rss
    return {
        "runs": runs,
        "warm_up": warm_up,
        "model_calls_per_run": 3,
        "rss_after_warm_up_mb": round(start_rss / MB, 2),
        "rss_end_mb": points[-1]["rss_mb"],
        "growth_mb": points[-1]["growth_mb"],
        "growth_bytes_per_run": round(growth / runs, 1),
        "runs_per_s": round(runs / busy, 1),
        "points": points,
    }


async def traced(base_url: str, runs: int, warm_up: int) -> dict[str, Any]:
    client = client_for(base_url)
    runner = build_runner(OpenAIChatModel("fake-model", client=client))
    first = 1_000_000  # order ids the sequential pass did not use
    for i in range(first, first + warm_up):
        await one_run(runner, i)
    gc.collect()
    tracemalloc.start(1)
    try:
        for i in range(20_000):  # fill pydantic_core's string cache, traced (see docstring)
            pydantic_core.from_json(f'["fill-{i}"]')
        for i in range(first + warm_up, first + 2 * warm_up):  # settle under tracing
            await one_run(runner, i)
        gc.collect()
        before, before_bytes = tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0]
        start = first + 2 * warm_up
        for i in range(start, start + runs):
            await one_run(runner, i)
        gc.collect()
        after, after_bytes = tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        await client.close()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    # The largest changes either way (a cache that replaces entries shows on both sides).
    sites = [
        {
            "site": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
            "growth_kib": round(s.size_diff / 1024, 1),
            "blocks": s.count_diff,
        }
        for s in growth[:6]
        if abs(s.size_diff) >= 1024
    ]
    return {
        "runs": runs,
        "growth_bytes_per_run": round((after_bytes - before_bytes) / runs, 1),
        "top_sites": sites,
    }


def _short(filename: str) -> str:
    return re.sub(r"^.*/(site-packages|lib/python3\.\d+|main)/", "", filename)


async def concurrent(base_url: str, n: int, pool: int | None) -> dict[str, Any]:
    client = client_for(base_url, pool)
    runner = build_runner(OpenAIChatModel("fake-model", client=client))
    await one_run(runner, 0)  # warm the client's connections and caches
    gc.collect()
    rss_before = peak = rss_bytes()

    async def sample() -> None:  # this batch's own peak (ru_maxrss is the process's)
        nonlocal peak
        while True:
            await anyio.sleep(0.05)
            peak = max(peak, rss_bytes())

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as outer:
        outer.start_soon(sample)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one_run, runner, i)
        outer.cancel_scope.cancel()
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    await client.close()
    return {
        "runs": n,
        "pool": "SDK default (1000, 100 kept)" if pool is None else f"{pool} connections",
        "wall_s": round(wall, 2),
        "client_cpu_ms_per_run": round(cpu / n * 1000, 2),
        "rss_before_mb": round(rss_before / MB, 1),
        "peak_rss_growth_mb": round((max(peak, rss_bytes()) - rss_before) / MB, 1),
        "latency_s_per_call": 0.05,
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown tables for a result of this benchmark."""
    s = result["sequential"]
    parts = [
        markdown_table(
            [
                "sequential runs",
                "RSS after warm-up MB",
                "RSS end MB",
                "growth MB",
                "bytes/run",
                "runs/s",
            ],
            [
                [
                    s["runs"],
                    s["rss_after_warm_up_mb"],
                    s["rss_end_mb"],
                    s["growth_mb"],
                    s["growth_bytes_per_run"],
                    s["runs_per_s"],
                ]
            ],
            "rrrrrr",
        ),
        markdown_table(
            ["runs after warm-up", "RSS MB", "growth MB", "runs/s (since last)"],
            [[p["runs"], p["rss_mb"], p["growth_mb"], p["runs_per_s"]] for p in s["points"]],
            "rrrr",
        ),
    ]
    t = result.get("traced")
    if t:
        parts.append(
            markdown_table(
                [
                    f"tracemalloc: growth site ({t['runs']} runs, "
                    f"{t['growth_bytes_per_run']} B/run)",
                    "KiB",
                    "blocks",
                ],
                [[x["site"], x["growth_kib"], x["blocks"]] for x in t["top_sites"]]
                or [["(none)", 0, 0]],
                "lrr",
            )
        )
    if result.get("concurrency"):
        parts.append(
            markdown_table(
                ["concurrent runs", "pool", "wall s", "client CPU ms/run", "peak RSS growth MB"],
                [
                    [
                        c["runs"],
                        c["pool"],
                        c["wall_s"],
                        c["client_cpu_ms_per_run"],
                        c["peak_rss_growth_mb"],
                    ]
                    for c in result["concurrency"]
                ],
                "rlrrr",
            )
        )
    return "\n\n".join(parts)


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--warm-up", type=int, default=300)
    parser.add_argument("--trace-runs", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=1_000, help="0: skip")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.warm_up, args.trace_runs, args.concurrency = 500, 50, 100, 100
    configure_logging("json", level="INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    results: dict[str, Any] = {
        "benchmark": "load",
        "machine": machine_info(),
        "packages": package_versions(["intentflow", "openai", "httpx2", "httpcore2", "anyio"]),
        "backend": "asyncio",
    }
    servers = []
    try:
        server, base_url = start_server(0.0)
        servers.append(server)
        results["sequential"] = anyio.run(sequential, base_url, args.runs, args.warm_up)
        if args.trace_runs:
            results["traced"] = anyio.run(traced, base_url, args.trace_runs, args.warm_up)
        results["concurrency"] = []
        if args.concurrency:
            server, slow_url = start_server(0.05)
            servers.append(server)
            for pool in (None, 100):
                results["concurrency"].append(
                    anyio.run(concurrent, slow_url, args.concurrency, pool)
                )
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)

    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
