"""What durable runs cost: checkpoint write latency per step, and the overhead on a run.

**Write latency.** For each store, ``--writes`` saves of one run's checkpoint, each timed
alone (``time.perf_counter`` around ``await store.save(...)``): the first saves a new run,
the rest update it with optimistic versioning, as a run does after every step. The
checkpoint is the real ``RunState`` JSON of the benchmark's run at its end (a 2-node run with
a handoff, one parallel tool batch and an answer: ~``--history`` earlier messages plus the
run's own), so its size is that of a short conversation. Reported: p50 and p99 in µs.

**Overhead on a run.** The same run (router, triage hands over to billing, billing calls two
tools at once, then answers; an in-process scripted model, so no network) without a store,
and with each store. Samples of ``--runs`` runs alternate between contenders; the median of
the sample means is reported in µs per run, with the ratio to the run without a store, and
the number of checkpoint saves per run.

Stores: ``memory`` (the cost of building the JSON alone), ``sqlite`` (a file in a temporary
directory, ``synchronous=NORMAL``), ``postgres`` (a throwaway server started on 127.0.0.1
with ``fsync=off``, so the numbers are of the client path and the server's work, not of the
disk; give ``--postgres DSN`` to measure a real server instead).

    python benchmarks/store.py                 # JSON, then tables
    python benchmarks/store.py --quick         # a smoke run
    python benchmarks/store.py --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.stores.postgres_server
from _stats import machine_info, markdown_table, package_versions, summarize

from intentflow.agents import Agent, AgentGraph, Runner, RunState
from intentflow.messages import AssistantMessage, UserMessage
from intentflow.models import ModelRequest
from intentflow.router import Intent, Prediction, Router
from intentflow.stores import CheckpointStore, MemoryStore, SQLiteStore
from intentflow.testing import Reply, ScriptedModel
from intentflow.toolsets import Tool


class Keyword:
    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("refund", 0.9), ("chat", 0.1)])


def answer(request: ModelRequest) -> Reply:
    turns = sum(isinstance(m, AssistantMessage) for m in request.messages[-4:])
    last = request.messages[-1]
    if isinstance(last, UserMessage):
        return Reply.call("transfer_to_billing", {})
    if turns == 1 and last.role == "tool":
        return Reply.calls(
            ("lookup_order", {"order_id": "A1"}), ("issue_refund", {"order_id": "A1"})
        )
    return Reply.text("Refunded: your order A1 will be credited within 3 days.")


def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "delivered", "total": "42.00"}


def issue_refund(order_id: str) -> str:
    """Refund an order."""
    return f"refund issued for {order_id}"


def build(store: CheckpointStore | None) -> Runner:
    model = ScriptedModel(answer)
    graph = AgentGraph(
        [
            Agent(name="triage", model=model, handoffs=["billing"]),
            Agent(
                name="billing",
                model=model,
                tools=[Tool.from_function(lookup_order), Tool.from_function(issue_refund)],
            ),
        ]
    )
    router = Router(
        [
            Intent("refund", examples=["refund"], entry="triage"),
            Intent("chat", examples=["hello"], entry="triage"),
        ],
        Keyword(),
    )
    return Runner(router, graph, store=store)


def history(n: int) -> list[Any]:
    out: list[Any] = []
    for i in range(n // 2):
        out.append(UserMessage(content=f"Earlier question {i}: where is my parcel, order B{i}?"))
        out.append(AssistantMessage(content=f"Order B{i} was delivered on Monday, {i} May."))
    return out


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str | None]:
    if dsn:
        yield dsn
        return
    try:
        from tests.stores.postgres_server import PostgresUnavailable, throwaway_server
    except ImportError:
        yield None
        return
    try:
        with throwaway_server() as started:
            yield started
    except PostgresUnavailable as exc:
        print(f"postgres: skipped ({exc})", file=sys.stderr)
        yield None


async def open_store(kind: str, directory: Path, dsn: str | None) -> CheckpointStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(directory / f"runs-{time.monotonic_ns()}.sqlite")
    from intentflow.stores import PostgresStore

    assert dsn is not None
    store = PostgresStore(dsn)
    await store.migrate()
    return store


async def write_latency(
    kinds: list[str], writes: int, history_len: int, dsn: str | None
) -> dict[str, Any]:
    # The checkpoint of a finished run with some history: the document a step saves.
    probe = MemoryStore()
    result = await build(probe).run("I want a refund", history=history(history_len))
    data = (await probe.load(result.run_id)).data
    RunState.loads(data)  # it is a real checkpoint
    out: dict[str, Any] = {"checkpoint_bytes": len(data.encode())}
    with tempfile.TemporaryDirectory() as directory:
        for kind in kinds:
            store = await open_store(kind, Path(directory), dsn)
            times: list[float] = []
            version = 0
            for _ in range(writes):
                start = time.perf_counter()
                version = await store.save(
                    "bench-run", data=data, status="running", expected_version=version
                )
                times.append((time.perf_counter() - start) * 1e6)
            await store.aclose()
            ordered = sorted(times)
            out[kind] = {
                "p50_us": round(statistics.median(times), 1),
                "p99_us": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
                "writes": writes,
            }
    return out


async def run_overhead(
    kinds: list[str], samples: int, runs: int, dsn: str | None
) -> dict[str, Any]:
    contenders = ["none", *kinds]
    per_sample: dict[str, list[float]] = {name: [] for name in contenders}
    saves: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        stores = {kind: await open_store(kind, Path(directory), dsn) for kind in kinds}
        runners = {name: build(stores.get(name)) for name in contenders}
        for runner in runners.values():  # warm up
            await runner.run("I want a refund")
        for kind, store in stores.items():
            result = await runners[kind].run("I want a refund")
            saves[kind] = (await store.load(result.run_id)).version
        for sample in range(samples):
            order = contenders if sample % 2 == 0 else contenders[::-1]
            for name in order:
                runner = runners[name]
                start = time.perf_counter()
                for _ in range(runs):
                    await runner.run("I want a refund")
                per_sample[name].append((time.perf_counter() - start) / runs * 1e6)
        for store in stores.values():
            await store.aclose()
    base = summarize(per_sample["none"]).median
    out: dict[str, Any] = {}
    for name in contenders:
        summary = summarize(per_sample[name])
        out[name] = {
            **summary.to_dict(1),
            "ratio": round(summary.median / base, 2),
            "saves_per_run": saves.get(name, 0),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--history", type=int, default=20, help="earlier messages in the run")
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--stores", default="memory,sqlite,postgres")
    parser.add_argument("--postgres", help="DSN of a server to use (default: start one)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.writes, args.samples, args.runs = 100, 3, 5
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.PrintLoggerFactory(open("/dev/null", "w")),  # noqa: SIM115
        cache_logger_on_first_use=True,
    )
    kinds = args.stores.split(",")
    with postgres(args.postgres if "postgres" in kinds else "") as dsn:
        if "postgres" in kinds and dsn is None:
            kinds.remove("postgres")
        results: dict[str, Any] = {
            "benchmark": "store",
            "machine": machine_info(),
            "packages": package_versions(["intentflow", "psycopg", "psycopg-pool"]),
            "sqlite_version": __import__("sqlite3").sqlite_version,
            "write": anyio.run(write_latency, kinds, args.writes, args.history, dsn),
            "run": anyio.run(run_overhead, kinds, args.samples, args.runs, dsn),
        }
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    write, run = results["write"], results["run"]
    print()
    print(f"checkpoint: {write['checkpoint_bytes']} bytes of JSON")
    print(
        markdown_table(
            ["store", "save p50 µs", "save p99 µs", "saves/run", "µs/run", "p10", "p90", "ratio"],
            [
                [
                    name,
                    write.get(name, {}).get("p50_us", "-"),
                    write.get(name, {}).get("p99_us", "-"),
                    run[name]["saves_per_run"],
                    run[name]["median"],
                    run[name]["p10"],
                    run[name]["p90"],
                    run[name]["ratio"],
                ]
                for name in run
            ],
            "lrrrrrrr",
        )
    )


if __name__ == "__main__":
    main()
