"""A small durable application for the durable-run tests (and the crash test's child).

A triage agent hands over to billing, which looks an order up and refunds it (refunds over
100 need approval) in one parallel batch, then answers. The model is deterministic: its reply
depends only on how many assistant messages the conversation has, so a fresh model in a new
process answers a resumed run exactly as the first would have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from intentflow.agents import Agent, AgentGraph, Runner
from intentflow.messages import AssistantMessage
from intentflow.models import ModelRequest
from intentflow.router import Intent, Prediction, Router
from intentflow.stores import CheckpointStore
from intentflow.testing import Reply, ScriptedModel
from intentflow.toolsets import Tool


class Keyword:
    """Routes "refund" messages to the refund intent, the rest to chat."""

    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        if "refund" in text:
            return Prediction.from_scores([("refund", 0.9), ("chat", 0.1)])
        return Prediction.from_scores([("chat", 0.9), ("refund", 0.1)])


class Ledger(BaseModel):
    """The run state: what the tools did."""

    refunds: list[str] = []


class Effects:
    """Counts each tool's executions (in a file when ``path`` is set: across processes)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.counts: dict[str, int] = {}

    def hit(self, name: str) -> None:
        if self.path is None:
            self.counts[name] = self.counts.get(name, 0) + 1
            return
        with self.path.open("a") as f:  # one line per execution; append is atomic enough
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> dict[str, int]:
        if self.path is None:
            return dict(self.counts)
        counts: dict[str, int] = {}
        if self.path.exists():
            for line in self.path.read_text().split():
                counts[line] = counts.get(line, 0) + 1
        return counts


def script(amount: float = 50.0) -> Any:
    """The model: a reply per position in the conversation (deterministic)."""

    def answer(request: ModelRequest) -> Reply:
        turns = sum(isinstance(m, AssistantMessage) for m in request.messages)
        if turns == 0:
            return Reply.call("transfer_to_billing", {}, id="t1")
        if turns == 1:
            return Reply.calls(
                ("lookup_order", {"order_id": "A1"}, "c1"),
                ("issue_refund", {"order_id": "A1", "amount": amount}, "c2"),
            )
        last = request.messages[-1]
        return Reply.text(f"Done: {getattr(last, 'content', '')}")

    return answer


def build(
    store: CheckpointStore | None,
    effects: Effects,
    *,
    amount: float = 50.0,
    model: Any = None,
    refund_idempotent: bool = False,
) -> Runner:
    """The runner (a fresh model each time, as a new process would have)."""
    model = model if model is not None else ScriptedModel(script(amount))

    def lookup_order(order_id: str) -> dict[str, str]:
        """Look an order up."""
        effects.hit("lookup_order")
        return {"order_id": order_id, "status": "delivered"}

    async def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        effects.hit("issue_refund")
        return json.dumps({"refunded": order_id, "amount": amount})

    tools = [
        Tool.from_function(lookup_order, idempotent=True),
        Tool.from_function(
            issue_refund,
            approval=lambda a: a["amount"] > 100,
            idempotent=refund_idempotent,
        ),
    ]
    graph = AgentGraph(
        [
            Agent(name="triage", model=model, handoffs=["billing"]),
            Agent(name="billing", model=model, tools=tools),
        ],
        state_type=Ledger,
    )
    router = Router(
        [
            Intent("refund", entry="triage", examples=["refund"]),
            Intent("chat", entry="triage", examples=["hello"]),
        ],
        Keyword(),
    )
    return Runner(router, graph, store=store)
