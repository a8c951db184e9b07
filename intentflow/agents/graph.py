"""`AgentGraph`: agents as the nodes of a `networkx.DiGraph`, checked when it is built.

Two kinds of edge:

* **handoffs** the model takes: each outgoing handoff edge of a node is a transfer tool its
  model can call (`Handoff`), optionally with a typed payload;
* **transitions** the code takes: when a node finishes with an answer, its
  ``next_node(ctx, result)`` method picks the next node, or the first transition edge whose
  ``when(ctx, result)`` condition holds (an edge without a condition always holds). No next
  node: the node's answer is the run's output.

`AgentGraph.problems` lists, and `AgentGraph.validate` raises in one `ConfigurationError`,
everything wrong with the graph: edges to unknown nodes, entry points that are not nodes,
nodes no entry reaches, nodes that cannot reach an exit (a node that can answer), and cycles
(strongly connected components) with no way out or no cap. A cycle is allowed when it is
capped: one of its nodes has ``max_visits``, or the graph caps it with `AgentGraph.cap_cycle`.
The run-wide step cap does not count as a cycle's cap: it is a backstop, not a design.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
from pydantic import BaseModel

from intentflow.agents.agent import Agent
from intentflow.agents.guards import CycleCap, Limits
from intentflow.agents.handoff import Handoff
from intentflow.agents.result import RunResult
from intentflow.context import RunContext
from intentflow.errors import ConfigurationError

if TYPE_CHECKING:
    from intentflow.router.intent import Intent

__all__ = ["AgentGraph", "Condition", "Transition"]

Condition = Callable[[RunContext[Any], RunResult[Any]], bool | Awaitable[bool]]
"""A transition's condition: a (sync or async) function of the run context and the result of
the node that just finished."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A code-decided edge.

    Attributes:
        target: The next node.
        when: The condition; ``None`` always holds.
        label: A short label for diagrams.
    """

    target: str
    when: Condition | None = None
    label: str = ""

    async def holds(self, ctx: RunContext[Any], result: RunResult[Any]) -> bool:
        """Whether the run should follow this edge."""
        if self.when is None:
            return True
        value = self.when(ctx, result)
        if inspect.isawaitable(value):
            value = await value
        return bool(value)


class AgentGraph:
    """Agents wired into a graph of handoffs and transitions.

    Examples:
        >>> from intentflow.testing import ScriptedModel
        >>> model = ScriptedModel([])
        >>> triage = Agent(name="triage", model=model, handoffs=["billing", "support"])
        >>> billing = Agent(name="billing", model=model, handoffs=["triage"], max_visits=2)
        >>> support = Agent(name="support", model=model)
        >>> graph = AgentGraph([triage, billing, support])
        >>> graph.validate(entries=["triage"])
        >>> sorted(graph.successors("triage"))
        ['billing', 'support']

    Args:
        agents: The nodes; each agent's ``handoffs`` become handoff edges.
        limits: The run-wide limits of runs on this graph (step cap, token budget, what a
            tripped cap does).
        state_type: The Pydantic model of the state a run carries between nodes (created
            with no arguments when a run is not given one).
    """

    def __init__(
        self,
        agents: Iterable[Agent[Any]] = (),
        *,
        limits: Limits | None = None,
        state_type: type[BaseModel] | None = None,
    ) -> None:
        self.graph: nx.DiGraph[str] = nx.DiGraph()
        self.limits = limits or Limits()
        self.state_type = state_type
        self.cycle_caps: list[CycleCap] = []
        self._problems: list[str] = []
        for agent in agents:
            self.add(agent)

    # ------------------------------------------------------------------ building

    def add(self, agent: Agent[Any]) -> Agent[Any]:
        """Add an agent as a node, with a handoff edge for each of its ``handoffs``."""
        if "agent" in self.graph.nodes.get(agent.name, {}):  # an edge may have named it first
            self._problems.append(f"two nodes are named {agent.name!r}")
            return agent
        self.graph.add_node(agent.name, agent=agent)
        for spec in agent.handoff_specs:
            self._edge(agent.name, spec.target, kind="handoff", handoff=spec)
        return agent

    def add_handoff(
        self,
        source: str,
        target: str,
        *,
        description: str = "",
        payload: type[BaseModel] | None = None,
        tool_name: str = "",
    ) -> None:
        """Let ``source``'s model transfer the conversation to ``target``."""
        spec = Handoff(target, description, payload, tool_name)
        self._edge(source, target, kind="handoff", handoff=spec)

    def add_transition(
        self, source: str, target: str, *, when: Condition | None = None, label: str = ""
    ) -> None:
        """Let the code move from ``source`` to ``target`` when ``source`` finishes.

        Transitions are tried in the order they were added; ``source``'s ``next_node``
        method, when it overrides the default, decides instead.
        """
        self._edge(source, target, kind="transition", transition=Transition(target, when, label))

    def cap_cycle(self, nodes: Iterable[str], max_passes: int) -> None:
        """Cap the transitions (handoffs included) between ``nodes`` in one run.

        ``nodes`` must be the nodes of one cycle (they are checked to be in one strongly
        connected component by `validate`).
        """
        group = frozenset(nodes)
        if len(group) < 1 or max_passes < 1:
            raise ValueError("cap_cycle needs nodes and max_passes >= 1")
        self.cycle_caps.append(CycleCap(group, max_passes))

    def _edge(self, source: str, target: str, **data: Any) -> None:
        if self.graph.has_edge(source, target):
            self._problems.append(f"two edges from {source!r} to {target!r}; keep one")
            return
        self.graph.add_edge(source, target, **data)

    # ------------------------------------------------------------------ reading

    def agent(self, name: str) -> Agent[Any]:
        """The agent of node ``name``."""
        data = self.graph.nodes.get(name)
        if data is None or "agent" not in data:
            raise KeyError(f"no agent named {name!r} in the graph")
        agent: Agent[Any] = data["agent"]
        return agent

    @property
    def nodes(self) -> tuple[str, ...]:
        """The agents' names (nodes named by an edge before their agent was added come in the
        order the edges named them)."""
        return tuple(n for n, d in self.graph.nodes(data=True) if "agent" in d)

    def successors(self, name: str) -> list[str]:
        """The nodes ``name`` can hand off or move to."""
        return list(self.graph.successors(name))

    def handoffs(self, name: str) -> tuple[Handoff, ...]:
        """The handoff edges out of ``name``, as transfer specs."""
        return tuple(
            d["handoff"] for _, _, d in self.graph.out_edges(name, data=True) if "handoff" in d
        )

    def transitions(self, name: str) -> tuple[Transition, ...]:
        """The transition edges out of ``name``, in the order they were added."""
        return tuple(
            d["transition"]
            for _, _, d in self.graph.out_edges(name, data=True)
            if "transition" in d
        )

    def finishes(self, name: str) -> bool:
        """Whether node ``name`` can end a run with an answer of its own.

        An agent can answer unless its tool_choice policy forces tool calls forever and only
        a transfer would end its turn loop.
        """
        agent = self.agent(name)
        names = {t.api_name for t in agent._all_tools}
        return not agent.policy.problems(names, agent._exits)

    def visit_caps(self) -> dict[str, int]:
        """The nodes with a visit cap, and their caps."""
        return {n: a.max_visits for n in self.nodes if (a := self.agent(n)).max_visits is not None}

    # ------------------------------------------------------------------ checking

    def problems(self, entries: Iterable[str] = ()) -> list[str]:
        """Everything wrong with the graph for runs starting at ``entries`` (none: skip the
        reachability check), one line each."""
        out = list(self._problems)
        g = self.graph
        nodes = set(self.nodes)
        for source, target in g.edges:
            if target not in nodes:
                kind = "hands off" if "handoff" in g.edges[source, target] else "moves"
                out.append(f"{source!r} {kind} to {target!r}, which is not a node of the graph")
            if source not in nodes:
                out.append(f"an edge leaves {source!r}, which is not a node of the graph")
        entries = list(dict.fromkeys(entries))
        for entry in entries:
            if entry not in nodes:
                out.append(f"the entry point {entry!r} is not a node of the graph")
        real = g.subgraph(nodes)
        if entries:
            reached: set[str] = set()
            for entry in (e for e in entries if e in nodes):
                reached |= {entry, *nx.descendants(real, entry)}
            for name in self.nodes:
                if name not in reached:
                    out.append(
                        f"node {name!r} cannot be reached from any entry point "
                        f"({', '.join(entries)})"
                    )
        exits = {n for n in nodes if self.finishes(n) or real.out_degree(n) == 0}
        can_exit = set(exits)
        for node in exits:
            can_exit |= nx.ancestors(real, node)
        for name in self.nodes:
            if name not in can_exit:
                out.append(
                    f"node {name!r} can never finish: it cannot answer itself (its tool_choice "
                    "forces transfers) and no node it can reach can"
                )
        capped_nodes = self.visit_caps()
        components = [c for c in nx.strongly_connected_components(real) if _is_cycle(real, c)]
        for cap in self.cycle_caps:
            if not any(cap.nodes <= c for c in components):
                shown = ", ".join(sorted(cap.nodes))
                out.append(f"cap_cycle({shown}) does not name the nodes of one cycle")
        for component in components:
            shown = " <-> ".join(sorted(component))
            leaves = any(t not in component for n in component for t in real.successors(n))
            if not (leaves or component & exits):
                out.append(f"the cycle {shown} has no exit: no node in it answers or leaves it")
            capped = bool(component & capped_nodes.keys()) or any(
                cap.nodes <= component for cap in self.cycle_caps
            )
            if not capped:
                out.append(
                    f"the cycle {shown} has no cap: give one of its agents max_visits, or "
                    f"call graph.cap_cycle({sorted(component)}, max_passes=...)"
                )
        return out

    def validate(self, entries: Iterable[str] = ()) -> None:
        """Raise one `ConfigurationError` listing every problem (see `problems`)."""
        problems = self.problems(entries)
        if problems:
            raise ConfigurationError(
                "the agent graph is invalid:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    # ------------------------------------------------------------------ export

    def to_mermaid(self, intents: Sequence[Intent] = (), *, entries: Iterable[str] = ()) -> str:
        """The graph as Mermaid flowchart text: intents and entry points, handoffs (solid),
        transitions (dotted), caps, and the nodes that can answer (bold border).

        Examples:
            >>> from intentflow.testing import ScriptedModel
            >>> m = ScriptedModel([])
            >>> g = AgentGraph([Agent(name="triage", model=m, handoffs=["billing"]),
            ...                 Agent(name="billing", model=m, max_turns=4)])
            >>> print(g.to_mermaid(entries=["triage"]))
            flowchart LR
              start((start)) --> n_triage
              n_triage["triage<br/>turns ≤ 10"]:::exit
              n_billing["billing<br/>turns ≤ 4"]:::exit
              n_triage -->|handoff| n_billing
              classDef exit stroke-width:3px
        """
        ids = {name: _mermaid_id(name) for name in self.nodes}
        lines = ["flowchart LR"]
        for intent in intents:
            if intent.entry is None:
                continue
            iid = _mermaid_id(f"intent_{intent.name}")
            n = len(intent.tool_names)
            tools = f"<br/>{n} tool{'s' * (n != 1)}" if n else ""
            lines.append(
                f'  {iid}(["intent: {_label(intent.name)}{tools}<br/>'
                f'tool_choice {_label(str(intent.policy))}"]) -.-> '
                f"{ids.get(intent.entry, _mermaid_id(intent.entry))}"
            )
        for entry in dict.fromkeys(entries):
            lines.append(f"  start((start)) --> {ids.get(entry, _mermaid_id(entry))}")
        for name in self.nodes:
            agent = self.agent(name)
            caps = [f"turns ≤ {agent.max_turns}"]
            if agent.max_visits is not None:
                caps.append(f"visits ≤ {agent.max_visits}")
            style = ":::exit" if self.finishes(name) else ""
            lines.append(f'  {ids[name]}["{_label(name)}<br/>{", ".join(caps)}"]{style}')
        for source, target, data in self.graph.edges(data=True):
            a, b = ids.get(source, _mermaid_id(source)), ids.get(target, _mermaid_id(target))
            if "handoff" in data:
                lines.append(f"  {a} -->|handoff| {b}")
            else:
                label = data["transition"].label or ("when" if data["transition"].when else "")
                lines.append(f"  {a} -.->|{_label(label)}| {b}" if label else f"  {a} -.-> {b}")
        for cap in self.cycle_caps:
            shown = ", ".join(sorted(cap.nodes))
            lines.append(f"  %% cycle {shown}: at most {cap.max_passes} passes")
        lines.append("  classDef exit stroke-width:3px")
        return "\n".join(lines)


def _is_cycle(graph: nx.DiGraph[str], component: set[str]) -> bool:
    if len(component) > 1:
        return True
    (node,) = component
    return bool(graph.has_edge(node, node))


def _mermaid_id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")
