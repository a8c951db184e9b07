"""The strict-schema compiler: optional stays optional, and non-strict is never silent."""

from __future__ import annotations

import copy
import warnings
from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from intentflow import StrictSchemaWarning, Tool, compile_strict
from intentflow.toolsets.strict import is_nullable


def _params(tool: Tool) -> dict[str, Any]:
    entry = tool.to_openai(strict=True)
    assert entry["function"].get("strict") is True, tool.strict_problems
    params: dict[str, Any] = entry["function"]["parameters"]
    return params


def _assert_strict_shape(node: Any) -> None:
    """Every object closed and fully required; no `default` anywhere (walks $defs too)."""
    if isinstance(node, dict):
        assert "default" not in node
        if node.get("type") == "object" or "properties" in node:
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        for value in node.values():
            _assert_strict_shape(value)
    elif isinstance(node, list):
        for value in node:
            _assert_strict_shape(value)


class Unit(Enum):
    C = "c"
    F = "f"


class Item(BaseModel):
    sku: str
    qty: int = 1
    note: str | None = None


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str
    zip: str | None = None


def test_optional_none_default_becomes_required_and_nullable() -> None:
    def f(city: str, days: int | None = None) -> None: ...

    days = _params(Tool.from_function(f))["properties"]["days"]
    assert is_nullable(days)
    assert "optional" in days["description"]
    assert _params(Tool.from_function(f))["required"] == ["city", "days"]


def test_defaulted_literal_is_nullable_and_states_the_default() -> None:
    def f(unit: Literal["c", "f"] = "c") -> None: ...

    unit = _params(Tool.from_function(f))["properties"]["unit"]
    assert unit["enum"] == ["c", "f", None]
    assert unit["type"] == ["string", "null"]
    assert 'default: "c"' in unit["description"]


def test_required_field_is_not_made_nullable() -> None:
    def f(city: str) -> None: ...

    assert _params(Tool.from_function(f))["properties"]["city"] == {"type": "string"}


def test_nested_models_and_lists_of_models_are_closed_and_fully_required() -> None:
    def f(items: list[Item], ship_to: Address | None = None) -> None: ...

    params = _params(Tool.from_function(f))
    _assert_strict_shape(params)
    item = params["$defs"]["Item"]
    assert item["required"] == ["sku", "qty", "note"]
    assert is_nullable(item["properties"]["qty"])
    assert not is_nullable(item["properties"]["sku"])


def test_enum_class_optional_field_wraps_the_ref_in_any_of() -> None:
    def f(unit: Unit = Unit.C) -> None: ...

    unit = _params(Tool.from_function(f))["properties"]["unit"]
    assert {"type": "null"} in unit["anyOf"]
    assert 'default: "c"' in unit["description"]


def test_ref_with_sibling_description_is_inlined() -> None:
    def f(ship_to: Annotated[Address, Field(description="Where to ship")]) -> None: ...

    ship_to = _params(Tool.from_function(f))["properties"]["ship_to"]
    assert "$ref" not in ship_to
    assert ship_to["description"] == "Where to ship"
    assert ship_to["required"] == ["street", "city", "zip"]


def test_union_of_scalars_is_any_of() -> None:
    def f(key: int | str) -> None: ...

    key = _params(Tool.from_function(f))["properties"]["key"]
    assert key["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_open_dict_falls_back_to_non_strict_with_a_structured_warning() -> None:
    def tagger(tags: dict[str, Any]) -> None: ...

    with pytest.warns(StrictSchemaWarning) as record:
        t = Tool.from_function(tagger)
    warning = record[0].message
    assert isinstance(warning, StrictSchemaWarning)
    assert warning.tool == "tagger"
    assert any("/properties/tags" in r and "open object" in r for r in warning.reasons)
    assert t.strict is False
    assert "strict" not in t.to_openai(strict=True)["function"]


def test_non_strict_fallback_is_per_tool_and_explicit_opt_out_is_silent() -> None:
    def f(x: int) -> None: ...

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = Tool.from_function(f, strict=False)
    assert t.strict is False
    assert t.strict_problems == ()


def test_relaxable_constraints_move_into_the_description_and_are_still_enforced() -> None:
    def f(code: Annotated[str, Field(min_length=3, max_length=5)]) -> None: ...

    t = Tool.from_function(f)
    code = _params(t)["properties"]["code"]
    assert "minLength" not in code
    assert "minLength: 3" in code["description"]
    assert t.relaxed
    from intentflow import InvalidToolArguments

    with pytest.raises(InvalidToolArguments):
        t.validate({"code": "ab"})


def test_unsupported_format_is_relaxed() -> None:
    out = compile_strict(
        {"type": "object", "properties": {"u": {"type": "string", "format": "uri"}}}
    )
    assert out.strict
    assert "format" not in out.schema["properties"]["u"]
    assert "(format: uri)" in out.schema["properties"]["u"]["description"]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "object", "properties": {"x": {}}}, "no type"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "'not'"),
        ({"type": "object", "properties": {"x": {"type": "array"}}}, "items"),
        ({"type": "object"}, "without declared properties"),
        ({"type": "string"}, "root"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}, "resolve"),
    ],
)
def test_inexpressible_schemas_are_reported_with_a_path(
    schema: dict[str, Any], reason: str
) -> None:
    out = compile_strict(schema)
    assert not out.strict
    assert any(reason in p for p in out.problems), out.problems


def test_compile_does_not_modify_its_input() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer", "default": 3, "minLength": 1}},
        "$defs": {"X": {"type": "object", "properties": {"y": {"type": "string"}}}},
    }
    before = copy.deepcopy(schema)
    compile_strict(schema)
    assert schema == before


def test_type_list_union_becomes_any_of_with_null_kept() -> None:
    out = compile_strict(
        {
            "type": "object",
            "properties": {"v": {"type": ["string", "integer", "null"]}},
            "required": ["v"],
        }
    )
    assert out.strict
    v = out.schema["properties"]["v"]
    assert v["anyOf"] == [{"type": "string"}, {"type": "integer"}, {"type": "null"}]


def test_tuple_becomes_one_item_schema_with_fixed_length() -> None:
    def f(point: tuple[int, int]) -> None: ...

    point = _params(Tool.from_function(f))["properties"]["point"]
    assert point["items"] == {"type": "integer"}
    assert point["minItems"] == point["maxItems"] == 2


def test_one_of_is_sent_as_any_of() -> None:
    out = compile_strict(
        {
            "type": "object",
            "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
            "required": ["v"],
        }
    )
    assert out.strict
    assert "oneOf" not in out.schema["properties"]["v"]
    assert len(out.schema["properties"]["v"]["anyOf"]) == 2


class Node(BaseModel):
    name: str
    children: list[Node] = []


def test_recursive_model_keeps_refs_and_is_strict() -> None:
    def f(tree: Node) -> None: ...

    t = Tool.from_function(f)
    params = _params(t)
    _assert_strict_shape(params)
    assert t.validate({"tree": {"name": "a", "children": [{"name": "b", "children": None}]}})


def test_deep_nesting_beyond_the_limit_is_not_strict() -> None:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        node = {"type": "object", "properties": {"x": node}, "required": ["x"]}
    out = compile_strict(node)
    assert not out.strict
    assert any("nesting" in p for p in out.problems)


# --------------------------------------------------------------------------- regressions


def test_unknown_keywords_are_left_out_of_the_strict_schema() -> None:
    out = compile_strict(
        {"type": "object", "properties": {"a": {"type": "string", "nullable": True, "x-order": 1}},
         "required": ["a"]}
    )  # fmt: skip
    assert out.strict
    assert out.schema["properties"]["a"] == {"type": "string"}
    assert any("'x-order'" in r for r in out.relaxed)


def test_unknown_type_names_are_problems() -> None:
    out = compile_strict(
        {"type": "object", "properties": {"r": {"type": "float"}}, "required": ["r"]}
    )
    assert not out.strict
    assert any("unknown type 'float'" in p for p in out.problems)


@pytest.mark.parametrize(
    "prop",
    [
        {"type": "string", "enum": ["a", None]},
        {"type": ["string", "null"], "enum": ["a", "b"]},
        {"type": "string", "enum": ["a", "b"]},
    ],
)
def test_optional_enums_accept_null_by_both_type_and_enum(prop: dict[str, Any]) -> None:
    out = compile_strict({"type": "object", "properties": {"p": prop}})
    compiled = out.schema["properties"]["p"]
    assert None in compiled["enum"]
    assert "null" in compiled["type"]


def test_recursive_ref_with_a_description_stays_strict() -> None:
    node = {
        "type": "object",
        "properties": {
            "v": {"type": "integer"},
            "next": {"$ref": "#/$defs/Node", "description": "The next node."},
        },
        "required": ["v"],
    }
    out = compile_strict(
        {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "required": ["root"],
         "$defs": {"Node": node}}
    )  # fmt: skip
    assert out.strict, out.problems
    nxt = out.schema["$defs"]["Node"]["properties"]["next"]
    assert {"$ref": "#/$defs/Node"} in nxt["anyOf"]
    assert nxt["description"].startswith("The next node.")


def test_required_property_default_is_kept_in_the_description() -> None:
    out = compile_strict(
        {"type": "object", "properties": {"c": {"type": "integer", "default": 350}},
         "required": ["c"]}
    )  # fmt: skip
    assert "(default: 350)" in out.schema["properties"]["c"]["description"]


def test_default_of_a_ref_target_is_stated() -> None:
    out = compile_strict(
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/A"}},
         "$defs": {"A": {"type": "string", "default": "q"}}}
    )  # fmt: skip
    assert 'default: "q"' in out.schema["properties"]["x"]["description"]


def test_required_keys_on_an_object_without_properties_are_validated() -> None:
    from intentflow import InvalidToolArguments

    schema = {
        "type": "object",
        "properties": {"p": {"type": "object", "required": ["adults"]}},
        "required": ["p"],
    }
    with pytest.warns(StrictSchemaWarning):
        t = Tool.from_json_schema("t", "", schema, lambda a: a)
    with pytest.raises(InvalidToolArguments, match="adults"):
        t.validate({"p": {}})
