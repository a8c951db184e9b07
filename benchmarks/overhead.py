"""Cost of one agent run with intentflow, against a hand-written loop on the ``openai`` SDK.

What is measured: one *run* is the smallest complete tool-using exchange: the model asks for
``get_weather(city="Paris")``, the tool runs, the model answers (2 model calls, 1 tool call).
The model is an in-process ``MockTransport`` under ``AsyncOpenAI``, so the numbers are what the
client side costs in CPU: building and encoding requests, the SDK's HTTP machinery, decoding
responses, the loop itself. Two contenders share one ``AsyncOpenAI`` client (one transport):

* **intentflow**: ``await Agent(model=OpenAIChatModel("gpt-4.1-mini", client),
  tools=toolset).run("What is the weather in Paris?")``: the request body built by the adapter
  from tool entries compiled at registration, the executor (JSON parsing, validation, the
  null-to-default plan, outcome, serialization), the transcript, usage, turn records and one
  ``agent.run.finished`` INFO event per run;
* **hand-written**: the loop a user writes without a framework: ``client.chat.completions
  .create(model=..., messages=..., tools=...)``, read ``tool_calls``, ``json.loads`` the
  arguments, await the function (no validation), append the assistant and tool messages, call
  again, return the text. It sends the same tool entries (``toolset.to_openai()``), so both put
  equivalent bytes on the wire; the script checks that before measuring.

Each with 1 tool registered (``get_weather``) and with 50 (``get_weather`` and 49 realistic
tools from JSON Schemas: strings, enums, optional integers, arrays, nested objects). The issue's
goal: intentflow no slower than the hand-written loop with 1 tool, and at most half its time
with 50 tools (``ratio = median(intentflow) / median(hand-written)``).

The transport returns one of two pre-encoded Chat Completions bodies (with ``usage``): the text
answer when the request carries a tool result, else the tool call. So both contenders get
identical responses and the fake server costs both the same. Before any timing, a checked run
of each contender must give the same final text, make exactly 2 HTTP requests, and send the
same ``tools`` array and the same messages; otherwise the script aborts.

Method: a *sample* times ``--runs`` consecutive runs of one contender with
``time.perf_counter_ns``; the two contenders alternate sample by sample, and which goes first
alternates too, so machine noise hits both alike. After a checked warm-up, ``--samples``
samples of each are taken; the reported value is the median of the sample means in µs per run,
with p10/p90. The ratio's spread is that of the per-sample paired ratios, and the overhead's
that of the per-sample paired differences. The garbage collector stays on.

Logging is configured as a production app would: structlog filtering below INFO, a JSON chain
written to ``os.devnull``, loggers cached on first use, so intentflow's one INFO event per run
is built, rendered and written (its cost is included). A second variant filters at WARNING
(the event is dropped) to show logging's share; it runs in a child process, because a
structlog logger cached on first use keeps its configuration for the life of the process.

Run it from the repository root (about 4 minutes with the defaults on a 2-core machine, half
of it in the WARNING child)::

    python benchmarks/overhead.py                    # JSON, then Markdown tables, on stdout
    python benchmarks/overhead.py --json out.json    # JSON to a file, tables on stdout
    python benchmarks/overhead.py --json -           # JSON only, on stdout
    python benchmarks/overhead.py --quick            # a smoke run (seconds)
    python benchmarks/overhead.py --backend trio
    python benchmarks/overhead.py --profile 50       # cProfile of intentflow runs, 50 tools
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import openai
import structlog
from _stats import machine_info, markdown_table, package_versions, paired_differences, summarize

try:  # the openai SDK 3.x transport package; 2.x used httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

from intentflow import Tool, Toolset
from intentflow.agents import Agent
from intentflow.models import OpenAIChatModel

MODEL = "gpt-4.1-mini"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is 18 °C and partly cloudy in Paris right now."
CALL_ID = "call_bench_weather_1"
ARGUMENTS = '{"city":"Paris"}'
MAX_TURNS = 10  # the hand-written loop's cap, the same as Agent.max_turns' default
GOAL_RATIO = {1: 1.0, 50: 0.5}
"""The issue's goal: intentflow/hand-written at most 1.0 with 1 tool and 0.5 with 50 tools."""

LOG_PROCESSORS = ("merge_contextvars", "add_log_level", "TimeStamper(iso, utc)", "JSONRenderer")
LogLevel = Literal["info", "warning"]


# --------------------------------------------------------------------------- the tools


async def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius"
) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit of the reply.
    """
    return {"city": city, "temperature": 18, "unit": unit, "conditions": "partly cloudy"}


async def not_called(args: dict[str, Any] | None = None, /, **kwargs: Any) -> str:
    """The handler of the 49 other tools (never called: the model only asks for the weather).

    It takes a dict (how intentflow calls a JSON-schema tool) or keyword arguments (how the
    hand-written loop calls every function), so both contenders use one dispatch table.
    """
    return "ok"


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _e(description: str, *values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


def _i(description: str, minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def _n(description: str) -> dict[str, Any]:
    return {"type": "number", "description": description}


def _b(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _a(description: str, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": items}


def _o(description: str, /, **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _spec(
    name: str,
    description: str,
    required: dict[str, dict[str, Any]],
    optional: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, str, dict[str, Any]]:
    return (
        name,
        description,
        {
            "type": "object",
            "properties": {**required, **(optional or {})},
            "required": list(required),
            "additionalProperties": False,
        },
    )


_ADDRESS = _o(
    "Postal address.",
    street=_s("Street and number."),
    city=_s("City."),
    postal_code=_s("Postal code."),
    country=_s("ISO 3166-1 alpha-2 country code, e.g. FR."),
)
_MONEY = _o("An amount of money.", amount=_n("Amount."), currency=_s("ISO 4217 code, e.g. EUR."))
_DATE = _s("Date, YYYY-MM-DD.", format="date")
_LIMIT = _i("Maximum number of results.", 1, 100)

OTHER_TOOLS: list[tuple[str, str, dict[str, Any]]] = [
    _spec(
        "get_forecast",
        "Daily weather forecast for a city.",
        {"city": _s("City name.")},
        {"days": _i("Number of days.", 1, 14), "unit": _e("Unit.", "celsius", "fahrenheit")},
    ),
    _spec(
        "search_flights",
        "Search flights between two airports on a date.",
        {"origin": _s("IATA code of the departure airport."), "destination": _s("IATA code.")},
        {
            "date": _DATE,
            "cabin": _e("Cabin class.", "economy", "premium_economy", "business", "first"),
            "passengers": _i("Number of passengers.", 1, 9),
        },
    ),
    _spec(
        "book_flight",
        "Book a flight offer for passengers.",
        {
            "offer_id": _s("Offer id from search_flights."),
            "passengers": _a(
                "Passengers.",
                _o("A passenger.", first_name=_s("Given name."), last_name=_s("Family name.")),
            ),
        },
        {"seat_preference": _e("Seat preference.", "window", "aisle", "any")},
    ),
    _spec(
        "search_hotels",
        "Search hotels in a city for a stay.",
        {"city": _s("City."), "check_in": _DATE, "check_out": _DATE},
        {
            "guests": _i("Number of guests.", 1, 10),
            "max_price": _MONEY,
            "sort": _e("Order.", "price", "rating", "distance"),
        },
    ),
    _spec(
        "book_hotel",
        "Book a hotel room.",
        {"hotel_id": _s("Hotel id."), "room_type": _e("Room.", "single", "double", "suite")},
        {"special_requests": _s("Free-text requests for the hotel.")},
    ),
    _spec(
        "rent_car",
        "Reserve a rental car.",
        {"pickup_location": _s("Pick-up location."), "pickup_date": _DATE, "return_date": _DATE},
        {"category": _e("Car category.", "economy", "compact", "suv", "van")},
    ),
    _spec(
        "convert_currency",
        "Convert an amount between currencies at today's rate.",
        {"amount": _n("Amount."), "from_currency": _s("ISO 4217."), "to_currency": _s("ISO 4217.")},
    ),
    _spec(
        "get_exchange_rates",
        "Exchange rates for a base currency.",
        {"base": _s("ISO 4217 code.")},
        {"symbols": _a("Currencies to return (default: all).", _s("ISO 4217 code."))},
    ),
    _spec(
        "search_products",
        "Search the product catalog.",
        {"query": _s("Search text.")},
        {
            "category": _e("Category.", "electronics", "home", "garden", "toys", "books"),
            "min_price": _n("Minimum price."),
            "max_price": _n("Maximum price."),
            "in_stock_only": _b("Only products in stock."),
            "limit": _LIMIT,
        },
    ),
    _spec(
        "get_product",
        "Details of one product.",
        {"product_id": _s("Product id.")},
        {"include_reviews": _b("Include the latest reviews.")},
    ),
    _spec(
        "add_to_cart",
        "Add a product to the customer's cart.",
        {"product_id": _s("Product id."), "quantity": _i("Quantity.", 1, 99)},
    ),
    _spec(
        "remove_from_cart",
        "Remove a product from the customer's cart.",
        {"product_id": _s("Product id.")},
    ),
    _spec(
        "checkout",
        "Place the order for the current cart.",
        {
            "shipping_address": _ADDRESS,
            "payment_method": _e("Payment.", "card", "paypal", "invoice"),
        },
        {"coupon_code": _s("Discount code.")},
    ),
    _spec(
        "get_order_status",
        "Where an order is.",
        {"order_id": _s("Order id, e.g. A-1234.")},
    ),
    _spec(
        "list_orders",
        "The customer's orders, newest first.",
        {"customer_id": _s("Customer id.")},
        {
            "status": _e("Filter.", "open", "shipped", "delivered", "cancelled"),
            "limit": _LIMIT,
        },
    ),
    _spec(
        "cancel_order",
        "Cancel an order that has not shipped.",
        {"order_id": _s("Order id.")},
        {"reason": _e("Why.", "changed_mind", "found_cheaper", "too_slow", "other")},
    ),
    _spec(
        "request_refund",
        "Refund all or part of an order.",
        {"order_id": _s("Order id."), "amount": _MONEY},
        {"reason": _s("Reason, in the customer's words.")},
    ),
    _spec(
        "track_shipment",
        "Tracking events of a parcel.",
        {"tracking_number": _s("Carrier tracking number.")},
        {"carrier": _e("Carrier.", "ups", "fedex", "dhl", "colissimo", "other")},
    ),
    _spec(
        "update_shipping_address",
        "Change the delivery address of an open order.",
        {"order_id": _s("Order id."), "address": _ADDRESS},
    ),
    _spec(
        "get_customer",
        "A customer's profile.",
        {"customer_id": _s("Customer id.")},
    ),
    _spec(
        "update_customer",
        "Update a customer's contact details.",
        {"customer_id": _s("Customer id.")},
        {
            "email": _s("New e-mail address.", format="email"),
            "phone": _s("New phone number, E.164."),
            "address": _ADDRESS,
        },
    ),
    _spec(
        "search_customers",
        "Find customers by name, e-mail or phone.",
        {"query": _s("Search text.")},
        {"limit": _LIMIT},
    ),
    _spec(
        "create_ticket",
        "Open a support ticket.",
        {"subject": _s("One-line summary."), "body": _s("Full description.")},
        {
            "priority": _e("Priority.", "low", "normal", "high", "urgent"),
            "customer_id": _s("Customer id."),
            "tags": _a("Tags.", _s("A tag.")),
        },
    ),
    _spec(
        "update_ticket",
        "Change a ticket's status, priority or assignee.",
        {"ticket_id": _s("Ticket id.")},
        {
            "status": _e("Status.", "open", "pending", "solved", "closed"),
            "priority": _e("Priority.", "low", "normal", "high", "urgent"),
            "assignee": _s("Agent e-mail."),
        },
    ),
    _spec(
        "add_ticket_comment",
        "Add a comment to a ticket.",
        {"ticket_id": _s("Ticket id."), "body": _s("Comment text.")},
        {"public": _b("Visible to the customer.")},
    ),
    _spec(
        "search_knowledge_base",
        "Search help-center articles.",
        {"query": _s("Search text.")},
        {"locale": _s("Locale, e.g. fr-FR."), "limit": _LIMIT},
    ),
    _spec(
        "send_email",
        "Send an e-mail.",
        {
            "to": _a("Recipients.", _s("E-mail address.", format="email")),
            "subject": _s("Subject."),
            "body": _s("Plain-text body."),
        },
        {"cc": _a("Copy.", _s("E-mail address.", format="email")), "reply_to_id": _s("Message.")},
    ),
    _spec(
        "search_email",
        "Search the mailbox.",
        {"query": _s("Gmail-style query.")},
        {"folder": _e("Folder.", "inbox", "sent", "archive", "spam"), "limit": _LIMIT},
    ),
    _spec(
        "send_sms",
        "Send a text message.",
        {"phone": _s("Phone number, E.164."), "text": _s("Message, at most 160 characters.")},
    ),
    _spec(
        "post_slack_message",
        "Post a message to a Slack channel.",
        {"channel": _s("Channel name or id."), "text": _s("Message (mrkdwn).")},
        {"thread_ts": _s("Reply in this thread.")},
    ),
    _spec(
        "list_calendar_events",
        "Events in a calendar between two dates.",
        {"start": _DATE, "end": _DATE},
        {"calendar_id": _s("Calendar id (default: primary).")},
    ),
    _spec(
        "create_calendar_event",
        "Create a calendar event and invite attendees.",
        {
            "title": _s("Title."),
            "start": _s("Start, ISO 8601 date-time.", format="date-time"),
            "duration_minutes": _i("Duration in minutes.", 5, 1440),
        },
        {
            "attendees": _a("Attendees.", _s("E-mail address.", format="email")),
            "location": _s("Room or address."),
            "video_call": _b("Add a video-call link."),
        },
    ),
    _spec(
        "find_free_slot",
        "First common free slot of several people.",
        {
            "attendees": _a("People.", _s("E-mail address.", format="email")),
            "duration_minutes": _i("Duration.", 5, 480),
        },
        {"earliest": _DATE, "latest": _DATE},
    ),
    _spec(
        "set_reminder",
        "Remind the user of something at a time.",
        {"text": _s("What to remind."), "at": _s("When, ISO 8601.", format="date-time")},
    ),
    _spec(
        "create_task",
        "Add a task to a project.",
        {"project_id": _s("Project id."), "title": _s("Task title.")},
        {
            "due": _DATE,
            "assignee": _s("Assignee e-mail."),
            "priority": _e("Priority.", "p1", "p2", "p3", "p4"),
        },
    ),
    _spec(
        "list_tasks",
        "Tasks of a project.",
        {"project_id": _s("Project id.")},
        {"status": _e("Filter.", "todo", "in_progress", "done"), "limit": _LIMIT},
    ),
    _spec(
        "search_documents",
        "Full-text search over the company's documents.",
        {"query": _s("Search text.")},
        {
            "file_type": _e("Type.", "pdf", "doc", "sheet", "slides", "any"),
            "modified_after": _DATE,
            "limit": _LIMIT,
        },
    ),
    _spec(
        "read_document",
        "The text of a document.",
        {"document_id": _s("Document id.")},
        {"page": _i("Page to read (default: all).", 1)},
    ),
    _spec(
        "summarize_url",
        "Fetch a web page and summarize it.",
        {"url": _s("Page URL.")},
        {"max_words": _i("Length of the summary.", 20, 500)},
    ),
    _spec(
        "web_search",
        "Search the web.",
        {"query": _s("Search text.")},
        {"recency_days": _i("Only results this recent.", 1, 365), "limit": _LIMIT},
    ),
    _spec(
        "translate_text",
        "Translate a text.",
        {"text": _s("Text."), "target_language": _s("ISO 639-1 code, e.g. de.")},
        {"formality": _e("Register.", "default", "formal", "informal")},
    ),
    _spec(
        "run_sql_query",
        "Run a read-only SQL query on the analytics warehouse.",
        {"sql": _s("One SELECT statement.")},
        {"max_rows": _i("Row cap.", 1, 10000)},
    ),
    _spec(
        "get_metric",
        "A business metric over a period.",
        {
            "metric": _e("Metric.", "revenue", "orders", "active_users", "churn", "nps"),
            "period": _o("Period.", start=_DATE, end=_DATE),
        },
        {"granularity": _e("Bucket size.", "day", "week", "month")},
    ),
    _spec(
        "get_stock_quote",
        "Latest quote of a listed stock.",
        {"symbol": _s("Ticker, e.g. AAPL.")},
        {"exchange": _s("Exchange MIC.")},
    ),
    _spec(
        "create_invoice",
        "Create and send an invoice.",
        {
            "customer_id": _s("Customer id."),
            "lines": _a(
                "Invoice lines.",
                _o("A line.", description=_s("Item."), quantity=_i("Quantity.", 1), price=_MONEY),
            ),
        },
        {"due_in_days": _i("Payment term.", 0, 120)},
    ),
    _spec(
        "get_invoice",
        "An invoice and its payment status.",
        {"invoice_id": _s("Invoice id.")},
    ),
    _spec(
        "restart_service",
        "Restart a service in an environment.",
        {"service": _s("Service name."), "environment": _e("Env.", "dev", "staging", "prod")},
        {"drain_seconds": _i("Drain time before the restart.", 0, 600)},
    ),
    _spec(
        "get_service_logs",
        "Recent log lines of a service.",
        {"service": _s("Service name.")},
        {
            "level": _e("Minimum level.", "debug", "info", "warning", "error"),
            "since_minutes": _i("Look-back window.", 1, 1440),
            "limit": _LIMIT,
        },
    ),
    _spec(
        "create_alert",
        "Create a monitoring alert on a metric threshold.",
        {
            "name": _s("Alert name."),
            "condition": _o(
                "When to fire.",
                metric=_s("Metric name."),
                operator=_e("Comparison.", "gt", "lt", "gte", "lte"),
                threshold=_n("Threshold."),
            ),
        },
        {"notify": _a("Channels to notify.", _s("Channel."))},
    ),
]
assert len(OTHER_TOOLS) == 49, len(OTHER_TOOLS)


def build_toolset(count: int) -> Toolset:
    """``get_weather`` (a Python function) and the first ``count - 1`` JSON-schema tools."""
    if not 1 <= count <= 1 + len(OTHER_TOOLS):
        raise ValueError(f"tool count must be 1..{1 + len(OTHER_TOOLS)}, not {count}")
    tools = [Tool.from_function(get_weather)]
    for name, description, schema in OTHER_TOOLS[: count - 1]:
        tools.append(Tool.from_json_schema(name, description, schema, not_called))
    return Toolset(f"bench_{count}", tools)


# --------------------------------------------------------------------------- the fake model


def _completion(message: dict[str, Any], finish_reason: str, completion_tokens: int) -> bytes:
    prompt_tokens = 120
    return json.dumps(
        {
            "id": f"chatcmpl-bench-{finish_reason}",
            "object": "chat.completion",
            "created": 1_750_000_000,
            "model": "gpt-4.1-mini-2025-04-14",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    ).encode()


TOOL_CALL_BODY = _completion(
    {
        "content": None,
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": ARGUMENTS},
            }
        ],
    },
    "tool_calls",
    17,
)
ANSWER_BODY = _completion({"content": ANSWER}, "stop", 14)
RESPONSE_HEADERS = {"content-type": "application/json"}
# Only a tool message has this key, and the run's only tool message is the last message of the
# second request; the checked run confirms it against the parsed body.
TOOL_RESULT_MARKER = b'"tool_call_id"'


class FakeModel:
    """The MockTransport handler: the tool call first, the answer once a tool result is sent.

    It costs both contenders the same: a substring test on the request body and a response
    built from pre-encoded bytes. With ``record`` set it also keeps the parsed request bodies
    and checks that the substring test agrees with the role of the last message.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.record: list[dict[str, Any]] | None = None
        self.sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        content = request.content
        answer = TOOL_RESULT_MARKER in content
        if self.record is not None:
            body = json.loads(content)
            if answer != (body["messages"][-1]["role"] == "tool"):
                raise AssertionError("the fake model's marker test disagrees with the request")
            self.record.append(body)
            self.sizes.append(len(content))
        return httpx.Response(
            200, headers=RESPONSE_HEADERS, content=ANSWER_BODY if answer else TOOL_CALL_BODY
        )


def make_client(fake: FakeModel) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://model.invalid/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
    )


# --------------------------------------------------------------------------- contenders

Runner = Callable[[int], Awaitable[str]]
"""Runs ``n`` complete runs and returns the last final text."""


def hand_written_runner(
    client: openai.AsyncOpenAI, toolset: Toolset, question: str = QUESTION
) -> Runner:
    """The least a hand-written loop does: no validation, no error handling, no records."""
    create = client.chat.completions.create
    tools = toolset.to_openai()  # the very entries intentflow sends (strict mode)
    functions = {t.api_name: t.handler for t in toolset}
    loads, dumps = json.loads, json.dumps

    async def run_once() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        for _ in range(MAX_TURNS):
            completion = await create(model=MODEL, messages=messages, tools=tools)  # type: ignore[arg-type]
            message = completion.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            calls = [c for c in message.tool_calls if c.type == "function"]
            messages.append(
                {
                    "role": "assistant",
                    "content": message.content,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {
                                "name": c.function.name,
                                "arguments": c.function.arguments,
                            },
                        }
                        for c in calls
                    ],
                }
            )
            for c in calls:
                result = await functions[c.function.name](**loads(c.function.arguments))
                content = (
                    result if isinstance(result, str) else dumps(result, separators=(",", ":"))
                )
                messages.append({"role": "tool", "tool_call_id": c.id, "content": content})
        raise RuntimeError("the hand-written loop reached its turn cap")

    async def run(n: int) -> str:
        text = ""
        for _ in range(n):
            text = await run_once()
        return text

    return run


def intentflow_runner(agent: Agent[str], question: str = QUESTION) -> Runner:
    agent_run = agent.run

    async def run(n: int) -> str:
        text = ""
        for _ in range(n):
            text = (await agent_run(question)).output
        return text

    return run


@dataclass
class Scenario:
    tools: int
    toolset: Toolset
    fake: FakeModel
    contenders: dict[str, Runner]
    check: dict[str, Any] = field(default_factory=dict)


CONTENDERS = {
    "intentflow": "Agent(OpenAIChatModel(client), tools).run(question)",
    "hand_written": "client.chat.completions.create loop, json.loads, no validation",
}


def build_scenario(tools: int) -> Scenario:
    toolset = build_toolset(tools)
    fake = FakeModel()
    client = make_client(fake)  # one client, one transport: shared by both contenders
    agent: Agent[str] = Agent(model=OpenAIChatModel(MODEL, client), tools=toolset)
    return Scenario(
        tools,
        toolset,
        fake,
        {
            "intentflow": intentflow_runner(agent),
            "hand_written": hand_written_runner(client, toolset),
        },
    )


class CheckFailed(Exception):
    """The contenders do not do the same work; measuring them would compare nothing."""


async def check_scenario(scenario: Scenario) -> None:
    """One recorded run per contender: same text, 2 requests each, the same bodies."""
    fake = scenario.fake
    bodies: dict[str, list[dict[str, Any]]] = {}
    sizes: dict[str, list[int]] = {}
    texts: dict[str, str] = {}
    for key, run in scenario.contenders.items():
        fake.record, fake.sizes, fake.requests = [], [], 0
        texts[key] = await run(1)
        bodies[key], sizes[key] = fake.record, fake.sizes
        if fake.requests != 2:
            raise CheckFailed(
                f"{scenario.tools} tools: {key} made {fake.requests} HTTP requests in one run, "
                "expected 2 (tool call, then answer)"
            )
    fake.record = None
    problems = []
    if len(set(texts.values())) != 1 or texts["intentflow"] != ANSWER:
        problems.append(f"final texts differ: {texts}")
    reference = bodies["hand_written"]
    for i, (ours, theirs) in enumerate(zip(bodies["intentflow"], reference, strict=True)):
        if ours.get("tools") != theirs.get("tools"):
            problems.append(f"request {i + 1}: the tools arrays differ")
        if len(ours.get("tools", ())) != scenario.tools:
            problems.append(f"request {i + 1}: {len(ours.get('tools', ()))} tools sent")
        if ours["messages"] != theirs["messages"]:
            problems.append(
                f"request {i + 1}: messages differ:\n    intentflow:   {ours['messages']}\n"
                f"    hand_written: {theirs['messages']}"
            )
        extra = set(ours) ^ set(theirs)
        if extra:
            problems.append(f"request {i + 1}: body keys differ: {sorted(extra)}")
    if problems:
        raise CheckFailed(f"{scenario.tools} tools: " + "; ".join(problems))
    scenario.check = {
        "final_text": ANSWER,
        "http_requests_per_run": 2,
        "request_body_bytes": sizes,
        "same_tools_and_messages": True,
    }


# --------------------------------------------------------------------------- measurement


def progress(message: str) -> None:
    # Progress goes to stderr so that stdout stays one JSON document (and the tables).
    print(message, file=sys.stderr, flush=True)


async def measure(
    scenario: Scenario, *, backend: str, logging_level: LogLevel, samples: int, runs: int
) -> dict[str, Any]:
    clock = time.perf_counter_ns
    await check_scenario(scenario)
    order = list(scenario.contenders.items())
    for _, run in order:  # warm-up: caches, the interpreter's specialization, the pools
        await run(runs)
    gc.collect()
    scenario.fake.requests = 0
    per_run: dict[str, list[float]] = {key: [] for key, _ in order}
    for i in range(samples):
        # Interleaved, and alternating which contender goes first.
        for key, run in order if i % 2 == 0 else order[::-1]:
            start = clock()
            await run(runs)
            per_run[key].append((clock() - start) / 1000 / runs)
    expected = 2 * runs * samples * len(order)
    if scenario.fake.requests != expected:
        raise CheckFailed(f"{scenario.fake.requests} requests while timing, expected {expected}")
    return report_scenario(scenario, backend, logging_level, per_run, runs)


def report_scenario(
    scenario: Scenario,
    backend: str,
    logging_level: LogLevel,
    per_run: dict[str, list[float]],
    runs: int,
) -> dict[str, Any]:
    ours, theirs = per_run["intentflow"], per_run["hand_written"]
    s, b = summarize(ours).median, summarize(theirs).median
    ratios = summarize([o / t for o, t in zip(ours, theirs, strict=True)])
    return {
        "key": f"tools_{scenario.tools}",
        "tools": scenario.tools,
        "backend": backend,
        "logging": logging_level,
        "runs_per_sample": runs,
        "check": scenario.check,
        "contenders": {
            key: {"label": CONTENDERS[key], "us_per_run": summarize(values).to_dict(1)}
            for key, values in per_run.items()
        },
        "ratio": round(s / b, 3),
        "paired_ratio": ratios.to_dict(3),
        "difference_us_per_run": round(s - b, 1),
        "paired_difference_us_per_run": paired_differences(ours, theirs).to_dict(1),
        "raw_us_per_run": {key: [round(v, 1) for v in values] for key, values in per_run.items()},
    }


def configure_logging(level: LogLevel, sink: Any) -> None:
    """A production configuration: JSON events to ``sink``, below ``level`` dropped, cached."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if level == "info" else logging.WARNING
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )


def log_event_cost(level: LogLevel, samples: int = 21, events: int = 2000) -> dict[str, Any]:
    """µs per run of what intentflow logs, measured alone: the ``bind`` of ``_Run.__init__``
    and the ``agent.run.finished`` call of ``_Run._finish``, with the configured chain.

    Much less noisy than the difference of two whole-run medians taken in two processes.
    """
    log = structlog.get_logger("intentflow.agent")
    clock = time.perf_counter_ns

    def once() -> None:
        bound = log.bind(run_id="5f0c7d0e9b8a4c1e8f2a6b3d4c5e6f70", agent="agent")
        bound.info(
            "agent.run.finished",
            turns=2,
            stop_reason="final_answer",
            requests=2,
            prompt_tokens=240,
            completion_tokens=31,
            seconds=0.0014,
        )

    for _ in range(events):
        once()
    values = []
    for _ in range(samples):
        start = clock()
        for _ in range(events):
            once()
        values.append((clock() - start) / 1000 / events)
    return {
        "logging": level,
        "what": "log.bind(run_id, agent) + .info('agent.run.finished', 6 fields)",
        "us_per_run": summarize(values).to_dict(3),
    }


def run_all(
    backend: str, tool_counts: Sequence[int], logging_level: LogLevel, samples: int, runs: int
) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        out = []
        for count in tool_counts:
            progress(f"  {count} tool{'s' * (count != 1)} ({backend}, logging={logging_level})")
            out.append(
                await measure(
                    build_scenario(count),
                    backend=backend,
                    logging_level=logging_level,
                    samples=samples,
                    runs=runs,
                )
            )
        return out

    result: list[dict[str, Any]] = anyio.run(main, backend=backend)
    return result


def run_logging_child(
    backend: str, tool_counts: Sequence[int], samples: int, runs: int
) -> dict[str, Any]:
    """The WARNING-logging variant, measured in a fresh process (see the module docstring)."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--backend",
        backend,
        "--samples",
        str(samples),
        "--runs",
        str(runs),
        "--tools",
        *map(str, tool_counts),
        "--logging-worker",
        "warning",
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    child: dict[str, Any] = json.loads(done.stdout)
    return child


def profile(backend: str, tools: int, runs: int, top: int) -> str:
    """cProfile of ``runs`` intentflow runs (after a warm-up), sorted by own time."""
    profiler = cProfile.Profile()

    async def main() -> None:
        scenario = build_scenario(tools)
        await check_scenario(scenario)
        run = scenario.contenders["intentflow"]
        await run(runs)
        profiler.enable()
        await run(runs)
        profiler.disable()

    anyio.run(main, backend=backend)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"cProfile: {runs} intentflow runs, {tools} tools, {backend}\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------- report


def goal_summary(scenarios: Sequence[dict[str, Any]]) -> dict[str, Any]:
    checked = {}
    for sc in scenarios:
        if sc["logging"] == "info" and sc["tools"] in GOAL_RATIO:
            limit = GOAL_RATIO[sc["tools"]]
            checked[sc["key"]] = {
                "ratio": sc["ratio"],
                "at_most": limit,
                "met": sc["ratio"] <= limit,
            }
    return {
        "statistic": "median(intentflow) / median(hand_written), µs per run, logging at INFO",
        "checked": checked,
        "met": bool(checked) and all(c["met"] for c in checked.values()),
    }


def logging_share(
    scenarios: Sequence[dict[str, Any]], log_events: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """What intentflow's logging costs per run, measured two ways.

    ``event``: the bind and the INFO call alone, timed in each process (precise). Per tool
    count: intentflow's whole-run median at INFO minus at WARNING (``raw_difference_us``,
    two processes), and the difference of the overheads over each process's own hand-written
    loop, which does not log (``overhead_difference_us``, cancels process-to-process drift).
    Both whole-run differences carry the runs' noise: tens of µs at 1 tool, more at 50.
    """
    by = {(sc["tools"], sc["logging"]): sc for sc in scenarios}
    out: dict[str, Any] = {"event": {e["logging"]: e for e in log_events}}
    for (tools, level), info in by.items():
        warning = by.get((tools, "warning"))
        if level != "info" or warning is None:
            continue
        ours_info = info["contenders"]["intentflow"]["us_per_run"]["median"]
        ours_warn = warning["contenders"]["intentflow"]["us_per_run"]["median"]
        out[f"tools_{tools}"] = {
            "intentflow_info_us": ours_info,
            "intentflow_warning_us": ours_warn,
            "raw_difference_us": round(ours_info - ours_warn, 1),
            "overhead_difference_us": round(
                info["difference_us_per_run"] - warning["difference_us_per_run"], 1
            ),
        }
    return out


def timing_table(scenarios: Sequence[dict[str, Any]]) -> str:
    rows = []
    for sc in scenarios:
        ours = sc["contenders"]["intentflow"]["us_per_run"]
        theirs = sc["contenders"]["hand_written"]["us_per_run"]
        pr, pd = sc["paired_ratio"], sc["paired_difference_us_per_run"]
        rows.append(
            [
                str(sc["tools"]),
                sc["backend"],
                sc["logging"],
                f"{ours['median']:.1f} ({ours['p10']:.0f}–{ours['p90']:.0f})",
                f"{theirs['median']:.1f} ({theirs['p10']:.0f}–{theirs['p90']:.0f})",
                f"{sc['difference_us_per_run']:+.1f} ({pd['p10']:+.0f} – {pd['p90']:+.0f})",
                f"{sc['ratio']:.3f} ({pr['p10']:.3f}–{pr['p90']:.3f})",
                f"≤ {GOAL_RATIO[sc['tools']]:g}" if sc["tools"] in GOAL_RATIO else "",
            ]
        )
    headers = [
        "tools",
        "backend",
        "logging",
        "intentflow µs/run (p10–p90)",
        "hand-written µs/run (p10–p90)",
        "difference µs (paired p10 – p90)",
        "ratio (paired p10–p90)",
        "goal",
    ]
    return markdown_table(headers, rows, "lllrrrrl")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, help="samples per contender (31; --quick: 5)")
    parser.add_argument("--runs", type=int, help="runs per sample (200; --quick: 20)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few seconds)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument(
        "--tools", type=int, nargs="+", default=[1, 50], help="tool counts, 1..50 (1 50)"
    )
    parser.add_argument(
        "--no-logging-variant",
        action="store_true",
        help="skip the WARNING-logging child process",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the JSON there ('-': only the JSON, on stdout)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="TOOLS",
        help="instead of measuring, cProfile intentflow runs with this many tools",
    )
    parser.add_argument("--logging-worker", choices=["warning"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples is None:
        args.samples = 5 if args.quick else 31
    if args.runs is None:
        args.runs = 20 if args.quick else 200
    if args.samples < 1 or args.runs < 1:
        parser.error("--samples and --runs must be >= 1")
    if any(not 1 <= t <= 1 + len(OTHER_TOOLS) for t in args.tools):
        parser.error(f"--tools takes counts from 1 to {1 + len(OTHER_TOOLS)}")

    with open(os.devnull, "w", encoding="utf-8") as sink:
        if args.logging_worker:
            configure_logging(args.logging_worker, sink)
            try:
                rows = run_all(args.backend, args.tools, "warning", args.samples, args.runs)
            except CheckFailed as exc:
                sys.exit(f"overhead.py (WARNING child): sanity check failed: {exc}")
            print(json.dumps({"scenarios": rows, "log_event": log_event_cost("warning")}))
            return
        configure_logging("info", sink)
        if args.profile is not None:
            print(profile(args.backend, args.profile, args.runs, top=40))
            return
        started = time.perf_counter()
        progress(f"{args.backend}, logging at INFO:")
        try:
            scenarios = run_all(args.backend, args.tools, "info", args.samples, args.runs)
        except CheckFailed as exc:
            sys.exit(f"overhead.py: sanity check failed, nothing measured: {exc}")
        log_events = [log_event_cost("info")]
    if not args.no_logging_variant:
        progress(f"{args.backend}, logging at WARNING (child process):")
        try:
            child = run_logging_child(args.backend, args.tools, args.samples, args.runs)
        except subprocess.CalledProcessError as exc:
            sys.exit(f"overhead.py: the WARNING child failed (exit status {exc.returncode})")
        scenarios += child["scenarios"]
        log_events.append(child["log_event"])

    goal = goal_summary(scenarios)
    report: dict[str, Any] = {
        "benchmark": "overhead",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": machine_info(),
        "packages": package_versions(
            ["intentflow", "openai", "httpx2", "httpx", "anyio", "trio", "pydantic", "structlog"]
        ),
        "parameters": {
            "samples": args.samples,
            "runs_per_sample": args.runs,
            "run": "model asks for get_weather, the tool runs, the model answers: "
            "2 model calls, 1 tool call",
            "transport": f"{httpx.__name__}.MockTransport under openai.AsyncOpenAI, one client "
            "shared by both contenders, pre-encoded responses",
            "model": MODEL,
            "tool_schemas": "toolset.to_openai() (strict mode), sent by both contenders",
            "interleaved": "per sample, alternating which contender goes first",
            "statistic": "median of sample means, µs per run; p10/p90 of sample means; "
            "ratio = median/median, paired ratio and difference per sample",
            "gc": "enabled",
            "event_loop": f"anyio.run, backend {args.backend} (no uvloop)",
            "logging": {
                "info": "make_filtering_bound_logger(INFO), cached on first use, processors "
                + " -> ".join(LOG_PROCESSORS)
                + ", written to os.devnull: intentflow's one 'agent.run.finished' INFO event "
                "per run is included; the hand-written loop does not log",
                "warning": "the same chain filtered at WARNING (the event is dropped), "
                "measured in a child process",
            },
        },
        "goal": goal,
        "logging_share_us_per_run": logging_share(scenarios, log_events),
        "scenarios": scenarios,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.json == "-":
        print(text)
        return
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
        print()
    print("### µs per run: 2 model calls + 1 tool call (median of sample means)\n")
    print(timing_table(scenarios))
    print(
        "\nratio = intentflow / hand-written. Logging at INFO includes intentflow's one "
        "INFO event per run (JSON to os.devnull); WARNING drops it."
    )
    share = dict(report["logging_share_us_per_run"])
    events = share.pop("event")
    print(
        "Logging alone (bind + INFO event, timed apart): "
        + ", ".join(
            f"{level}: {e['us_per_run']['median']:.1f} µs/run" for level, e in events.items()
        )
        + "."
    )
    for key, s in share.items():
        print(
            f"Logging's share, {key}: {s['raw_difference_us']:+.1f} µs/run raw, "
            f"{s['overhead_difference_us']:+.1f} µs/run against each process's hand-written loop."
        )
    verdict = ", ".join(
        f"{k}: {c['ratio']:.3f} (≤ {c['at_most']:g}: {'met' if c['met'] else 'NOT met'})"
        for k, c in goal["checked"].items()
    )
    print(f"\nGoal: {'met' if goal['met'] else 'NOT met'} ({verdict}).")


if __name__ == "__main__":
    main()
