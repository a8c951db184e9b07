"""Toolsets: ordered, named, composable; names checked at build time."""

from __future__ import annotations

import pytest

from intentflow import Tool, ToolNameError, Toolset


def search(query: str) -> str:
    """Search."""
    return query


def refund(order_id: str) -> str:
    """Refund."""
    return order_id


def status(order_id: str) -> str:
    """Status."""
    return order_id


def _support() -> Toolset:
    return Toolset("support", [search, refund, status])


def test_order_is_insertion_order_and_stable() -> None:
    ts = _support()
    assert ts.names == ("search", "refund", "status")
    assert [e["function"]["name"] for e in ts.to_openai()] == ["search", "refund", "status"]
    assert ts.to_openai() is ts.to_openai()


def test_decorator_registers_and_invalidates_the_cached_array() -> None:
    ts = Toolset("t")
    before = ts.to_openai()

    @ts.tool
    def ping() -> str:
        return "pong"

    assert before == []
    assert [e["function"]["name"] for e in ts.to_openai()] == ["ping"]
    assert ts["ping"] is ping


def test_duplicate_name_is_rejected_with_a_suggestion() -> None:
    ts = _support()
    other = Tool.from_function(search, description="another search")
    with pytest.raises(ToolNameError, match="already taken") as info:
        ts.add(other)
    assert info.value.suggestion == "support_search"


def test_union_keeps_order_and_dedupes_the_same_tool() -> None:
    a = _support()
    b = a.subset(["status"], name="b")
    extra = Toolset("extra", [Tool.from_function(search, alias="find")])
    u = a | b | extra
    assert u.names == ("search", "refund", "status", "find")


def test_union_of_different_tools_under_one_name_is_an_error() -> None:
    with pytest.raises(ToolNameError):
        _support().union(Toolset("x", [Tool.from_function(status, name="search")]))


def test_subset_keeps_the_toolset_order_and_rejects_unknown_names() -> None:
    assert _support().subset(["status", "search"]).names == ("search", "status")
    with pytest.raises(KeyError, match="serch"):
        _support().subset(["serch"])


def test_prefix_and_rename_change_only_what_the_model_sees() -> None:
    prefixed = _support().with_prefix("crm_")
    assert prefixed.names == ("crm_search", "crm_refund", "crm_status")
    assert prefixed["crm_search"].name == "search"
    renamed = _support().rename({"refund": "issue_refund"})
    assert renamed.names == ("search", "issue_refund", "status")
    assert _support().names == ("search", "refund", "status")
    with pytest.raises(KeyError):
        _support().rename({"nope": "x"})


def test_prefix_that_makes_a_name_invalid_is_rejected() -> None:
    with pytest.raises(ToolNameError):
        _support().with_prefix("x" * 60)


def test_lookup_errors_name_what_exists() -> None:
    with pytest.raises(KeyError, match="search"):
        _support()["serch"]
    assert _support().get("serch") is None
    assert "search" in _support()
    assert len(_support()) == 3


def test_a_toolset_needs_a_name_first() -> None:
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    with pytest.raises(TypeError, match=r"Toolset\(name, tools\).*not a list"):
        Toolset([lookup])  # type: ignore[arg-type]
