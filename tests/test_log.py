"""Logging: the documented configuration, bound context on every event, no secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import structlog

from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.runner import Runner
from intentflow.log import configure_logging, redact_secrets
from intentflow.models import OpenAIChatModel
from intentflow.router import Intent, Prediction, Router
from intentflow.testing import FakeOpenAIServer, Reply
from intentflow.toolsets import Tool

SECRET_KEY = "sk-live-THIS-MUST-NOT-LEAK-0123456789"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    before = structlog.get_config()
    out = io.StringIO()
    configure_logging("json", level="DEBUG", stream=out)
    try:
        yield out
    finally:
        structlog.configure(**before)


class Always:
    name = "always"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("account", 0.9), ("other", 0.1)])


def change_password(user: str, password: str) -> str:
    """Change a user's password."""
    return "changed"


@pytest.mark.anyio
async def test_a_run_logs_bound_events_and_no_secrets(logs: io.StringIO) -> None:
    def script(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply.text("Done.")
        return Reply.call("change_password", {"user": "ada", "password": PASSWORD})

    async with FakeOpenAIServer(script) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=SECRET_KEY, max_retries=0)
        tool = Tool.from_function(change_password, sensitive=["password"])
        agent = Agent(
            name="accounts", model=OpenAIChatModel("gpt-test", client=client), tools=[tool]
        )
        router = Router(
            [
                Intent("account", examples=["password"], entry="accounts"),
                Intent("other", examples=["x"]),
            ],
            Always(),
        )
        result = await Runner(router, AgentGraph([agent])).run(f"my key is {SECRET_KEY}")
        await client.close()
    assert result.output == "Done."

    text = logs.getvalue()
    assert SECRET_KEY not in text
    assert PASSWORD not in text
    records = [json.loads(line) for line in text.splitlines()]
    by_event: dict[str, Any] = {}
    for record in records:
        by_event.setdefault(record["event"], record)  # the first of each
    for name in (
        "graph.run.started",
        "agent.turn",
        "tool.call",
        "agent.run.finished",
        "graph.run.finished",
    ):
        record = by_event[name]
        assert record["run_id"] == result.run_id, name
        assert "timestamp" in record and "level" in record
    assert by_event["agent.turn"]["intent"] == "account" and by_event["agent.turn"]["turn"] == 1
    assert by_event["agent.turn"]["agent"] == "accounts"
    # The tool redacts it, and the processor too (password is a secret key).
    assert by_event["tool.call"]["arguments"] == {"user": "ada", "password": "[redacted]"}
    assert by_event["graph.run.finished"]["path"] == ["accounts"]


def test_redaction_reaches_nested_keys_and_strings() -> None:
    event = {
        "event": "x",
        "request": {"headers": {"Authorization": "Bearer abc.def.ghi-123", "X-Api-Key": "k"}},
        "items": [{"password": "p"}, "token sk-abcdefghijk"],
        "short": "sk-1",
    }
    out = redact_secrets(None, "info", event)
    assert out["request"]["headers"] == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]"}
    assert out["items"] == [{"password": "[redacted]"}, "token [redacted]"]
    assert out["short"] == "sk-1"


def test_console_mode_and_bad_arguments() -> None:
    before = structlog.get_config()
    out = io.StringIO()
    configure_logging(stream=out)
    try:
        structlog.get_logger("t").info("hello", token="abc")
        structlog.get_logger("t").debug("hidden")
    finally:
        structlog.configure(**before)
    line = out.getvalue()
    assert "hello" in line and "[redacted]" in line and "hidden" not in line
    with pytest.raises(ValueError, match="mode"):
        configure_logging("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="LOUD")
