"""A customer-support desk on intentflow: intents, toolsets, agents, the graph and the runner.

How a message flows::

    message ─► Router: rules (overrides, vetoes), then a LexicalClassifier fitted from the
               intents' examples plus out-of-scope examples; below THRESHOLD it abstains
               to the out_of_scope fallback
            ─► Intent: its toolset and tool_choice policy apply at its entry agent
            ─► AgentGraph (run state: SupportState, shared through ctx.state)

    intent        entry         tools the entry sees              tool_choice
    order_status  orders        lookup_order, track_shipment      forced lookup_order, then auto
    billing       triage        lookup_customer (+ transfers)     forced lookup_customer, then auto
    tech_support  tech_support  status, help centre, ticket (+1)  required, then auto
    account       accounts      lookup_customer, update_* tools   forced lookup_customer, then auto
    small_talk    triage        its tools, never called           none
    out_of_scope  scope_guard   none                              none

    triage ──handoff(CaseBrief)──► billing, tech_support, accounts
    billing ◄──handoff(CaseBrief)──► tech_support     capped: at most 2 passes per run

Everything the model can do goes through a tool with Pydantic-validated arguments; the tools
reach the backend through ``ctx.deps`` (a `SupportBackend`) and write case notes into
``ctx.state`` (a `SupportState`), which the runner creates per run or takes from the caller,
so a `Conversation` keeps one state across a customer's messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from examples.support.tools import (
    Article,
    Charge,
    Component,
    Customer,
    Order,
    Refund,
    RefundReason,
    Shipment,
    SupportBackend,
    Ticket,
)
from intentflow import Agent, Message, Model, RunContext, Tool, Toolset, forced, sequence
from intentflow.agents.events import GraphEvent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.guards import Limits
from intentflow.agents.handoff import Handoff, HandoffRequest
from intentflow.agents.runner import GraphResult, Runner
from intentflow.router import Intent, LexicalClassifier, Router, Rule

__all__ = [
    "INTENTS",
    "OUT_OF_SCOPE_EXAMPLES",
    "RULES",
    "THRESHOLD",
    "CaseBrief",
    "Conversation",
    "SupportState",
    "build_graph",
    "build_intents",
    "build_router",
    "build_runner",
    "state_of",
]

Ctx = RunContext[SupportBackend]


# ---------------------------------------------------------------------------- run state


class CaseBrief(BaseModel):
    """What an agent hands over with a transfer (the transfer tool's arguments)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(description="The customer's id from lookup_customer, e.g. C-100.")
    summary: str = Field(description="The customer's problem in one sentence.")
    order_id: str | None = Field(default=None, description="The order concerned, if any.")


class SupportState(BaseModel):
    """The run's state, shared by every agent, tool and hook of a run (``ctx.state``)."""

    customer_id: str | None = None
    case: CaseBrief | None = None
    notes: list[str] = Field(default_factory=list)
    refunds: list[str] = Field(default_factory=list)
    tickets: list[str] = Field(default_factory=list)


def state_of(ctx: RunContext[Any]) -> SupportState:
    """The run's `SupportState` (the agents run in the graph, which always creates one)."""
    state = ctx.state
    if not isinstance(state, SupportState):
        raise TypeError("the support tools need a SupportState: run them through the Runner")
    return state


# ---------------------------------------------------------------------------- tools

OrderId = Annotated[str, Field(pattern=r"^ORD-\d{4}$")]
CustomerId = Annotated[str, Field(pattern=r"^C-\d{3,}$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]

customer_tools = Toolset("customers")


@customer_tools.tool
def lookup_customer(ctx: Ctx, email: Email) -> Customer:
    """Find the customer's account by the email address on it.

    Args:
        email: The email address the customer gave.
    """
    customer = ctx.deps.find_customer(email)
    state = state_of(ctx)
    state.customer_id = customer.customer_id
    state.notes.append(f"identified {customer.customer_id} by email")
    return customer


order_tools = Toolset("orders")


@order_tools.tool
def lookup_order(ctx: Ctx, order_id: OrderId) -> Order:
    """An order's items, total and status.

    Args:
        order_id: The order id, e.g. ORD-1001.
    """
    return ctx.deps.order(order_id)


@order_tools.tool
def track_shipment(ctx: Ctx, order_id: OrderId) -> Shipment | str:
    """Where a shipped order is: carrier, tracking number, last event and expected delivery.

    Args:
        order_id: The order id, e.g. ORD-1001.
    """
    order = ctx.deps.order(order_id)
    return order.shipment or f"{order.order_id} has not shipped yet (it is {order.status})"


@order_tools.tool
def cancel_order(ctx: Ctx, order_id: OrderId) -> Order:
    """Cancel an order that has not shipped yet.

    Args:
        order_id: The order id, e.g. ORD-1001.
    """
    order = ctx.deps.cancel_order(order_id)
    state_of(ctx).notes.append(f"cancelled {order.order_id}")
    return order


billing_tools = Toolset("billing")


@billing_tools.tool
def list_charges(ctx: Ctx, customer_id: CustomerId) -> list[Charge]:
    """Every charge on the customer's payment method, with what was already refunded.

    Args:
        customer_id: The customer's id, e.g. C-100.
    """
    return ctx.deps.charges_for(customer_id)


class RefundRequest(BaseModel):
    """Refund (part of) one charge to the customer's payment method."""

    model_config = ConfigDict(extra="forbid")

    charge_id: str = Field(pattern=r"^CH-\d{4}$", description="The charge, from list_charges.")
    amount: Decimal = Field(gt=0, decimal_places=2, description="How much to refund.")
    reason: RefundReason = Field(description="Why the money goes back.")


def issue_refund(request: RefundRequest, ctx: Ctx) -> Refund:
    """Refund (part of) one charge to the customer's payment method."""
    refund = ctx.deps.refund(request.charge_id, request.amount, request.reason)
    state = state_of(ctx)
    state.refunds.append(refund.refund_id)
    state.notes.append(f"refunded {refund.amount} {refund.currency} of {refund.charge_id}")
    return refund


billing_tools.add(Tool.from_model(RefundRequest, issue_refund))

tech_tools = Toolset("tech")


@tech_tools.tool
def check_service_status(ctx: Ctx, component: Component) -> dict[str, str]:
    """Whether a part of the service has a known incident right now.

    Args:
        component: The affected part of the service.
    """
    return {"component": component, "status": ctx.deps.status(component)}


@tech_tools.tool
def search_help_center(ctx: Ctx, query: str) -> list[Article]:
    """Search the help centre's troubleshooting articles.

    Args:
        query: The problem in the customer's words.
    """
    return ctx.deps.search_articles(query)


class TicketRequest(BaseModel):
    """Open a ticket for the engineering team (when no article solves the problem)."""

    model_config = ConfigDict(extra="forbid")

    component: Component
    summary: str = Field(min_length=10, description="What goes wrong, and when.")
    priority: Literal["low", "normal", "high"] = "normal"


def open_ticket(request: TicketRequest, ctx: Ctx) -> Ticket:
    """Open a ticket for the engineering team (when no article solves the problem)."""
    state = state_of(ctx)
    ticket = ctx.deps.open_ticket(
        state.customer_id, request.component, request.summary, request.priority
    )
    state.tickets.append(ticket.ticket_id)
    state.notes.append(f"opened {ticket.ticket_id} ({ticket.component})")
    return ticket


tech_tools.add(Tool.from_model(TicketRequest, open_ticket))

account_tools = Toolset("accounts", [lookup_customer])


class ChangeEmail(BaseModel):
    """Change the email address of a customer's account."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    new_email: Email


def update_email(request: ChangeEmail, ctx: Ctx) -> Customer:
    """Change the email address of a customer's account (look the customer up first)."""
    customer = ctx.deps.update_email(request.customer_id, request.new_email)
    state_of(ctx).notes.append(f"changed the email of {customer.customer_id}")
    return customer


class ChangeAddress(BaseModel):
    """Change the shipping address of a customer's account."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    address: str = Field(min_length=8, description="The full new address, one line.")


def update_shipping_address(request: ChangeAddress, ctx: Ctx) -> Customer:
    """Change the shipping address of a customer's account (look the customer up first)."""
    customer = ctx.deps.update_address(request.customer_id, request.address)
    state_of(ctx).notes.append(f"changed the shipping address of {customer.customer_id}")
    return customer


account_tools.add(Tool.from_model(ChangeEmail, update_email))
account_tools.add(Tool.from_model(ChangeAddress, update_shipping_address))


# ---------------------------------------------------------------------------- agents

DESK = "Northwind's customer support"

TRIAGE_INSTRUCTIONS = f"""You are the front desk of {DESK}.
Identify the customer with lookup_customer (ask for the email on their account if they have
not given it). Then transfer the conversation to the specialist who can act: billing for
charges, refunds and invoices; tech_support for errors and things that do not work; accounts
for changes to the customer's details. Pass the customer id, a one-sentence summary and the
order id (if any) with the transfer. Do not try to solve the problem yourself."""

SMALL_TALK_INSTRUCTIONS = f"""You are the front desk of {DESK}.
The customer is making small talk. Answer warmly in one or two sentences and offer help with
orders, billing, technical problems or account changes. Do not call tools."""

ORDERS_INSTRUCTIONS = f"""You are the order specialist of {DESK}.
Look the order up before you answer; if it has shipped, track the shipment. Give the status,
the carrier and tracking number and the expected delivery date, in two or three sentences."""

BILLING_INSTRUCTIONS = f"""You are the billing specialist of {DESK}.
List the customer's charges before you act. Refund a charge only when it is clearly a
duplicate or the customer is owed the money, and never more than was charged. A technical
fault (an app or website error) belongs to tech_support: transfer it with a summary. Tell the
customer what you did and when the money arrives."""

TECH_INSTRUCTIONS = f"""You are the technical support of {DESK}.
Check the status of the affected part of the service first, then search the help centre and
give the customer the steps of the best article. Open a ticket when no article fits. Charges
and refunds belong to billing: transfer those with a summary."""

ACCOUNTS_INSTRUCTIONS = f"""You are the account specialist of {DESK}.
Look the customer up by the email on the account, then make the change they asked for (email
or shipping address) and confirm it in one sentence. Never change an account you have not
looked up."""

SCOPE_INSTRUCTIONS = f"""You are the assistant of {DESK}.
The customer asked for something support cannot help with. Say politely, in one or two
sentences, that you can only help with orders and deliveries, billing and refunds, technical
problems with the app or website, and account changes. Do not answer the question itself."""


class SupportAgent(Agent[str]):
    """The desk's agents: an incoming transfer's brief goes into the run state, and from
    there into the receiving agent's instructions."""

    max_turns = 6
    role = ""

    def instructions(self, ctx: RunContext[Any]) -> str:
        state = state_of(ctx)
        known = []
        if state.customer_id:
            known.append(f"The customer is {state.customer_id}.")
        if state.case is not None and ctx.agent != "triage":
            order = f" (order {state.case.order_id})" if state.case.order_id else ""
            known.append(f"Case brief: {state.case.summary}{order}")
        return "\n".join([self.role, *known])

    async def on_handoff(self, ctx: RunContext[Any], handoff: HandoffRequest) -> None:
        brief = handoff.payload
        if isinstance(brief, CaseBrief):
            state = state_of(ctx)
            state.case = brief
            state.customer_id = brief.customer_id
            state.notes.append(f"{handoff.source} -> {handoff.target}: {brief.summary}")


class Triage(SupportAgent):
    name = "triage"
    role = TRIAGE_INSTRUCTIONS
    tools = customer_tools
    handoffs = (
        Handoff("billing", "Charges, refunds, invoices and payments.", CaseBrief),
        Handoff("tech_support", "Errors, crashes and anything that does not work.", CaseBrief),
        Handoff("accounts", "Changes to the customer's email or address.", CaseBrief),
    )

    def instructions(self, ctx: RunContext[Any]) -> str:
        if ctx.intent == "small_talk":
            return SMALL_TALK_INSTRUCTIONS
        return super().instructions(ctx)


class Orders(SupportAgent):
    name = "orders"
    role = ORDERS_INSTRUCTIONS
    tools = order_tools  # the order_status intent narrows these to lookup and tracking


class Billing(SupportAgent):
    name = "billing"
    role = BILLING_INSTRUCTIONS
    tools = billing_tools
    handoffs = (Handoff("tech_support", "A technical fault behind the problem.", CaseBrief),)


class TechSupport(SupportAgent):
    name = "tech_support"
    role = TECH_INSTRUCTIONS
    tools = tech_tools
    handoffs = (Handoff("billing", "A charge or refund behind the problem.", CaseBrief),)


class Accounts(SupportAgent):
    name = "accounts"
    role = ACCOUNTS_INSTRUCTIONS
    tools = account_tools


class ScopeGuard(SupportAgent):
    name = "scope_guard"
    role = SCOPE_INSTRUCTIONS
    tool_choice = "none"
    max_turns = 1


SPECIALIST_CYCLE = ("billing", "tech_support")
MAX_CYCLE_PASSES = 2


def build_graph(model: Model) -> AgentGraph:
    """The agents as a graph; every agent uses ``model`` (one endpoint for the desk)."""
    agents = [
        agent(model=model) for agent in (Triage, Orders, Billing, TechSupport, Accounts, ScopeGuard)
    ]
    graph = AgentGraph(agents, state_type=SupportState, limits=Limits(max_steps=24))
    # billing and tech_support may hand a case back and forth: allow one round trip.
    graph.cap_cycle(SPECIALIST_CYCLE, max_passes=MAX_CYCLE_PASSES)
    return graph


# ---------------------------------------------------------------------------- routing

INTENTS: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is my order?",
        "Where's my package ORD-1001?",
        "Has my order shipped yet?",
        "Can you track my parcel for me",
        "What's the status of order ORD-2040?",
        "My delivery hasn't arrived yet",
        "When will my order arrive?",
        "Is my order still processing?",
        "I need the tracking number for my shipment",
        "The courier says my parcel is delayed, where is it now?",
        "Did you send out my order ORD-1187 already?",
        "What's the expected delivery date for my purchase?",
        "My package was supposed to come yesterday",
        "Check on my order please",
    ),
    "billing": (
        "I was charged twice for the same order",
        "I want a refund for my last purchase",
        "Why is there an extra charge on my credit card?",
        "Can I get my money back?",
        "Please send me the invoice for ORD-1002",
        "My card was billed but the order was cancelled",
        "What payment methods do you accept?",
        "The amount on my bank statement is wrong",
        "I need a copy of my receipt",
        "How long does a refund take to reach my account?",
        "You took the payment two times",
        "I see a pending charge I don't recognise",
        "Do you charge VAT on international orders?",
        "I was overcharged for shipping",
        "Do you take PayPal?",
    ),
    "tech_support": (
        "The app keeps crashing when I open it",
        "I can't log in, the page just spins",
        "Your website is showing an error 500",
        "The checkout button doesn't work",
        "I'm not receiving the verification email",
        "The app is really slow since the last update",
        "Images won't load on the product pages",
        "I get an error when I try to upload a photo",
        "Push notifications stopped working on my phone",
        "The site won't load on Safari",
        "The page is blank after I sign in",
        "Is your service down right now?",
        "The barcode scanner in the app does nothing",
        "Something is broken on your website",
    ),
    "account": (
        "I want to change my email address",
        "Please update my shipping address",
        "How do I reset my password?",
        "Change the phone number on my account",
        "Can you delete my account?",
        "I moved house, update my delivery address please",
        "I'd like to change the name on my profile",
        "Update the email on my account to a new one",
        "Unsubscribe me from the marketing newsletter",
        "How do I turn on two-factor authentication?",
        "Merge my two accounts into one",
        "I want to change my communication preferences",
        "My account details are out of date",
        "Switch my account email to my work address",
    ),
    "small_talk": (
        "Hi there!",
        "Hello, how are you today?",
        "Thanks so much for your help",
        "Good morning",
        "You've been very helpful, cheers",
        "Are you a bot or a real person?",
        "Have a nice day!",
        "Bye for now",
        "What's your name?",
        "Hey, just wanted to say you guys are great",
        "Thank you, that's all I needed",
        "Haha nice",
        "Ok cool, thanks",
        "Hope you're having a good day",
    ),
}

OUT_OF_SCOPE_EXAMPLES = (
    "What's the weather like in Paris tomorrow?",
    "Can you recommend a good pizza place nearby?",
    "Write me a poem about the sea",
    "Who won the football match last night?",
    "Help me with my maths homework",
    "What's the capital of Australia?",
    "Translate this sentence into Spanish",
    "How do I cook risotto?",
    "What's the stock price of Apple?",
    "Book me a flight to Rome",
    "Explain quantum computing simply",
    "Which laptop should I buy for gaming?",
    "Set an alarm for 7am",
    "Who is the president of France?",
    "Give me a recipe for chocolate cake",
    "How do I fix a leaking tap?",
    "Recommend a good book to read",
    "Do you know any good restaurants around here?",
    "What's a good name for my dog?",
    "Tell me a fun fact about space",
)
"""Messages support does not handle: they train the classifier's internal out-of-scope class
(labelled ``None``), so such messages score low for every intent and the router abstains."""

THRESHOLD = 0.6
"""Below this confidence the router abstains to the out_of_scope fallback."""

BUSINESS_WORDS = [
    "refund",
    "refunds",
    "charge",
    "charged",
    "invoice",
    "payment",
    "order",
    "delivery",
    "error",
    "crash",
    "broken",
    "password",
    "account",
    "cancel",
]
"""Words that mean the customer wants something done: such a message is never small talk."""

RULES = (
    # Hard evidence of a billing problem, whatever the classifier thinks of the rest.
    Rule.keywords(
        "billing",
        ["charged twice", "double charged", "chargeback", "charged me twice", "money back"],
        name="money-back-is-billing",
    ),
    # Anything about money, orders or faults deserves someone who can act: never small talk.
    Rule.keywords(
        "small_talk",
        BUSINESS_WORDS,
        action="veto",
        name="business-is-never-small-talk",
    ),
)


def build_intents() -> list[Intent]:
    """The desk's intents: what each selects (toolset, tool_choice) and who handles it."""
    return [
        Intent(
            "order_status",
            description="Where an order is, whether it shipped, when it arrives.",
            examples=INTENTS["order_status"],
            toolset=order_tools.subset(["lookup_order", "track_shipment"]),
            tool_choice=sequence(forced("lookup_order"), then="auto"),
            entry="orders",
        ),
        Intent(
            "billing",
            description="Charges, refunds, invoices and payment methods.",
            examples=INTENTS["billing"],
            toolset=customer_tools,
            tool_choice=sequence(forced("lookup_customer"), then="auto"),
            entry="triage",
        ),
        Intent(
            "tech_support",
            description="Errors, crashes, log-in problems, things that do not work.",
            examples=INTENTS["tech_support"],
            toolset=tech_tools,
            tool_choice=sequence("required", then="auto"),
            entry="tech_support",
        ),
        Intent(
            "account",
            description="Changes to the customer's account: email, address, password, profile.",
            examples=INTENTS["account"],
            toolset=account_tools,
            tool_choice=sequence(forced("lookup_customer"), then="auto"),
            entry="accounts",
        ),
        Intent(
            "small_talk",
            description="Greetings, thanks, chit-chat.",
            examples=INTENTS["small_talk"],
            tool_choice="none",
            entry="triage",
        ),
        Intent(
            "out_of_scope",
            description="Anything customer support does not handle (the fallback).",
            tool_choice="none",
            entry="scope_guard",
        ),
    ]


def build_router(
    intents: Sequence[Intent] | None = None, *, threshold: float = THRESHOLD
) -> Router:
    """Rules, then a LexicalClassifier fitted on the intents' examples and the out-of-scope
    examples; abstains to ``out_of_scope`` below ``threshold``."""
    intents = list(intents) if intents is not None else build_intents()
    texts: list[str] = []
    labels: list[str | None] = []
    for intent in intents:
        texts += intent.examples
        labels += [intent.name] * len(tuple(intent.examples))
    texts += OUT_OF_SCOPE_EXAMPLES
    labels += [None] * len(OUT_OF_SCOPE_EXAMPLES)
    classifier = LexicalClassifier().fit(texts, labels)
    return Router(intents, classifier, fallback="out_of_scope", threshold=threshold, rules=RULES)


def build_runner(model: Model, router: Router | None = None) -> Runner:
    """The desk: the router and the graph, validated together (raises ConfigurationError).

    A router is fitted in about 0.1 s; a service builds it once and shares it (it keeps no
    per-request state), as the tests do.
    """
    return Runner(router or build_router(), build_graph(model))


# ---------------------------------------------------------------------------- conversations


@dataclass
class Conversation:
    """One customer's chat: the transcript, the state and the current intent carry over from
    one message to the next."""

    runner: Runner
    backend: SupportBackend
    state: SupportState = field(default_factory=SupportState)
    history: tuple[Message, ...] = ()
    intent: str | None = None

    async def send(
        self, text: str, *, on_event: Callable[[GraphEvent], None] | None = None
    ) -> GraphResult[Any]:
        """Route and answer one message of the customer's."""
        self.state.case = None  # a case brief belongs to one message; the notes stay
        result = await self.runner.run(
            text,
            history=self.history,
            deps=self.backend,
            state=self.state,
            current_intent=self.intent,
            on_event=on_event,
        )
        self.history = result.transcript
        self.intent = result.intent
        return result
