"""The support desk, end to end: one customer's conversation, routed and answered.

    python -m examples.support.demo        (or: python examples/support/demo.py)

With OPENAI_API_KEY set, the agents talk to the real API (model from INTENTFLOW_MODEL,
default gpt-4.1-mini; OPENAI_BASE_URL points at any compatible endpoint). Without a key,
intentflow's loopback fake OpenAI server plays the model with `stand_in_model`, a function
of each request (the tools offered, the tool_choice, the messages), so the same code path
runs offline: the real ``openai`` client, HTTP, tool validation and execution, handoffs,
guards.

The printout shows, for each message, the routing decision, every model call's tool_choice
and tools, the tool calls and their results, handoffs with their payloads, guard notices,
and the answer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `examples.support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import anyio
import openai
import structlog

from examples.support.app import Conversation, build_runner
from examples.support.tools import SupportBackend, demo_backend
from intentflow import Model, OpenAIChatModel
from intentflow.agents.events import (
    GraphEvent,
    GuardNotice,
    HandoffTaken,
    ModelRequested,
    NodeStarted,
    RouteDecided,
    ToolCallFinished,
    ToolCallStarted,
)
from intentflow.agents.runner import GraphResult
from intentflow.models import ForcedTool, ToolChoice
from intentflow.testing import FakeOpenAIServer, Reply

__all__ = ["CONVERSATION", "main", "run_conversation", "show", "stand_in_model"]

CONVERSATION = (
    "Hi there! Hope you're having a good day.",
    "Where is my order ORD-1001?",
    "I was charged twice for ORD-1002 and would like a refund. My email is maya@example.com.",
    "The app keeps crashing when I open my order history.",
    "Please change my email to maya.lee@example.org, the current one is maya@example.com.",
    "The app showed a payment error for ORD-1003 but I was still charged.",
    "Can you recommend a good pizza place in town?",
)
"""One customer's messages, in order: small talk, an order's status, a duplicate charge to
refund (triage hands off to billing), an app crash, an email change, a mixed payment/app
problem that billing and tech support bounce between them until the cycle cap stops it,
and a question support does not handle."""


# ---------------------------------------------------------------------------- the stand-in

_ORDER_ID = re.compile(r"\bORD-\d{4}\b", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CUSTOMER = re.compile(r"The customer is (C-\d+)")
_BILLING_WORDS = {"charge", "charged", "charges", "refund", "invoice", "billed", "money"}
_TECH_WORDS = {"error", "crash", "crashes", "crashing", "bug", "broken", "app", "website"}
_THANKS = {"thanks", "thank", "cheers"}


@dataclass
class _Seen:
    """What the stand-in reads from one request, as a model would read its prompt."""

    offered: list[str]
    system: str
    user: str = ""
    emails: list[str] = field(default_factory=list)  # every email the customer wrote, in order
    orders: list[str] = field(default_factory=list)  # every order id the customer wrote
    results: dict[str, Any] = field(default_factory=dict)  # this message's tool results
    customers: list[dict[str, Any]] = field(default_factory=list)  # every customer record seen
    briefs: list[dict[str, Any]] = field(default_factory=list)  # every transfer's payload
    refused: bool = False  # a transfer of this message was refused

    @property
    def words(self) -> set[str]:
        return set(re.findall(r"[a-z]+", self.user.lower()))

    def order_id(self) -> str | None:
        found = _ORDER_ID.findall(self.user) or self.orders
        return found[-1].upper() if found else None

    def account_email(self) -> str | None:
        """The email on the account: the latest customer record, else what the customer
        last wrote."""
        if self.customers:
            return str(self.customers[-1]["email"])
        return self.emails[-1] if self.emails else None

    def customer_id(self) -> str | None:
        if self.customers:
            return str(self.customers[-1]["customer_id"])
        if self.briefs:
            return str(self.briefs[-1]["customer_id"])
        found = _CUSTOMER.search(self.system)
        return found.group(1) if found else None


def _read(request: dict[str, Any]) -> _Seen:
    messages: list[dict[str, Any]] = request["messages"]
    offered = [t["function"]["name"] for t in request.get("tools", [])]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    seen = _Seen(offered, system)
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "user":
            seen.user = message["content"]
            seen.emails += _EMAIL.findall(message["content"])
            seen.orders += _ORDER_ID.findall(message["content"])
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                name = call["function"]["name"]
                names[call["id"]] = name
                if name.startswith("transfer_to_"):
                    seen.briefs.append(json.loads(call["function"]["arguments"]))
        elif role == "tool":
            name = names.get(message["tool_call_id"], "")
            content = message["content"]
            try:
                result = json.loads(content)
            except ValueError:
                result = content
            if isinstance(result, dict) and "customer_id" in result and "email" in result:
                seen.customers.append(result)
            if i > last_user:
                seen.results[name] = result
                seen.refused |= content.startswith("Not transferred")
    return seen


def _failed(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        return str(result["error"].get("message", "it failed"))
    return None


def _summary(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip())[0]
    return f"Customer reports: {sentence}"


def _forced_arguments(name: str, seen: _Seen) -> dict[str, Any]:
    if name == "lookup_order":
        return {"order_id": seen.order_id() or "ORD-0000"}
    if name == "lookup_customer":
        return {"email": seen.account_email() or "unknown@example.com"}
    raise ValueError(f"the stand-in does not know what to pass to a forced {name!r}")


def stand_in_model(request: dict[str, Any]) -> Reply:
    """Plays the model for every agent of the desk, from the request alone.

    It recognises the agent by the tools it is offered, obeys tool_choice (a forced tool is
    called, ``none`` gets text), and reads the conversation for order ids, emails, earlier
    tool results and transfer payloads. Billing and tech support are deliberately
    confused by a mixed problem (a payment error in the app *and* a charge): each hands the
    case to the other, as real models do, so the graph's cycle cap has something to stop.
    """
    seen = _read(request)
    choice = request.get("tool_choice", "auto")
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice["function"]["name"]
        return Reply.call(name, _forced_arguments(name, seen))
    can_call = choice != "none"
    offered = set(seen.offered)
    if not offered:
        return _out_of_scope()
    if "lookup_order" in offered:
        return _orders(seen, can_call)
    if "list_charges" in offered:
        return _billing(seen, can_call)
    if "check_service_status" in offered:
        return _tech(seen, can_call)
    if "update_email" in offered:
        return _accounts(seen, can_call)
    return _triage(seen, can_call)


def _out_of_scope() -> Reply:
    return Reply.text(
        "Sorry, that's outside what I can help with here. I can help with your orders and "
        "deliveries, billing and refunds, technical problems with the Northwind app or "
        "website, and changes to your account."
    )


def _triage(seen: _Seen, can_call: bool) -> Reply:
    words = seen.words
    if not can_call:  # small talk: the intent's policy is none
        if words & _THANKS:
            return Reply.text(
                "You're very welcome! If anything comes up with an order, a payment or your "
                "account, I'm here."
            )
        return Reply.text(
            "Hi! I'm doing well, thank you for asking. I can help with orders, billing, "
            "technical problems or changes to your account. What can I do for you today?"
        )
    customer = seen.results.get("lookup_customer")
    if customer is None or _failed(customer):
        return Reply.text(
            "I couldn't find your account yet. Could you tell me the email address on it?"
        )
    target = (
        "billing"
        if words & _BILLING_WORDS
        else "tech_support"
        if words & _TECH_WORDS
        else "accounts"
    )
    brief = {
        "customer_id": customer["customer_id"],
        "summary": _summary(seen.user),
        "order_id": seen.order_id(),
    }
    return Reply.call(f"transfer_to_{target}", brief)


def _orders(seen: _Seen, can_call: bool) -> Reply:
    order = seen.results.get("lookup_order")
    if order is None and can_call:
        return Reply.call("lookup_order", {"order_id": seen.order_id() or "ORD-0000"})
    problem = _failed(order)
    if order is None or problem:
        return Reply.text(
            f"I couldn't find that order ({problem}). Could you check the order number?"
        )
    shipment = seen.results.get("track_shipment")
    if order["status"] == "shipped" and shipment is None and can_call:
        return Reply.call("track_shipment", {"order_id": order["order_id"]})
    items = ", ".join(order["items"])
    if isinstance(shipment, dict):
        day = date.fromisoformat(shipment["eta"])
        eta = f"{day:%A} {day.day} {day:%B}"
        return Reply.text(
            f"Your order {order['order_id']} ({items}) has shipped with {shipment['carrier']}, "
            f"tracking number {shipment['tracking_number']}. Latest update: "
            f"{shipment['last_event']}; it should arrive on {eta}."
        )
    return Reply.text(
        f"Your order {order['order_id']} ({items}) is {order['status']}; I'll be able to give "
        "you a tracking number as soon as it ships."
    )


def _duplicate(charges: list[dict[str, Any]], order_id: str | None) -> dict[str, Any] | None:
    """The later of two equal, unrefunded charges for the same order."""
    mine = [c for c in charges if order_id is None or c["order_id"] == order_id]
    for i, charge in enumerate(mine):
        for later in mine[i + 1 :]:
            same = (later["order_id"], later["amount"]) == (charge["order_id"], charge["amount"])
            if same and float(later["refunded"]) == 0:
                return later
    return None


def _billing(seen: _Seen, can_call: bool) -> Reply:
    customer_id = seen.customer_id()
    charges = seen.results.get("list_charges")
    if charges is None and can_call and customer_id:
        return Reply.call("list_charges", {"customer_id": customer_id})
    refund = seen.results.get("issue_refund")
    if isinstance(refund, dict) and not _failed(refund):
        return Reply.text(
            f"Done: I refunded {refund['amount']} {refund['currency']} for the duplicate charge "
            f"{refund['charge_id']}. Refund {refund['refund_id']} reaches your card in "
            f"{refund['arrives_in']}."
        )
    words = seen.words
    if can_call and words & _TECH_WORDS and "transfer_to_tech_support" in seen.offered:
        brief = {
            "customer_id": customer_id,
            "summary": "The customer saw an error in the app while paying; please check it.",
            "order_id": seen.order_id(),
        }
        return Reply.call("transfer_to_tech_support", brief)
    order_id = seen.order_id()
    charges = charges if isinstance(charges, list) else []
    duplicate = _duplicate(charges, order_id)
    if can_call and duplicate is not None:
        arguments = {
            "charge_id": duplicate["charge_id"],
            "amount": duplicate["amount"],
            "reason": "duplicate_charge",
        }
        return Reply.call("issue_refund", arguments)
    taken = [c for c in charges if c["order_id"] == order_id]
    status = seen.results.get("check_service_status")
    cause = (
        f" The error you saw comes from a known issue ({status['status']}); "
        if isinstance(status, dict) and status.get("status") != "operational"
        else " "
    )
    if taken:
        charge = taken[-1]
        return Reply.text(
            f"I checked your charges: {order_id} was charged once, {charge['amount']} "
            f"{charge['currency']} on {charge['created']}, and that payment is valid, so your "
            f"order is going ahead.{cause}I've added it to your case so you don't pay twice."
        )
    return Reply.text("I checked your charges and found nothing wrong with them.")


def _component(words: set[str]) -> str:
    for component, hints in (
        ("payments", {"payment", "paying", "charged"}),
        ("checkout", {"checkout"}),
        ("email", {"email", "emails"}),
        ("app", {"app"}),
    ):
        if words & hints:
            return component
    return "website"


def _tech(seen: _Seen, can_call: bool) -> Reply:
    words = seen.words
    status = seen.results.get("check_service_status")
    if status is None and can_call:
        return Reply.call("check_service_status", {"component": _component(words)})
    if can_call and words & _BILLING_WORDS and "transfer_to_billing" in seen.offered:
        brief = {
            "customer_id": seen.customer_id(),
            "summary": "The customer was charged although the app showed an error.",
            "order_id": seen.order_id(),
        }
        return Reply.call("transfer_to_billing", brief)
    articles = seen.results.get("search_help_center")
    if articles is None and can_call:
        return Reply.call("search_help_center", {"query": seen.user})
    if isinstance(articles, list) and articles:
        best = articles[0]
        steps = " ".join(f"{n}. {step}." for n, step in enumerate(best["steps"], 1))
        return Reply.text(f"Sorry about that! From our help centre ({best['title']}): {steps}")
    ticket = seen.results.get("open_ticket")
    if ticket is None and can_call:
        arguments = {"component": _component(words), "summary": seen.user, "priority": "normal"}
        return Reply.call("open_ticket", arguments)
    number = ticket["ticket_id"] if isinstance(ticket, dict) and "ticket_id" in ticket else None
    return Reply.text(
        f"I've opened ticket {number} for our engineers; we'll email you when it's fixed."
        if number
        else "I couldn't find a fix; please try again later."
    )


def _accounts(seen: _Seen, can_call: bool) -> Reply:
    customer = seen.results.get("lookup_customer")
    if customer is None and can_call:
        return Reply.call("lookup_customer", {"email": seen.account_email()})
    problem = _failed(customer)
    if not isinstance(customer, dict) or problem:
        return Reply.text(f"I couldn't find your account ({problem}). Which email is on it?")
    changed = seen.results.get("update_email")
    if isinstance(changed, dict):
        problem = _failed(changed)
        if problem:
            return Reply.text(f"I couldn't change your email: {problem}.")
        return Reply.text(f"Done: the email on your account is now {changed['email']}.")
    new = [e for e in _EMAIL.findall(seen.user) if e.lower() != customer["email"].lower()]
    if new and can_call:
        arguments = {"customer_id": customer["customer_id"], "new_email": new[0]}
        return Reply.call("update_email", arguments)
    return Reply.text("What would you like to change on your account: the email or the address?")


# ---------------------------------------------------------------------------- the printout


def _choice(choice: ToolChoice) -> str:
    return f"forced {choice.name}" if isinstance(choice, ForcedTool) else str(choice)


def show(event: GraphEvent) -> None:
    """Print one event of a run (routing, model calls, tools, handoffs, guards)."""
    if isinstance(event, RouteDecided):
        d = event.decision
        how = d.reason if d.classifier == "rules" else f"{d.classifier}, {d.confidence:.2f}"
        if d.abstained:
            how += f"; abstained, best guess {d.proposed}"
        print(f"  route    {d.intent} ({how})")
    elif isinstance(event, NodeStarted) and event.via == "entry":
        print(f"  agent    {event.agent}")
    elif isinstance(event, ModelRequested):
        tools = ", ".join(event.request.tool_names) or "none"
        choice = _choice(event.request.tool_choice)
        print(f"    {event.agent} model call {event.turn}: tool_choice {choice}; tools: {tools}")
    elif isinstance(event, ToolCallStarted) and not event.call.name.startswith("transfer_to_"):
        print(f"    {event.agent} calls {event.call.name}({event.call.arguments})")
    elif isinstance(event, ToolCallFinished):
        content = event.outcome.content
        if content.startswith("Not transferred"):
            print(f"    {event.agent}: transfer refused: {content}")
        elif not event.outcome.called_as.startswith("transfer_to_"):
            shown = content if len(content) <= 110 else content[:107] + "..."
            print(f"      -> {event.outcome.kind.value}: {shown}")
    elif isinstance(event, HandoffTaken):
        print(f"  handoff  {event.agent} -> {event.target} with {event.payload!r}")
    elif isinstance(event, GuardNotice):
        print(f"  guard    {event.guard}: {event.detail}")


async def run_conversation(
    model: Model,
    backend: SupportBackend | None = None,
    messages: Sequence[str] = CONVERSATION,
    *,
    verbose: bool = True,
) -> list[GraphResult[Any]]:
    """Send ``messages`` one after another in one conversation; return each run's result."""
    conversation = Conversation(build_runner(model), backend or demo_backend())
    results = []
    for text in messages:
        if verbose:
            print(f"\ncustomer: {text}")
        result = await conversation.send(text, on_event=show if verbose else None)
        if verbose:
            print(f"{result.agent or 'desk'}: {result.output}")
        results.append(result)
    if verbose:
        print("\ncase notes:")
        for note in conversation.state.notes:
            print(f"  - {note}")
    return results


async def main() -> None:
    if os.environ.get("OPENAI_API_KEY"):
        model = OpenAIChatModel(os.environ.get("INTENTFLOW_MODEL", "gpt-4.1-mini"))
        try:
            await run_conversation(model)
        finally:
            await model.aclose()
        return
    print("(no OPENAI_API_KEY: the loopback fake OpenAI server plays the model)")
    async with FakeOpenAIServer(stand_in_model) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="offline")
        try:
            results = await run_conversation(OpenAIChatModel("gpt-4.1-mini", client))
        finally:
            await client.close()
    requests = sum(r.usage.requests for r in results)
    print(f"\n{len(results)} messages, {requests} model requests, all through the openai client")


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main)
