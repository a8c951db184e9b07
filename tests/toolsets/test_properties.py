"""Property tests: whatever schema a tool has and whatever a model sends, only typed errors."""

from __future__ import annotations

import contextlib
import json
import warnings
from typing import Any, Literal

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model

from intentflow import (
    ErrorAction,
    ErrorPolicy,
    Executor,
    InvalidToolArguments,
    InvalidToolJSON,
    OutcomeKind,
    StrictSchemaWarning,
    Tool,
    ToolCall,
    ToolDefinitionError,
    Toolset,
    compile_strict,
)

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-. ", min_size=1, max_size=8)

leaf_schemas = st.one_of(
    st.sampled_from(
        [
            {"type": "string"},
            {"type": "integer"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {},
            {"type": "string", "minLength": 2, "maxLength": 5},
            {"type": "integer", "minimum": 0, "maximum": 10},
            {"type": "string", "format": "uri"},
            {"type": "string", "pattern": "^[a-z]+$"},
            {"type": ["string", "null"]},
            {"type": ["integer", "string"]},
            {"not": {"type": "string"}},
            {"const": "x"},
        ]
    ),
    st.lists(
        st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none()), min_size=1, max_size=4
    ).map(lambda values: {"enum": values}),
    st.builds(lambda d: {"type": "integer", "default": d}, st.integers()),
)


def _object(props: dict[str, Any], required: list[bool], extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": props}
    node["required"] = [k for k, r in zip(props, required, strict=False) if r]
    if extra != "absent":
        node["additionalProperties"] = extra
    return node


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            _object,
            st.dictionaries(names, children, max_size=4),
            st.lists(st.booleans(), min_size=4, max_size=4),
            st.sampled_from([False, True, "absent", {"type": "integer"}]),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(
            lambda items: {"type": "array", "prefixItems": items}, st.lists(children, max_size=3)
        ),
        st.builds(lambda branches: {"anyOf": branches}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda branches: {"oneOf": branches}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda part: {"allOf": [part]}, children),
    )


schemas = st.recursive(leaf_schemas, _containers, max_leaves=12)
root_schemas = st.builds(
    _object,
    st.dictionaries(names, schemas, max_size=5),
    st.lists(st.booleans(), min_size=5, max_size=5),
    st.sampled_from([False, "absent"]),
)

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=15,
)
payloads = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(names, json_values, max_size=5).map(json.dumps),
    st.text(max_size=40),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


def _strict_shape_violations(node: Any, path: str = "") -> list[str]:
    """An independent check of the strict-mode shape rules on a compiled schema."""
    problems: list[str] = []
    if isinstance(node, dict):
        if "default" in node:
            problems.append(f"{path}: default")
        if "oneOf" in node or "allOf" in node:
            problems.append(f"{path}: oneOf/allOf")
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: open object")
            if node.get("required") != list(node.get("properties", {})):
                problems.append(f"{path}: not all required")
        for key, value in node.items():
            problems += _strict_shape_violations(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _strict_shape_violations(value, f"{path}/{i}")
    return problems


@_SETTINGS
@given(root_schemas)
def test_compiler_never_raises_and_strict_output_obeys_the_rules(schema: dict[str, Any]) -> None:
    out = compile_strict(schema)
    if out.strict:
        assert _strict_shape_violations(out.schema) == []
    else:
        assert out.problems


@_SETTINGS
@given(root_schemas, st.lists(payloads, min_size=1, max_size=4))
def test_validation_of_any_payload_raises_only_typed_errors(
    schema: dict[str, Any], sent: list[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrictSchemaWarning)
        try:
            tool = Tool.from_json_schema("t", "", schema, lambda args: args)
        except ToolDefinitionError:
            return
    for payload in sent:
        try:
            result = tool.validate(payload)
        except (InvalidToolJSON, InvalidToolArguments) as exc:
            message = str(exc)
            assert message
        else:
            assert isinstance(result, dict)


_FIELD_TYPES: list[Any] = [
    int,
    str,
    float,
    bool,
    list[int],
    dict[str, int],
    Literal["a", "b"],
    int | None,
    list[str] | None,
    tuple[int, str],
]


class _Inner(BaseModel):
    x: int
    y: str = "d"


@st.composite
def argument_models(draw: st.DrawFn) -> type[BaseModel]:
    n = draw(st.integers(0, 5))
    fields: dict[str, Any] = {}
    for i in range(n):
        annotation = draw(st.sampled_from([*_FIELD_TYPES, _Inner, list[_Inner], _Inner | None]))
        if draw(st.booleans()):
            fields[f"f{i}"] = (annotation, ...)
        else:
            fields[f"f{i}"] = (annotation, None)
    model: type[BaseModel] = create_model("Args", **fields)
    return model


@_SETTINGS
@given(argument_models(), st.lists(payloads, min_size=1, max_size=4))
def test_model_tools_raise_only_typed_errors(model: type[BaseModel], sent: list[str]) -> None:
    async def handler(args: BaseModel) -> None: ...

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrictSchemaWarning)
        tool = Tool.from_model(model, handler, name="m")
    if tool.strict:
        assert _strict_shape_violations(tool.to_openai()["function"]["parameters"]) == []
    for payload in sent:
        with contextlib.suppress(InvalidToolJSON, InvalidToolArguments):
            tool.validate(payload)


@settings(max_examples=40, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=5))
def test_executor_turns_any_payload_into_an_outcome(sent: list[str]) -> None:
    ts = Toolset("t")

    @ts.tool
    async def add(a: int, b: int = 0) -> int:
        return a + b

    calls = [ToolCall(id=f"c{i}", name="add", arguments=p) for i, p in enumerate(sent)]
    # Budget overruns go back to the model too, so every payload ends as an outcome.
    policy = ErrorPolicy(budget_exceeded=ErrorAction.RETURN_TO_MODEL)
    outcomes = anyio.run(Executor(ts, policy=policy).execute, calls)
    assert [o.tool_call_id for o in outcomes] == [c.id for c in calls]
    assert {o.kind for o in outcomes} <= {
        OutcomeKind.SUCCESS,
        OutcomeKind.INVALID_JSON,
        OutcomeKind.INVALID_ARGUMENTS,
        OutcomeKind.BUDGET_EXCEEDED,
    }
    for o in outcomes:
        if o.ok:
            assert o.content.lstrip("-").isdigit()
        else:
            assert json.loads(o.content)["error"]["kind"] == o.kind.value
