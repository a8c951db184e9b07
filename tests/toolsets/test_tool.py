"""Tools from functions, models and JSON Schemas; validation; names and aliases."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from intentflow import (
    InvalidToolArguments,
    InvalidToolJSON,
    RunContext,
    StrictSchemaWarning,
    Tool,
    ToolDefinitionError,
    ToolNameError,
    tool,
)
from intentflow.toolsets.docstrings import parse_docstring


class Line(BaseModel):
    sku: str
    qty: int = 1


def place_order(lines: list[Line], express: bool = False) -> str:
    """Place an order.

    Args:
        lines: What to order.
        express: Ship express.
    """
    return "ok"


# --------------------------------------------------------------------------- docstrings


def test_google_docstring_gives_description_and_parameters() -> None:
    params = Tool.from_function(place_order).parameters["properties"]
    assert Tool.from_function(place_order).description == "Place an order."
    assert params["lines"]["description"] == "What to order."
    assert params["express"]["description"] == "Ship express."


def test_numpy_docstring() -> None:
    doc = parse_docstring(
        """Convert money.

        Parameters
        ----------
        amount : float
            How much,
            in the source currency.
        to : str
            Target currency.

        Returns
        -------
        float
        """
    )
    assert doc.description == "Convert money."
    assert doc.params == {"amount": "How much, in the source currency.", "to": "Target currency."}


def test_sphinx_docstring() -> None:
    doc = parse_docstring(
        """Convert money.

        :param amount: How much.
        :param str to: Target
            currency.
        :returns: the amount.
        """
    )
    assert doc.description == "Convert money."
    assert doc.params == {"amount": "How much.", "to": "Target currency."}


def test_google_multiline_description_and_sections_after_args() -> None:
    doc = parse_docstring(
        """Search products.

        Looks in the catalogue.

        Args:
            query (str): Free text.
            limit: At most this many
                results.

        Returns:
            The products.
        """
    )
    assert doc.description == "Search products.\n\nLooks in the catalogue."
    assert doc.params == {"query": "Free text.", "limit": "At most this many results."}


def test_annotated_field_description_wins_over_docstring() -> None:
    def f(x: Annotated[int, Field(description="From Field")]) -> None:
        """Doc.

        Args:
            x: From docstring.
        """

    assert Tool.from_function(f).parameters["properties"]["x"]["description"] == "From Field"


# --------------------------------------------------------------------------- functions


def test_sync_and_async_functions_are_detected() -> None:
    async def a() -> None: ...

    def s() -> None: ...

    assert Tool.from_function(a).is_async
    assert not Tool.from_function(s).is_async


def test_context_parameter_is_not_in_the_schema() -> None:
    def f(ctx: RunContext[int], city: str) -> None: ...

    t = Tool.from_function(f)
    assert list(t.parameters["properties"]) == ["city"]
    assert t.takes_context


@pytest.mark.anyio
async def test_context_is_injected_on_invoke() -> None:
    seen: list[Any] = []

    async def f(city: str, ctx: RunContext[str]) -> str:
        seen.append(ctx.deps)
        return city

    t = Tool.from_function(f)
    assert await t.invoke(t.validate({"city": "Oslo"}), RunContext(deps="db")) == "Oslo"
    assert seen == ["db"]


@pytest.mark.anyio
async def test_positional_only_parameters_are_passed_positionally() -> None:
    def f(a: int, /, b: int) -> int:
        return a - b

    t = Tool.from_function(f)
    assert await t.invoke(t.validate({"a": 5, "b": 2})) == 3


def test_var_args_are_rejected_at_build_time() -> None:
    def f(*items: str) -> None: ...

    with pytest.raises(ToolDefinitionError, match=r"\*items"):
        Tool.from_function(f)


def test_unresolvable_annotation_is_a_definition_error() -> None:
    def f(x: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ToolDefinitionError, match="type hints"):
        Tool.from_function(f)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(ToolDefinitionError, match="name"):
        Tool.from_function(lambda x: x)


def test_decorator_bare_and_with_options() -> None:
    @tool
    def a(x: int) -> int:
        return x

    @tool(name="b_tool", timeout=2.0)
    def b(x: int) -> int:
        return x

    assert isinstance(a, Tool)
    assert (b.name, b.timeout) == ("b_tool", 2.0)


def test_non_positive_timeout_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="timeout"):
        Tool.from_function(place_order, timeout=0)


# --------------------------------------------------------------------------- validation


def test_validate_accepts_json_text_and_dicts() -> None:
    t = Tool.from_function(place_order)
    text = t.validate('{"lines": [{"sku": "A", "qty": null}], "express": null}')
    assert text["express"] is False
    assert text["lines"][0].qty == 1
    assert t.validate({"lines": [{"sku": "A"}]})["lines"][0].sku == "A"


def test_invalid_json_is_a_typed_error_with_the_position() -> None:
    t = Tool.from_function(place_order)
    with pytest.raises(InvalidToolJSON) as info:
        t.validate('{"lines": [')
    assert info.value.tool == "place_order"
    assert (
        "line 1" in info.value.detail or "column" in info.value.detail or "EOF" in info.value.detail
    )


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "3", "null"])
def test_json_that_is_not_an_object_is_invalid_json(raw: str) -> None:
    with pytest.raises(InvalidToolJSON, match="expected a JSON object"):
        Tool.from_function(place_order).validate(raw)


def test_empty_arguments_mean_no_arguments() -> None:
    def ping() -> str:
        return "pong"

    assert Tool.from_function(ping).validate("") == {}


def test_every_failing_field_is_listed_with_its_path() -> None:
    t = Tool.from_function(place_order)
    with pytest.raises(InvalidToolArguments) as info:
        t.validate({"lines": [{"sku": "A"}, {"qty": "many"}], "express": "maybe", "rush": 1})
    where = {e.location: e.type for e in info.value.errors}
    assert where == {
        "lines[1].sku": "missing",
        "lines[1].qty": "int_parsing",
        "express": "bool_parsing",
        "rush": "extra_forbidden",
    }


def test_null_for_a_required_field_is_an_error_not_a_default() -> None:
    with pytest.raises(InvalidToolArguments) as info:
        Tool.from_function(place_order).validate({"lines": None})
    assert info.value.errors[0].location == "lines"


# --------------------------------------------------------------------------- explicit models


@pytest.mark.anyio
async def test_from_model_passes_one_instance() -> None:
    class Search(BaseModel):
        """Search the catalogue."""

        query: str
        limit: int = 5

    got: list[Search] = []

    async def search(args: Search) -> int:
        got.append(args)
        return args.limit

    t = Tool.from_model(Search, search)
    assert t.description == "Search the catalogue."
    assert await t.invoke(t.validate('{"query": "lamp", "limit": null}')) == 5
    assert got == [Search(query="lamp", limit=5)]


# --------------------------------------------------------------------------- JSON-schema tools

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
        "coords": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def _weather() -> Tool:
    return Tool.from_json_schema("weather", "Forecast.", WEATHER, lambda args: args)


@pytest.mark.anyio
async def test_json_schema_tool_handler_receives_the_dict_without_nulls() -> None:
    t = _weather()
    args = t.validate('{"city": "Oslo", "days": 3, "unit": null, "coords": null}')
    assert args == {"city": "Oslo", "days": 3}
    assert await t.invoke(args) == {"city": "Oslo", "days": 3}


@pytest.mark.parametrize(
    ("args", "location", "kind"),
    [
        ({"city": "Oslo", "days": "3"}, "days", "int_type"),
        ({"city": "Oslo", "days": True}, "days", "int_type"),
        ({"city": "Oslo", "days": 9}, "days", "less_than_equal"),
        ({"city": ""}, "city", "string_too_short"),
        ({"city": "Oslo", "unit": "k"}, "unit", "enum"),
        ({"city": "Oslo", "coords": [1.0]}, "coords", "too_short"),
        ({"city": "Oslo", "coords": [1.0, "x"]}, "coords[1]", "float_type"),
        ({"city": "Oslo", "wind": 1}, "wind", "extra_forbidden"),
        ({}, "city", "missing"),
    ],
)
def test_json_schema_tool_validates_by_json_schema_rules(
    args: dict[str, Any], location: str, kind: str
) -> None:
    with pytest.raises(InvalidToolArguments) as info:
        _weather().validate(args)
    assert [(e.location, e.type) for e in info.value.errors] == [(location, kind)]


def test_json_schema_integer_accepts_integral_floats() -> None:
    assert _weather().validate({"city": "Oslo", "days": 3.0})["days"] == 3.0


def test_json_schema_root_must_be_an_object() -> None:
    with pytest.raises(ToolDefinitionError, match="object"):
        Tool.from_json_schema("x", "", {"type": "string"}, lambda a: a)


def test_json_schema_unenforced_keywords_are_reported() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "not": {"const": "a"}}}}
    with pytest.warns(StrictSchemaWarning, match="'not'"):
        t = Tool.from_json_schema("x", "", schema, lambda a: a)
    assert any("'not'" in u for u in t.unenforced)


def test_json_schema_refs_and_nested_nulls() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["items"],
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku"],
                "additionalProperties": False,
            }
        },
    }
    t = Tool.from_json_schema("order", "", schema, lambda a: a)
    assert t.strict
    assert t.validate({"items": [{"sku": "a", "qty": None}]}) == {"items": [{"sku": "a"}]}
    with pytest.raises(InvalidToolArguments) as info:
        t.validate({"items": [{"qty": 1}]})
    assert info.value.errors[0].location == "items[0].sku"


# --------------------------------------------------------------------------- names


def test_invalid_name_suggests_an_alias() -> None:
    schema = {"type": "object", "properties": {}}
    with pytest.raises(ToolNameError) as info:
        Tool.from_json_schema("math.factorial", "", schema, lambda a: a)
    assert info.value.suggestion == "math_factorial"
    assert "alias='math_factorial'" in str(info.value)


def test_alias_is_what_the_model_sees_while_the_name_stays() -> None:
    schema = {"type": "object", "properties": {}}
    t = Tool.from_json_schema("math.factorial", "", schema, lambda a: a, alias="math_factorial")
    assert (t.name, t.api_name) == ("math.factorial", "math_factorial")
    assert t.to_openai()["function"]["name"] == "math_factorial"


def test_with_alias_copies_and_validates_the_alias() -> None:
    t = Tool.from_function(place_order)
    aliased = t.with_alias("order")
    assert aliased.to_openai()["function"]["name"] == "order"
    assert t.to_openai()["function"]["name"] == "place_order"
    assert aliased.name == "place_order"
    with pytest.raises(ToolNameError):
        t.with_alias("x" * 65)


def test_openai_entries_are_built_once() -> None:
    t = Tool.from_function(place_order)
    assert t.to_openai() is t.to_openai()
    assert t.to_openai(strict=False)["function"]["parameters"]["required"] == ["lines"]
    json.dumps(t.to_openai())  # plain JSON, ready for a request


def test_redaction() -> None:
    secret = Tool.from_function(place_order, sensitive=True)
    partial = Tool.from_function(place_order, sensitive=["express"])
    assert secret.redact({"express": True}) == "<redacted>"
    assert partial.redact({"express": True, "lines": []}) == {"express": "<redacted>", "lines": []}
