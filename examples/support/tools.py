"""Fake in-memory backends for the support desk: customers, orders, charges, help articles.

In a real service these are your order database, your payment provider and your help centre;
here they are a few dictionaries with the operations the agents' tools need. Each operation
raises `LookupError` or `ValueError` with a message the model can act on ("no order ORD-9"),
which the executor sends back to the model as a structured tool error.

`demo_backend()` builds the data the demo and the tests use: one customer (Maya, C-100)
with three orders, and one duplicate charge to refund.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

__all__ = [
    "Article",
    "Charge",
    "Component",
    "Customer",
    "Order",
    "Refund",
    "RefundReason",
    "Shipment",
    "SupportBackend",
    "Ticket",
    "demo_backend",
]

Component = Literal["app", "website", "checkout", "payments", "email"]
RefundReason = Literal["duplicate_charge", "not_received", "damaged", "cancelled", "other"]


class Customer(BaseModel):
    customer_id: str
    name: str
    email: str
    plan: Literal["basic", "plus"] = "basic"
    shipping_address: str


class Shipment(BaseModel):
    carrier: str
    tracking_number: str
    last_event: str
    eta: date | None = None


class Order(BaseModel):
    order_id: str
    customer_id: str
    placed_on: date
    items: list[str]
    total: Decimal
    currency: str = "EUR"
    status: Literal["processing", "shipped", "delivered", "cancelled"]
    shipment: Shipment | None = None


class Charge(BaseModel):
    charge_id: str
    customer_id: str
    order_id: str
    amount: Decimal
    currency: str = "EUR"
    created: date
    refunded: Decimal = Decimal("0.00")


class Refund(BaseModel):
    refund_id: str
    charge_id: str
    amount: Decimal
    currency: str
    reason: RefundReason
    arrives_in: str = "3-5 business days"


class Article(BaseModel):
    article_id: str
    title: str
    keywords: list[str]
    steps: list[str]


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str | None
    component: Component
    summary: str
    priority: Literal["low", "normal", "high"]


class SupportBackend:
    """The fake systems behind the tools; one instance is shared by every run (``deps``)."""

    def __init__(
        self,
        customers: list[Customer],
        orders: list[Order],
        charges: list[Charge],
        articles: list[Article],
        incidents: dict[str, str] | None = None,
    ) -> None:
        self.customers = {c.customer_id: c for c in customers}
        self.orders = {o.order_id: o for o in orders}
        self.charges = {c.charge_id: c for c in charges}
        self.articles = articles
        self.incidents = dict(incidents or {})
        self.refunds: list[Refund] = []
        self.tickets: list[Ticket] = []
        self._ids = itertools.count(1)

    # -- customers -----------------------------------------------------------------------

    def find_customer(self, email: str) -> Customer:
        wanted = email.strip().lower()
        for customer in self.customers.values():
            if customer.email.lower() == wanted:
                return customer
        raise LookupError(f"no customer with the email {email!r}; ask the customer to check it")

    def customer(self, customer_id: str) -> Customer:
        try:
            return self.customers[customer_id]
        except KeyError:
            raise LookupError(f"no customer {customer_id!r}") from None

    def update_email(self, customer_id: str, new_email: str) -> Customer:
        customer = self.customer(customer_id)
        if any(c.email.lower() == new_email.lower() for c in self.customers.values()):
            raise ValueError(f"{new_email!r} already belongs to an account")
        customer.email = new_email
        return customer

    def update_address(self, customer_id: str, address: str) -> Customer:
        customer = self.customer(customer_id)
        customer.shipping_address = address
        return customer

    # -- orders ---------------------------------------------------------------------------

    def order(self, order_id: str) -> Order:
        try:
            return self.orders[order_id.strip().upper()]
        except KeyError:
            raise LookupError(f"no order {order_id!r}; order ids look like ORD-1001") from None

    def cancel_order(self, order_id: str) -> Order:
        order = self.order(order_id)
        if order.status != "processing":
            raise ValueError(f"{order.order_id} is {order.status} and can no longer be cancelled")
        order.status = "cancelled"
        return order

    # -- billing --------------------------------------------------------------------------

    def charges_for(self, customer_id: str) -> list[Charge]:
        self.customer(customer_id)
        return [c for c in self.charges.values() if c.customer_id == customer_id]

    def refund(self, charge_id: str, amount: Decimal, reason: RefundReason) -> Refund:
        try:
            charge = self.charges[charge_id]
        except KeyError:
            raise LookupError(f"no charge {charge_id!r}; list the customer's charges") from None
        refundable = charge.amount - charge.refunded
        if amount > refundable:
            raise ValueError(
                f"at most {refundable} {charge.currency} of {charge_id} can still be refunded"
            )
        charge.refunded += amount
        refund = Refund(
            refund_id=f"RF-{next(self._ids):04d}",
            charge_id=charge_id,
            amount=amount,
            currency=charge.currency,
            reason=reason,
        )
        self.refunds.append(refund)
        return refund

    # -- technical support ----------------------------------------------------------------

    def status(self, component: Component) -> str:
        return self.incidents.get(component, "operational")

    def search_articles(self, query: str, limit: int = 2) -> list[Article]:
        words = {w.strip(".,!?").lower() for w in query.split()}
        scored = [(len(words & set(a.keywords)), a) for a in self.articles]
        return [a for score, a in sorted(scored, key=lambda s: -s[0]) if score][:limit]

    def open_ticket(
        self,
        customer_id: str | None,
        component: Component,
        summary: str,
        priority: Literal["low", "normal", "high"],
    ) -> Ticket:
        ticket = Ticket(
            ticket_id=f"T-{next(self._ids):04d}",
            customer_id=customer_id,
            component=component,
            summary=summary,
            priority=priority,
        )
        self.tickets.append(ticket)
        return ticket


def demo_backend() -> SupportBackend:
    """A fresh backend with the demo's data (each run of the demo or a test gets its own)."""
    maya = Customer(
        customer_id="C-100",
        name="Maya Lee",
        email="maya@example.com",
        plan="plus",
        shipping_address="12 Harbour Street, Bristol BS1 4RN",
    )
    orders = [
        Order(
            order_id="ORD-1001",
            customer_id="C-100",
            placed_on=date(2025, 6, 2),
            items=["Trail running shoes"],
            total=Decimal("89.00"),
            status="shipped",
            shipment=Shipment(
                carrier="DHL",
                tracking_number="JD014600003826",
                last_event="Arrived at the Bristol delivery depot",
                eta=date(2025, 6, 6),
            ),
        ),
        Order(
            order_id="ORD-1002",
            customer_id="C-100",
            placed_on=date(2025, 6, 3),
            items=["Rain jacket", "Merino socks (2 pairs)"],
            total=Decimal("59.00"),
            status="processing",
        ),
        Order(
            order_id="ORD-1003",
            customer_id="C-100",
            placed_on=date(2025, 6, 4),
            items=["Water bottle"],
            total=Decimal("24.00"),
            status="processing",
        ),
    ]
    charges = [
        Charge(
            charge_id="CH-5001",
            customer_id="C-100",
            order_id="ORD-1001",
            amount=Decimal("89.00"),
            created=date(2025, 6, 2),
        ),
        Charge(
            charge_id="CH-5002",
            customer_id="C-100",
            order_id="ORD-1002",
            amount=Decimal("59.00"),
            created=date(2025, 6, 3),
        ),
        Charge(  # the duplicate: the same order charged twice a minute apart
            charge_id="CH-5003",
            customer_id="C-100",
            order_id="ORD-1002",
            amount=Decimal("59.00"),
            created=date(2025, 6, 3),
        ),
        Charge(
            charge_id="CH-5004",
            customer_id="C-100",
            order_id="ORD-1003",
            amount=Decimal("24.00"),
            created=date(2025, 6, 4),
        ),
    ]
    articles = [
        Article(
            article_id="KB-12",
            title="The app crashes or closes on start",
            keywords=["app", "crash", "crashes", "crashing", "closes", "freezes", "history"],
            steps=[
                "Update the app to the latest version",
                "Sign out and back in",
                "If it still crashes, reinstall the app (your orders are kept)",
            ],
        ),
        Article(
            article_id="KB-31",
            title="A payment error was shown but I was charged",
            keywords=["payment", "error", "charged", "checkout", "declined"],
            steps=[
                "Do not pay again: the first payment usually went through",
                "Check the order's status in 'My orders' after 15 minutes",
            ],
        ),
        Article(
            article_id="KB-40",
            title="I don't receive emails from us",
            keywords=["email", "emails", "verification", "newsletter", "spam"],
            steps=["Check your spam folder", "Add support@northwind.example to your contacts"],
        ),
    ]
    incidents = {"payments": "degraded: payment confirmations in the app are delayed"}
    return SupportBackend([maya], orders, charges, articles, incidents)
