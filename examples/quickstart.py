"""Quickstart: an agent with weather and product-search tools, end to end.

    python examples/quickstart.py

With OPENAI_API_KEY set, it talks to the real API (model from INTENTFLOW_MODEL, default
gpt-4.1-mini; OPENAI_BASE_URL points it at any compatible endpoint). Without a key it starts
intentflow's loopback fake OpenAI server and a scripted stand-in for the model, so the same
code path (the real ``openai`` client, HTTP, streaming, tool execution) runs offline.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal

import anyio
import openai
import structlog
from pydantic import BaseModel

from intentflow import Toolset
from intentflow.agents import Agent, AgentEvent, ModelDelta, ToolCallFinished, ToolCallStarted
from intentflow.models import OpenAIChatModel, TextDelta
from intentflow.testing import FakeOpenAIServer, Reply

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

shop = Toolset("shop")


class Product(BaseModel):
    sku: str
    name: str
    price: float


@shop.tool(timeout=5)
async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    temp = {"paris": 18.0, "oslo": 4.0}.get(city.lower(), 21.0)
    return {"city": city, "temp": temp if unit == "c" else temp * 9 / 5 + 32, "unit": unit}


@shop.tool
def search_products(query: str, max_price: float | None = None, limit: int = 3) -> list[Product]:
    """Search the catalogue.

    Args:
        query: Free text.
        max_price: Only products at or under this price.
        limit: At most this many results.
    """
    catalogue = [
        Product(sku="U-1", name="Travel umbrella", price=19.0),
        Product(sku="U-2", name="Golf umbrella", price=35.0),
        Product(sku="R-1", name="Rain jacket", price=89.0),
    ]
    hits = [p for p in catalogue if query.lower() in p.name.lower()]
    return [p for p in hits if max_price is None or p.price <= max_price][:limit]


def build_agent(model: OpenAIChatModel) -> Agent[str]:
    return Agent(
        name="shop_assistant",
        instructions="You help travellers. Use the tools; answer in one or two sentences.",
        model=model,
        tools=shop,
        stream=True,
    )


QUESTION = "I'm in Paris today. What's the weather, and do you have an umbrella under 30?"


def stand_in_model(request: dict[str, Any]) -> Reply:
    """Plays the model offline: asks for both tools, then answers from their results."""
    last = request["messages"][-1]
    if last["role"] == "user":
        return Reply.calls(
            ("get_weather", {"city": "Paris", "unit": None}),
            ("search_products", {"query": "umbrella", "max_price": 30, "limit": None}),
        )
    results = [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]
    weather, products = results[-2], results[-1]
    names = ", ".join(f"{p['name']} ({p['price']:.0f})" for p in products) or "nothing"
    return Reply.text(
        f"It is {weather['temp']:.0f}°{weather['unit'].upper()} in {weather['city']}. "
        f"Under 30 we have: {names}."
    )


def show(event: AgentEvent) -> None:
    if isinstance(event, ToolCallStarted):
        print(f"model asked:  {event.call.name}({event.call.arguments})")
    elif isinstance(event, ToolCallFinished):
        print(f"tool {event.outcome.kind.value}: {event.outcome.content}")
    elif isinstance(event, ModelDelta) and isinstance(event.delta, TextDelta):
        print(event.delta.text, end="", flush=True)


async def main() -> None:
    print(f"user: {QUESTION}")
    if os.environ.get("OPENAI_API_KEY"):
        model = OpenAIChatModel(os.environ.get("INTENTFLOW_MODEL", "gpt-4.1-mini"))
        result = await build_agent(model).run(QUESTION, on_event=show)
    else:
        print("(no OPENAI_API_KEY: using the loopback fake server and a scripted model)")
        async with FakeOpenAIServer(stand_in_model) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="offline")
            model = OpenAIChatModel("gpt-4.1-mini", client)
            result = await build_agent(model).run(QUESTION, on_event=show)
    print()
    usage = result.usage
    print(
        f"\n{len(result.turns)} turns, {usage.requests} requests, "
        f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, "
        f"stopped by {result.stop_reason}"
    )


if __name__ == "__main__":
    anyio.run(main)
