"""AgentGraph: building, validation (every problem listed), Mermaid export."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from intentflow.agents import Agent, forced, required, sequence
from intentflow.agents.graph import AgentGraph
from intentflow.agents.handoff import Handoff
from intentflow.errors import ConfigurationError
from intentflow.router import Intent
from intentflow.testing import ScriptedModel

MODEL = ScriptedModel([])


def agent(name: str, **kwargs: object) -> Agent[str]:
    return Agent(name=name, model=MODEL, **kwargs)  # type: ignore[arg-type]


def lookup(order_id: str) -> str:
    """Look an order up."""
    return order_id


def test_handoffs_from_agents_and_from_the_graph_become_edges() -> None:
    class Ticket(BaseModel):
        summary: str

    graph = AgentGraph([agent("triage", handoffs=["billing", Handoff("tech", payload=Ticket)])])
    graph.add(agent("billing"))
    graph.add(agent("tech"))
    graph.add_handoff("billing", "tech", description="Device faults go to tech.")
    assert sorted(graph.successors("triage")) == ["billing", "tech"]
    specs = {h.target: h for h in graph.handoffs("triage")}
    assert specs["tech"].payload is Ticket and specs["tech"].tool_name == "transfer_to_tech"
    assert graph.handoffs("billing")[0].description == "Device faults go to tech."
    assert graph.nodes == ("triage", "billing", "tech")
    graph.validate(["triage"])


def test_every_problem_is_listed_in_one_error() -> None:
    graph = AgentGraph(
        [
            agent("triage", handoffs=["billing", "ghost"]),
            agent("billing", handoffs=["support"]),
            agent("support", handoffs=["billing"]),  # billing <-> support: no cap
            agent("orphan"),
            # Forced to transfer forever, and it can only transfer into a dead loop.
            agent("relay", handoffs=["relay2"], tool_choice="required"),
            agent("relay2", handoffs=["relay"], tool_choice="required", max_visits=2),
        ]
    )
    with pytest.raises(ConfigurationError) as info:
        graph.validate(["triage", "nowhere"])
    text = str(info.value)
    expected = [
        "'triage' hands off to 'ghost', which is not a node of the graph",
        "the entry point 'nowhere' is not a node of the graph",
        "node 'orphan' cannot be reached from any entry point",
        "node 'relay' can never finish",
        "node 'relay2' can never finish",
        "the cycle relay <-> relay2 has no exit",
        "the cycle billing <-> support has no cap",
    ]
    for line in expected:
        assert line in text, line
    assert "relay <-> relay2 has no cap" not in text  # relay2 has max_visits
    assert text.count("\n  - ") == len(graph.problems(["triage", "nowhere"]))


def test_a_capped_cycle_with_an_exit_is_valid() -> None:
    graph = AgentGraph(
        [agent("billing", handoffs=["support"]), agent("support", handoffs=["billing"])]
    )
    assert any("no cap" in p for p in graph.problems(["billing"]))
    graph.cap_cycle(["billing", "support"], max_passes=3)
    graph.validate(["billing"])


def test_a_self_loop_is_a_cycle() -> None:
    graph = AgentGraph([agent("a")])
    graph.add_transition("a", "a", when=lambda ctx, result: False)
    assert "the cycle a has no cap" in " ".join(graph.problems(["a"]))


def test_cycle_caps_must_name_one_cycle() -> None:
    graph = AgentGraph([agent("a", handoffs=["b"]), agent("b")])
    graph.cap_cycle(["a", "b"], max_passes=2)
    assert "cap_cycle(a, b) does not name the nodes of one cycle" in graph.problems(["a"])
    with pytest.raises(ValueError, match="max_passes"):
        graph.cap_cycle(["a"], max_passes=0)


def test_duplicate_nodes_and_edges_are_problems() -> None:
    graph = AgentGraph([agent("a", handoffs=["b"]), agent("a"), agent("b")])
    graph.add_handoff("a", "b")
    problems = graph.problems(["a"])
    assert "two nodes are named 'a'" in problems
    assert "two edges from 'a' to 'b'; keep one" in problems


def test_a_node_forced_to_transfer_is_not_an_exit_but_one_that_can_answer_is() -> None:
    graph = AgentGraph(
        [
            agent("triage", handoffs=["billing"], tool_choice=required()),
            agent("billing", tools=[lookup], tool_choice=sequence(forced("lookup"), then="auto")),
        ]
    )
    assert not graph.finishes("triage")
    assert graph.finishes("billing")
    graph.validate(["triage"])


def test_an_agent_that_must_transfer_cannot_run_alone() -> None:
    triage = agent("triage", handoffs=["billing"], tool_choice="required")  # fine to build
    with pytest.raises(ConfigurationError, match="can never answer"):
        triage.run_sync("hi")


def test_agent_lookup_errors() -> None:
    graph = AgentGraph([agent("a")])
    with pytest.raises(KeyError, match="no agent named 'b'"):
        graph.agent("b")


def test_mermaid_shows_intents_entries_edges_and_caps() -> None:
    graph = AgentGraph(
        [
            agent("triage", handoffs=["billing"], tool_choice="required"),
            agent("billing", handoffs=["triage"], max_visits=2, max_turns=4),
        ]
    )
    graph.add_transition("billing", "triage", label="needs more") if False else None
    graph.cap_cycle(["triage", "billing"], 3)
    intents = [Intent("refund", examples=["refund"], entry="triage", tool_choice="auto")]
    text = graph.to_mermaid(intents)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert any(
        line.startswith('  n_intent_refund(["intent: refund') and "-.-> n_triage" in line
        for line in lines
    )
    assert '  n_triage["triage<br/>turns ≤ 10"]' in lines  # must transfer: not an exit
    assert '  n_billing["billing<br/>turns ≤ 4, visits ≤ 2"]:::exit' in lines
    assert "  n_triage -->|handoff| n_billing" in lines
    assert "  %% cycle billing, triage: at most 3 passes" in lines


def test_mermaid_labels_transitions() -> None:
    graph = AgentGraph([agent("draft"), agent("review")])
    graph.add_transition("draft", "review", label="needs review")
    graph.add_transition("review", "draft", when=lambda c, r: False)
    graph.cap_cycle(["draft", "review"], 2)
    lines = graph.to_mermaid(entries=["draft"]).splitlines()
    assert "  n_draft -.->|needs review| n_review" in lines
    assert "  n_review -.->|when| n_draft" in lines
    assert "  start((start)) --> n_draft" in lines
