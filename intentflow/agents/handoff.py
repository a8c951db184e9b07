"""Handoffs: the edges of an agent graph that the model may take, exposed as transfer tools.

Each outgoing handoff edge of a node becomes one tool the node's model can call,
``transfer_to_<target>`` by default, whose arguments are the handoff's payload (a Pydantic
model the application defines; none by default). A successful transfer call ends the node's
turn loop; the graph runner continues at the target with the same transcript, in which the
transfer call and its result ("Transferred to billing.") stay, so every tool call keeps its
answer and the next agent sees how it got the conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intentflow.toolsets.tool import Tool

__all__ = ["REROUTE", "Handoff", "HandoffRequest", "NoPayload", "RerouteRequest", "reroute_handoff"]

REROUTE = "__reroute__"
"""The target of the re-route handoff: not a node, but "route the user's message again"."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class NoPayload(BaseModel):
    """The arguments of a transfer tool that carries no payload: none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Handoff:
    """A handoff edge: the model may transfer the conversation to ``target``.

    Examples:
        >>> from pydantic import BaseModel
        >>> class Ticket(BaseModel):
        ...     summary: str
        >>> h = Handoff("tech_support", description="Device faults.", payload=Ticket)
        >>> h.tool_name
        'transfer_to_tech_support'
        >>> sorted(h.tool().parameters["properties"])
        ['summary']

    Attributes:
        target: The node (agent name) the conversation goes to.
        description: When to transfer, for the model (the tool's description).
        payload: A Pydantic model of what the model must pass along (a summary, an order
            id); ``None`` for no arguments. The validated payload reaches the target's
            ``on_handoff`` hook.
        tool_name: The transfer tool's name (default ``transfer_to_<target>``).
    """

    target: str
    description: str = ""
    payload: type[BaseModel] | None = None
    tool_name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.tool_name:
            name = f"transfer_to_{_UNSAFE.sub('_', self.target)}"[:64]
            object.__setattr__(self, "tool_name", name)

    def tool(self) -> Tool:
        """The transfer tool the source agent's model sees."""
        target = self.target
        message = "Routing the request again." if target == REROUTE else f"Transferred to {target}."

        async def transfer(args: BaseModel) -> str:
            return message

        return Tool.from_model(
            self.payload or NoPayload,
            transfer,
            name=self.tool_name,
            description=self.description
            or f"Transfer the conversation to {target}, who will continue it.",
            idempotent=True,  # it only says "transferred": the graph run acts on it
        )


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """A transfer the model made: where to, with what, from which call.

    Attributes:
        source: The agent that transferred.
        target: The agent it transferred to.
        payload: The validated payload (an instance of the handoff's payload model), or
            ``None`` when the handoff carries none.
        tool_call_id: The transfer call's id in the transcript.
    """

    source: str
    target: str
    payload: Any
    tool_call_id: str


class RerouteRequest(BaseModel):
    """The payload of ``request_reroute``: why the current intent does not fit."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why the user's request is not one you handle.")


def reroute_handoff() -> Handoff:
    """The handoff behind ``request_reroute``, given to agents with ``can_reroute=True``."""
    return Handoff(
        REROUTE,
        description=(
            "Call this when the user's request is not the kind of request you handle, so it is "
            "routed again to the right specialist. Say why in `reason`."
        ),
        payload=RerouteRequest,
        tool_name="request_reroute",
    )
