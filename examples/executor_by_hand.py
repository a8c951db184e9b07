"""Executor by hand: compile a toolset for OpenAI strict mode and execute a model's tool calls.

Runs offline, with no API key: this example plays the model's part by hand (the tool calls
below are what a model sends). `examples/quickstart.py` runs the same tools in the agent
loop.

    python examples/executor_by_hand.py
"""

from __future__ import annotations

import json
import logging
from typing import Literal

import anyio
import structlog
from pydantic import BaseModel

from intentflow import Executor, RetryPolicy, ToolCall, Toolset

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

shop = Toolset("shop")


class Product(BaseModel):
    sku: str
    name: str
    price: float


@shop.tool(timeout=5, retry=RetryPolicy(attempts=3))
async def get_weather(city: str, unit: Literal["c", "f"] = "c", days: int | None = None) -> dict:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
        days: Forecast days to include.
    """
    temp = 18.0 if unit == "c" else 64.4
    return {"city": city, "temp": temp, "unit": unit, "forecast_days": days or 0}


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


async def main() -> None:
    print("== What the model is sent (strict mode; optional parameters are nullable):")
    print(json.dumps(shop.to_openai()[0]["function"]["parameters"], indent=2))

    # What a model might answer, in one turn: two good calls (optional parameters as null,
    # as strict mode makes it send them), one with a bad argument, one naming a tool it was
    # not given.
    calls = [
        ToolCall(
            id="call_1",
            name="get_weather",
            arguments='{"city": "Paris", "unit": null, "days": null}',
        ),
        ToolCall(
            id="call_2",
            name="search_products",
            arguments='{"query": "umbrella", "max_price": 30, "limit": null}',
        ),
        ToolCall(id="call_3", name="get_weather", arguments='{"city": 42}'),
        ToolCall(id="call_4", name="delete_account", arguments="{}"),
    ]
    outcomes = await Executor(shop).execute(calls, allowed=shop.names)

    print("\n== What the tools returned (each goes back to the model by tool_call_id):")
    for outcome in outcomes:
        where = f"{outcome.tool_call_id} {outcome.called_as:<16}"
        print(f"{where} {outcome.kind.value:<18} {outcome.content}")


if __name__ == "__main__":
    anyio.run(main)
