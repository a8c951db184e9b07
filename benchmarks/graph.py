"""The graph runner's cost over a single agent's loop, and many concurrent runs.

**Overhead.** One *run* of each contender makes the same two model calls against an
in-process `ScriptedModel` (no HTTP, so only the client side is measured):

* ``agent``: ``Agent.run``: the model calls a tool, the tool runs, the model answers;
* ``graph``: ``Runner(None, graph, entry="triage").run``: a 3-node graph (triage, billing,
  support); triage's model calls ``transfer_to_billing`` (one handoff), billing answers;
* ``graph+router``: the same through a `Router` (a keyword classifier), as an application
  runs it.

Samples of ``--runs`` runs alternate between contenders (and which goes first), and the
median of the sample means is reported in µs per run with p10/p90, with the graph's overhead
as the median of paired differences and the ratio of medians.

**Concurrency.** ``--concurrency`` runs at once (default 200 and 1,000) of the 3-node graph
through `OpenAIChatModel` and one ``AsyncOpenAI`` client against the fake OpenAI server with
50 ms latency per answer. The server runs in a child process, so the client's CPU time is its
own. Reported: wall time, client CPU per run, and the peak RSS of the client process (its
growth over the process's peak before the batch).

    python benchmarks/graph.py                 # JSON, then tables
    python benchmarks/graph.py --quick         # a smoke run
    python benchmarks/graph.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions, paired_differences, summarize

from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.runner import Runner
from intentflow.models import ModelRequest, OpenAIChatModel
from intentflow.router import Intent, Prediction, Router
from intentflow.testing import Reply, ScriptedModel

SERVER = """
import sys
import anyio
from intentflow.testing import FakeOpenAIServer, Reply

def script(body):
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    if "transfer_to_billing" in tools and body["messages"][-1]["role"] == "user":
        return Reply.call("transfer_to_billing", {})
    return Reply.text("Your refund is on its way.")

async def main():
    async with FakeOpenAIServer(script, latency=float(sys.argv[1])) as server:
        print(server.base_url, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def lookup(order_id: str) -> str:
    """Look an order up."""
    return "shipped"


def agent_script(request: ModelRequest) -> Reply:
    if request.messages[-1].role == "user":
        return Reply.call("lookup", {"order_id": "A-1"})
    return Reply.text("It has shipped.")


def graph_script(request: ModelRequest) -> Reply:
    if "transfer_to_billing" in request.tool_names and request.messages[-1].role == "user":
        return Reply.call("transfer_to_billing", {})
    return Reply.text("Your refund is on its way.")


class Keyword:
    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("refund", 0.9), ("other", 0.1)])


def build_graph(model: Any) -> AgentGraph:
    return AgentGraph(
        [
            Agent(name="triage", model=model, handoffs=["billing", "support"]),
            Agent(name="billing", model=model),
            Agent(name="support", model=model),
        ]
    )


def build_router() -> Router:
    return Router(
        [Intent("refund", examples=["refund"], entry="triage"), Intent("other", examples=["x"])],
        Keyword(),
    )


async def overhead(samples: int, runs: int) -> dict[str, Any]:
    agent = Agent(name="agent", model=ScriptedModel(agent_script), tools=[lookup])
    graph_runner = Runner(None, build_graph(ScriptedModel(graph_script)), entry="triage")
    routed = Runner(build_router(), build_graph(ScriptedModel(graph_script)))
    contenders = {
        "agent": lambda: agent.run("Where is A-1?"),
        "graph": lambda: graph_runner.run("I want a refund"),
        "graph+router": lambda: routed.run("I want a refund"),
    }
    # Check that each does what it should before timing it.
    checked = await agent.run("Where is A-1?")
    assert checked.usage.requests == 2 and checked.output == "It has shipped."
    for runner in (graph_runner, routed):
        result = await runner.run("I want a refund")
        assert result.path == ("triage", "billing") and result.usage.requests == 2

    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(max(2, samples // 5)):  # warm-up
        for make in contenders.values():
            await make()
    for sample in range(samples):
        for name in order if sample % 2 == 0 else reversed(order):
            make = contenders[name]
            start = time.perf_counter_ns()
            for _ in range(runs):
                await make()
            times[name].append((time.perf_counter_ns() - start) / runs / 1000)
    out: dict[str, Any] = {n: summarize(v).to_dict(1) for n, v in times.items()}
    for name in ("graph", "graph+router"):
        out[f"{name}_minus_agent_us"] = paired_differences(times[name], times["agent"]).to_dict(1)
        out[f"{name}_ratio"] = round(
            summarize(times[name]).median / summarize(times["agent"]).median, 3
        )
    return out


async def concurrent(n: int, base_url: str) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    model = OpenAIChatModel("fake-model", client=client)
    runner = Runner(build_router(), build_graph(model))
    await runner.run("I want a refund")  # warm the client's connections and caches
    gc.collect()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    results: list[Any] = []

    async def one(i: int) -> None:
        results.append(await runner.run(f"I want a refund for order {i}"))

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await client.close()
    ok = sum(
        r.output == "Your refund is on its way." and r.path == ("triage", "billing")
        for r in results
    )
    return {
        "runs": n,
        "completed": ok,
        "wall_s": round(wall, 3),
        "client_cpu_ms_per_run": round(cpu / n * 1000, 3),
        "peak_rss_mb": round(peak_after / 1024, 1),
        "peak_rss_growth_mb": round((peak_after - peak_before) / 1024, 1),
        "model_calls_per_run": 2,
        "latency_s_per_call": 0.05,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=31)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", default="200,1000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.runs, args.concurrency = 5, 20, "50"
    # Production-like logging: INFO events built and dropped into /dev/null as JSON lines.
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.PrintLoggerFactory(open("/dev/null", "w")),  # noqa: SIM115
        cache_logger_on_first_use=True,
    )
    results: dict[str, Any] = {
        "benchmark": "graph",
        "machine": machine_info(),
        "packages": package_versions(["intentflow", "openai", "anyio"]),
        "overhead": anyio.run(overhead, args.samples, args.runs),
        "concurrency": [],
    }
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        for n in (int(x) for x in args.concurrency.split(",")):
            results["concurrency"].append(anyio.run(concurrent, n, base_url))
    finally:
        server.terminate()
        server.wait(10)

    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    o = results["overhead"]
    print()
    print(
        markdown_table(
            ["contender", "µs/run (median)", "p10", "p90", "over agent (µs)", "ratio"],
            [
                [
                    name,
                    o[name]["median"],
                    o[name]["p10"],
                    o[name]["p90"],
                    o.get(f"{name}_minus_agent_us", {}).get("median", "-"),
                    o.get(f"{name}_ratio", "-"),
                ]
                for name in ("agent", "graph", "graph+router")
            ],
            "lrrrrr",
        )
    )
    print()
    print(
        markdown_table(
            [
                "concurrent runs",
                "completed",
                "wall s",
                "client CPU ms/run",
                "peak RSS MB",
                "growth MB",
            ],
            [
                [
                    c["runs"],
                    c["completed"],
                    c["wall_s"],
                    c["client_cpu_ms_per_run"],
                    c["peak_rss_mb"],
                    c["peak_rss_growth_mb"],
                ]
                for c in results["concurrency"]
            ],
            "rrrrrr",
        )
    )


if __name__ == "__main__":
    main()
