"""The support desk as an HTTP service (examples/service/), tested as its clients see it:
service processes under uvicorn on 127.0.0.1, a real HTTP client (httpx2), the Server-Sent
Events parsed event by event. Every wait is bounded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0  # seconds, for any one exchange with a service
STARTUP = 30.0  # seconds for a service process to answer /health
PAYMENT_LATENCY = 1.0  # seconds a refund takes in the shared service: time to disconnect

SMALL_TALK = "Hi there! Hope you're having a good day."
ORDER_STATUS = "Where is my order ORD-1001?"
REFUND = "I was charged twice for ORD-1002 and would like a refund. My email is maya@example.com."
THANKS = "Thanks a lot, bye!"


# ---------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    """A service under uvicorn in a child process."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP
        with httpx2.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"service {self.name} exited:\n{self.log.read_text()}")
                with contextlib.suppress(httpx2.TransportError):
                    if client.get("/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    pytest.fail(f"service {self.name} did not start:\n{self.log.read_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it as a process manager would: SIGTERM (uvicorn shuts down, the lifespan
        closes the store), SIGKILL if that takes too long."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _spawn(name: str, directory: Path, **env: str) -> ServiceProcess:
    port = _free_port()
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTENTFLOW_SERVICE_") and k != "OPENAI_API_KEY"
    }
    environ.update(env)
    log = directory / f"service-{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.service", "--port", str(port), "--log-level", "info"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(name, f"http://127.0.0.1:{port}", process, log)


@contextlib.contextmanager
def services(
    directory: Path, *configs: tuple[str, dict[str, str]]
) -> Iterator[list[ServiceProcess]]:
    """Start processes together (their start-ups overlap), wait for each, stop them all."""
    started = [_spawn(name, directory, **env) for name, env in configs]
    try:
        for service in started:
            service.wait_ready()
        yield started
    finally:
        for service in started:
            service.stop()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service most tests share: SQLite, a payment provider taking a second per refund."""
    directory = tmp_path_factory.mktemp("service")
    env = {
        "INTENTFLOW_SERVICE_DB": str(directory / "desk.sqlite"),
        "INTENTFLOW_SERVICE_PAYMENT_LATENCY": str(PAYMENT_LATENCY),
    }
    with services(directory, ("desk", env)) as (service,):
        yield service


@pytest.fixture
async def client(desk: ServiceProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=desk.base_url, timeout=TIMEOUT) as http:
        yield http


# ---------------------------------------------------------------------------- SSE


@dataclass
class Event:
    event: str
    data: Any


async def sse_events(response: httpx2.Response) -> AsyncIterator[Event]:
    """Parse a text/event-stream body as it arrives, one event at a time."""
    name, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)))
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


@dataclass
class Streamed:
    response: httpx2.Response
    events: list[Event]

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def result(self) -> dict[str, Any]:
        last = self.events[-1]
        assert last.event == "result", self.events[-3:]
        return dict(last.data)


async def post_sse(client: httpx2.AsyncClient, url: str, body: Any) -> Streamed:
    """POST and read the whole event stream (or the error response)."""
    with anyio.fail_after(TIMEOUT):
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return Streamed(response, [])
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [event async for event in sse_events(response)]
    return Streamed(response, events)


async def say(client: httpx2.AsyncClient, conversation: str, text: str) -> Streamed:
    streamed = await post_sse(client, f"/conversations/{conversation}/messages", {"message": text})
    assert streamed.response.status_code == 200, streamed.response.text
    return streamed


async def decide(client: httpx2.AsyncClient, run_id: str, decisions: dict[str, Any]) -> Streamed:
    return await post_sse(client, f"/runs/{run_id}/approvals", {"decisions": decisions})


async def get(client: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    with anyio.fail_after(TIMEOUT):
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return dict(response.json())


def new_conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:12]}"


def approve(result: dict[str, Any]) -> dict[str, Any]:
    return {p["id"]: {"approved": True} for p in result["pending"]}


async def paused_refund(client: httpx2.AsyncClient, conversation: str) -> dict[str, Any]:
    result = (await say(client, conversation, REFUND)).result
    assert result["stop_reason"] == "paused", result
    (pending,) = result["pending"]
    assert (pending["tool"], pending["kind"], pending["node"]) == (
        "issue_refund",
        "approval",
        "billing",
    )
    assert pending["arguments"] == {
        "charge_id": "CH-5003",
        "amount": "59.00",
        "reason": "duplicate_charge",
    }
    return result


# ---------------------------------------------------------------------------- one service


async def test_a_message_streams_its_events_in_order(client: httpx2.AsyncClient) -> None:
    conversation = new_conversation()
    streamed = await say(client, conversation, ORDER_STATUS)

    names = streamed.names
    assert names[:3] == ["RouteDecided", "NodeStarted", "ModelRequested"]
    assert names[-2:] == ["FinalOutput", "result"]
    assert names.count("result") == 1 and "error" not in names
    first = streamed.events[0].data
    assert first["decision"]["intent"] == "order_status"
    assert streamed.events[1].data == {"agent": "orders", "via": "entry", "source": None}
    calls = [e.data["call"]["name"] for e in streamed.events if e.event == "ToolCallStarted"]
    # Raw arguments are never streamed (a tool may mark them sensitive).
    assert all(
        set(e.data["call"]) == {"id", "name"}
        for e in streamed.events
        if e.event == "ToolCallStarted"
    )
    done = [e.data["outcome"] for e in streamed.events if e.event == "ToolCallFinished"]
    assert calls == [d["called_as"] for d in done] == ["lookup_order", "track_shipment"]
    assert {d["kind"] for d in done} == {"success"}
    # Each tool call is started, then finished, before the next model request.
    assert names[3:10] == [
        "ModelResponded",
        "ToolCallStarted",
        "ToolCallFinished",
        "ModelRequested",
        "ModelResponded",
        "ToolCallStarted",
        "ToolCallFinished",
    ]
    # A model request is summarised: no prompt, no tool schemas.
    requested = streamed.events[2].data
    assert requested == {
        "agent": "orders",
        "turn": 1,
        "tools": ["lookup_order", "track_shipment"],
        "tool_choice": {"name": "lookup_order"},
        "messages": 2,
    }
    result = streamed.result
    assert (result["stop_reason"], result["intent"], result["path"]) == (
        "final_answer",
        "order_status",
        ["orders"],
    )
    assert "DHL, tracking number JD014600003826" in result["output"]
    assert result["conversation_id"] == conversation
    assert streamed.response.headers["x-run-id"] == result["run_id"]

    view = await get(client, f"/conversations/{conversation}")
    roles = [m["role"] for m in view["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert view["messages"][0]["content"] == ORDER_STATUS
    assert view["messages"][-1]["content"] == result["output"]
    assert view["last_run"]["status"] == "finished" and view["last_run"]["pending"] == []
    assert view["runs"] == [{"run_id": result["run_id"], "seq": 1, "status": "finished"}]
    run = await get(client, f"/runs/{result['run_id']}")
    assert (run["status"], run["output"], run["seq"]) == ("finished", result["output"], 1)


async def test_a_refund_over_the_limit_waits_for_approval(client: httpx2.AsyncClient) -> None:
    conversation = new_conversation()
    paused = await paused_refund(client, conversation)
    run_id = paused["run_id"]
    # Paused: the run and the conversation say so, and new messages wait for a decision.
    run = await get(client, f"/runs/{run_id}")
    assert run["status"] == "paused" and run["pending"] == paused["pending"]
    view = await get(client, f"/conversations/{conversation}")
    assert view["last_run"]["status"] == "paused"
    assert view["last_run"]["pending"] == paused["pending"]
    busy = await post_sse(client, f"/conversations/{conversation}/messages", {"message": THANKS})
    assert busy.response.status_code == 409
    error = busy.response.json()
    assert error["error"] == "run_paused" and error["run_id"] == run_id
    assert f"POST /runs/{run_id}/approvals" in error["detail"]
    # Decisions must match the pending approvals exactly.
    wrong = await decide(client, run_id, {"apr_nope": {"approved": True}})
    assert wrong.response.status_code == 409
    assert wrong.response.json()["error"] == "decisions_do_not_match"
    assert "apr_nope" in wrong.response.json()["detail"]

    resumed = await decide(client, run_id, approve(paused))
    assert resumed.response.status_code == 200
    names = resumed.names
    assert names[0] == "ToolCallStarted" and names[-2:] == ["FinalOutput", "result"]
    (finished,) = [e.data["outcome"] for e in resumed.events if e.event == "ToolCallFinished"]
    assert (finished["called_as"], finished["kind"]) == ("issue_refund", "success")
    assert finished["duration"] >= PAYMENT_LATENCY * 0.9
    result = resumed.result
    assert result["run_id"] == run_id and result["stop_reason"] == "final_answer"
    assert result["output"].startswith("Done: I refunded 59.00 EUR for the duplicate charge")
    assert result["path"] == ["triage", "billing"]

    assert (await get(client, f"/runs/{run_id}"))["status"] == "finished"
    again = await decide(client, run_id, approve(paused))
    assert again.response.status_code == 409
    assert again.response.json()["error"] == "run_not_resumable"
    assert "has finished" in again.response.json()["detail"]
    # The conversation goes on.
    thanks = (await say(client, conversation, THANKS)).result
    assert thanks["stop_reason"] == "final_answer" and thanks["intent"] == "small_talk"
    view = await get(client, f"/conversations/{conversation}")
    assert [r["status"] for r in view["runs"]] == ["finished", "finished"]
    assert view["messages"][-1]["content"] == thanks["output"]


async def test_a_rejected_refund_is_not_made(client: httpx2.AsyncClient) -> None:
    conversation = new_conversation()
    paused = await paused_refund(client, conversation)
    decisions = {
        p["id"]: {"approved": False, "reason": "refunds need a receipt"} for p in paused["pending"]
    }
    resumed = await decide(client, paused["run_id"], decisions)
    (finished,) = [e.data["outcome"] for e in resumed.events if e.event == "ToolCallFinished"]
    assert (finished["called_as"], finished["kind"]) == ("issue_refund", "permission_denied")
    assert "did not approve this call: refunds need a receipt" in finished["content"]
    result = resumed.result
    assert result["stop_reason"] == "final_answer"
    assert result["output"].startswith("I have not refunded anything")
    view = await get(client, f"/conversations/{conversation}")
    tool = [m for m in view["messages"] if m["role"] == "tool"][-1]
    assert json.loads(tool["content"])["error"] == "rejected"
    assert view["last_run"]["status"] == "finished"


async def test_unknown_and_malformed_requests(client: httpx2.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        missing = await client.get(f"/conversations/{new_conversation()}")
        assert missing.status_code == 404 and missing.json()["error"] == "unknown_conversation"
        assert (await client.get("/runs/run_nope")).status_code == 404
        approvals = await client.post("/runs/run_nope/approvals", json={"decisions": {}})
        assert approvals.status_code == 404 and approvals.json()["error"] == "unknown_run"
        url = f"/conversations/{new_conversation()}/messages"
        assert (await client.post(url, json={})).status_code == 400
        assert (await client.post(url, content=b"not json")).status_code == 400
        assert (await client.post(url, json={"message": ""})).status_code == 400
        bad_id = await client.post("/conversations/..%20x/messages", json={"message": "hi"})
        assert bad_id.status_code in (400, 404)
        # Nothing was stored for the refused requests.
        assert (await client.get(url.removesuffix("/messages"))).status_code == 404


async def test_a_client_disconnect_cancels_the_run_and_keeps_its_transcript(
    client: httpx2.AsyncClient,
) -> None:
    conversation = new_conversation()
    paused = await paused_refund(client, conversation)
    run_id = paused["run_id"]
    seen: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with client.stream(
            "POST", f"/runs/{run_id}/approvals", json={"decisions": approve(paused)}
        ) as response:
            async for event in sse_events(response):
                seen.append(event.event)
                if event.event == "ToolCallStarted":
                    break  # the refund is at the payment provider: hang up
    assert seen == ["ToolCallStarted"]

    # The refund takes PAYMENT_LATENCY seconds: had the run gone on, it would finish.
    with anyio.fail_after(TIMEOUT):
        for _ in range(int(TIMEOUT / 0.05)):
            run = await get(client, f"/runs/{run_id}")
            if run["status"] != "running":
                break
            await anyio.sleep(0.05)
    assert run["status"] == "cancelled", run
    await anyio.sleep(PAYMENT_LATENCY)  # and it stays cancelled
    assert (await get(client, f"/runs/{run_id}"))["status"] == "cancelled"

    view = await get(client, f"/conversations/{conversation}")
    assert view["last_run"]["status"] == "cancelled"
    *_, call, answer = view["messages"]
    assert [c["name"] for c in call["tool_calls"]] == ["issue_refund"]
    assert answer["role"] == "tool" and answer["tool_call_id"] == call["tool_calls"][0]["id"]
    assert json.loads(answer["content"])["error"]["kind"] == "cancelled"
    kept = view["messages"]

    # The conversation continues from the partial transcript.
    result = (await say(client, conversation, THANKS)).result
    assert result["stop_reason"] == "final_answer"
    view = await get(client, f"/conversations/{conversation}")
    assert view["messages"][: len(kept)] == kept
    assert [r["status"] for r in view["runs"]] == ["cancelled", "finished"]


# ---------------------------------------------------------------------------- restarts


async def test_a_restarted_service_continues_the_conversation(tmp_path: Path) -> None:
    env = {"INTENTFLOW_SERVICE_DB": str(tmp_path / "desk.sqlite")}
    conversation = new_conversation()
    with services(tmp_path, ("first", env)) as (first,):
        async with httpx2.AsyncClient(base_url=first.base_url, timeout=TIMEOUT) as client:
            await say(client, conversation, SMALL_TALK)
            paused = await paused_refund(client, conversation)
            before = await get(client, f"/conversations/{conversation}")
    # A clean shutdown (uvicorn exits by the signal it handled, after the lifespan's end).
    assert first.process.returncode in (0, -signal.SIGTERM), first.log.read_text()
    assert "Application shutdown complete" in first.log.read_text()

    with services(tmp_path, ("second", env)) as (second,):
        async with httpx2.AsyncClient(base_url=second.base_url, timeout=TIMEOUT) as client:
            after = await get(client, f"/conversations/{conversation}")
            assert after == before  # the paused run, its pending approval, the transcript
            result = (await decide(client, paused["run_id"], approve(paused))).result
            assert result["output"].startswith("Done: I refunded 59.00 EUR")
            order = (await say(client, conversation, ORDER_STATUS)).result
            assert "JD014600003826" in order["output"]
            view = await get(client, f"/conversations/{conversation}")
    assert view["messages"][: len(before["messages"])] == before["messages"]
    assert [(r["seq"], r["status"]) for r in view["runs"]] == [
        (1, "finished"),
        (2, "finished"),
        (3, "finished"),
    ]


async def test_two_processes_on_one_postgresql_serve_a_conversation_alternately(
    tmp_path: Path, postgres_dsn: str
) -> None:
    env = {"INTENTFLOW_SERVICE_DSN": postgres_dsn}
    conversation = new_conversation()
    with services(tmp_path, ("a", env), ("b", env)) as (a, b):
        async with (
            httpx2.AsyncClient(base_url=a.base_url, timeout=TIMEOUT) as to_a,
            httpx2.AsyncClient(base_url=b.base_url, timeout=TIMEOUT) as to_b,
        ):
            assert (await get(to_a, "/health"))["store"] == "postgresql"
            first = (await say(to_a, conversation, SMALL_TALK)).result
            second = (await say(to_b, conversation, ORDER_STATUS)).result
            assert "JD014600003826" in second["output"]
            after_b = await get(to_b, f"/conversations/{conversation}")
            assert after_b["messages"][0]["content"] == SMALL_TALK  # B continued A's history
            assert after_b["messages"][1]["content"] == first["output"]

            paused = await paused_refund(to_a, conversation)
            # B knows the conversation is waiting, and takes the decision.
            busy = await post_sse(
                to_b, f"/conversations/{conversation}/messages", {"message": THANKS}
            )
            assert busy.response.status_code == 409
            result = (await decide(to_b, paused["run_id"], approve(paused))).result
            assert result["output"].startswith("Done: I refunded 59.00 EUR")

            view_a = await get(to_a, f"/conversations/{conversation}")
            view_b = await get(to_b, f"/conversations/{conversation}")
    assert view_a == view_b
    assert [(r["seq"], r["status"]) for r in view_a["runs"]] == [
        (1, "finished"),
        (2, "finished"),
        (3, "finished"),
    ]
    users = [m["content"] for m in view_a["messages"] if m["role"] == "user"]
    assert users == [SMALL_TALK, ORDER_STATUS, REFUND]
    assert view_a["messages"][-1]["content"] == result["output"]
    ids = [c["id"] for m in view_a["messages"] for c in m.get("tool_calls") or ()]
    assert len(ids) == len(set(ids))  # no tool-call id reused across the processes
