"""Real-world check of the strict-schema compiler, the validator and the null rule on BFCL.

Every function of the five non-live BFCL v4 categories (1,917 definitions) is converted, built
as a tool and compiled for strict mode; every expected call is sent as a strict-mode model would
send it (``null`` for what it leaves out) and must validate, and no such ``null`` may reach the
handler. The data lives beside the checkout (``../shared/data/bfcl``); without it those tests
are skipped, and the unit tests below (small hand-written inputs) still run.
"""

from __future__ import annotations

import collections
import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intentflow.errors import InvalidToolArguments, StrictSchemaWarning
from intentflow.testing.bfcl import (
    BFCLCase,
    bfcl_to_json_schema,
    bfcl_tool,
    drop_nulls,
    load_bfcl_cases,
    load_bfcl_functions,
    strict_answer,
)
from intentflow.testing.strict_rules import strict_violations
from intentflow.toolsets.strict import compile_strict
from intentflow.toolsets.tool import Tool, suggest_alias, valid_tool_name

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bfcl"
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
ANSWERED = tuple(c for c in CATEGORIES if c != "irrelevance")

needs_data = [
    pytest.mark.data,
    pytest.mark.skipif(
        not DATA_DIR.is_dir(),
        reason=f"BFCL data not found at {DATA_DIR} (a fresh clone has no ../shared)",
    ),
]

# Why a BFCL function may legitimately be sent without strict mode. Strict mode has no schema
# for "some value, of a type not known in advance", and the compiler must say so rather than
# invent one:
JUSTIFIED_NON_STRICT = {
    # BFCL "any" (e.g. a model's training data): no type at all, so strict decoding has
    # nothing to constrain to. Forcing a type (BFCL's own OpenAI handler uses "string") would
    # change the function.
    "no type: a value of any type cannot be strict",
    # BFCL "dict" without "properties": a map whose keys the model chooses (subject -> score,
    # player -> cards). Strict mode requires every key to be declared in advance.
    "an object without declared properties accepts any keys",
}

# Expected calls in BFCL whose *first* acceptable value contradicts the function's own schema,
# so no strict-mode model could send it: (case id, index of the call) -> what is wrong. BFCL's
# own checker lets both pass: it accepts a value of the *answer's* type in place of the declared
# one (its "variable" rule), which JSON Schema validation rightly does not. They must keep
# failing (checked below), so this list cannot hide a regression.
KNOWN_BAD_ANSWERS = {
    ("parallel_multiple_21", 1): (
        "x and y are declared arrays; the answer is Python code in a string (\"data['sales']\")"
    ),
    ("parallel_multiple_94", 0): (
        "sort_list.elements is declared an array of integers; the answer sorts fruit names"
    ),
}

# Every keyword and type that occurs in the five files, as surveyed when bfcl_to_json_schema was
# written; each is handled deliberately there. A new one (a newer BFCL) must be looked at.
SURVEYED_KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "default",
    "items",
    "enum",
    "optional",
    "format",
    "maximum",
    "minItems",
    "maxItems",
}
SURVEYED_TYPES = {"dict", "string", "integer", "float", "array", "boolean", "tuple", "any"}


def _problem_reason(problem: str) -> str:
    """``"/properties/data: no type: ..."`` -> ``"no type: ..."``."""
    return problem.partition(": ")[2]


async def _received(arguments: dict[str, Any]) -> dict[str, Any]:
    """A handler that returns exactly what it is given (async: no worker thread per call)."""
    return arguments


@dataclass(frozen=True)
class _Compiled:
    cases: list[BFCLCase]
    tools: list[dict[str, Tool]]  # per case, by BFCL function name
    warned: list[StrictSchemaWarning]

    def all_tools(self) -> list[tuple[str, Tool]]:
        return [
            (c.id, t) for c, ts in zip(self.cases, self.tools, strict=True) for t in ts.values()
        ]

    def calls(self) -> list[tuple[BFCLCase, int, dict[str, Any], Tool, dict[str, Any]]]:
        """(case, call index, function definition, tool, {param: [acceptable values]})."""
        out = []
        for case, tools in zip(self.cases, self.tools, strict=True):
            for i, call in enumerate(case.ground_truth or ()):
                ((name, params),) = call.items()
                out.append((case, i, case.function(name), tools[name], params))
        return out


@functools.cache
def _compiled(category: str) -> _Compiled:
    """Load one category and build its tools once for all the tests below."""
    cases = load_bfcl_cases(DATA_DIR / f"BFCL_v4_{category}.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StrictSchemaWarning)
        tools = [{fn["name"]: bfcl_tool(fn, _received) for fn in case.functions} for case in cases]
    warned = [w.message for w in caught if isinstance(w.message, StrictSchemaWarning)]
    return _Compiled(cases, tools, warned)


def _report(title: str, failures: list[str], limit: int = 25) -> str:
    shown = "\n  ".join(failures[:limit])
    more = f"\n  ... and {len(failures) - limit} more" if len(failures) > limit else ""
    return f"{len(failures)} {title}:\n  {shown}{more}"


# --------------------------------------------------------------------------- on the data


@pytest.mark.parametrize("category", CATEGORIES)
class TestBFCLData:
    pytestmark = needs_data

    def test_data_uses_only_the_surveyed_keywords_and_types(self, category: str) -> None:
        keywords: collections.Counter[str] = collections.Counter()
        types: collections.Counter[str] = collections.Counter()

        def walk(node: Any) -> None:
            if not isinstance(node, dict):
                return
            keywords.update(node.keys())
            types[json.dumps(node.get("type"))] += 1
            for sub in (node.get("properties") or {}).values():
                walk(sub)
            walk(node.get("items"))

        for fn in load_bfcl_functions(DATA_DIR / f"BFCL_v4_{category}.json"):
            walk(fn["parameters"])
        assert set(keywords) <= SURVEYED_KEYWORDS, sorted(set(keywords) - SURVEYED_KEYWORDS)
        assert {json.loads(t) for t in types} <= SURVEYED_TYPES, types

    def test_every_function_is_strict_or_non_strict_for_a_justified_reason(
        self, category: str
    ) -> None:
        compiled = _compiled(category)
        unjustified = [
            f"{case_id} {tool.name}: {problem}"
            for case_id, tool in compiled.all_tools()
            for problem in tool.strict_problems
            if _problem_reason(problem) not in JUSTIFIED_NON_STRICT
        ]
        assert not unjustified, _report("unjustified strict-mode fallbacks", unjustified)
        for case_id, tool in compiled.all_tools():
            assert tool.strict == (not tool.strict_problems), (case_id, tool.name)

    def test_each_non_strict_tool_warns_once_with_its_reasons(self, category: str) -> None:
        compiled = _compiled(category)
        non_strict = [tool for _, tool in compiled.all_tools() if not tool.strict]
        assert [(w.tool, w.reasons) for w in compiled.warned] == [
            (t.name, t.strict_problems) for t in non_strict
        ]

    def test_emitted_strict_schemas_obey_the_strict_rules(self, category: str) -> None:
        failures = []
        for case_id, tool in _compiled(category).all_tools():
            if not tool.strict:
                continue
            entry = tool.to_openai(strict=True)["function"]
            if entry.get("strict") is not True:
                failures.append(f"{case_id} {tool.name}: no 'strict': true in {entry}")
            failures += [
                f"{case_id} {tool.name}: {v}" for v in strict_violations(entry["parameters"])
            ]
        assert not failures, _report("strict-rule violations", failures)

    def test_tool_names_are_valid_aliases_unique_within_a_case(self, category: str) -> None:
        compiled = _compiled(category)
        for case, tools in zip(compiled.cases, compiled.tools, strict=True):
            api_names = [t.api_name for t in tools.values()]
            assert len(set(api_names)) == len(api_names), (case.id, api_names)
            for name, tool in tools.items():
                assert valid_tool_name(tool.api_name) is None, (case.id, tool.api_name)
                expected = name if valid_tool_name(name) is None else suggest_alias(name)
                assert (tool.name, tool.api_name) == (name, expected)


@pytest.mark.parametrize("category", ANSWERED)
class TestBFCLAnswers:
    pytestmark = needs_data

    def test_every_strict_mode_answer_validates(self, category: str) -> None:
        failures = []
        validated = 0
        for case, i, fn, tool, params in _compiled(category).calls():
            if (case.id, i) in KNOWN_BAD_ANSWERS:
                continue
            try:
                tool.validate(json.dumps(strict_answer(fn, params)))
            except (InvalidToolArguments, ValueError) as exc:
                failures.append(f"{case.id} call {i} {tool.name}: {exc}")
            else:
                validated += 1
        assert not failures, _report("expected calls failed validation", failures)
        assert validated > 0

    def test_known_bad_answers_still_fail(self, category: str) -> None:
        for case, i, fn, tool, params in _compiled(category).calls():
            if (case.id, i) in KNOWN_BAD_ANSWERS:
                with pytest.raises(InvalidToolArguments):
                    tool.validate(json.dumps(strict_answer(fn, params)))

    def test_strict_mode_answers_satisfy_the_emitted_strict_schema(self, category: str) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        failures = []
        for case, i, fn, tool, params in _compiled(category).calls():
            if not tool.strict or (case.id, i) in KNOWN_BAD_ANSWERS:
                continue
            schema = tool.to_openai(strict=True)["function"]["parameters"]
            args = strict_answer(fn, params)
            errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(args)]
            if errors:
                failures.append(f"{case.id} call {i} {tool.name}: {errors[:3]}")
        assert not failures, _report("answers outside the strict schema", failures)

    @pytest.mark.anyio
    async def test_null_for_an_omitted_parameter_never_reaches_the_handler(
        self, category: str
    ) -> None:
        failures = []
        nulls_sent = 0
        for case, i, fn, tool, params in _compiled(category).calls():
            if (case.id, i) in KNOWN_BAD_ANSWERS:
                continue
            sent = strict_answer(fn, params)
            nulls_sent += json.dumps(sent).count("null")
            received = await tool.invoke(tool.validate(json.dumps(sent)))
            if received != drop_nulls(sent):
                failures.append(f"{case.id} call {i} {tool.name}: sent {sent}, got {received}")
        assert not failures, _report("handlers saw a null or lost a value", failures)
        assert nulls_sent > 0  # the data does exercise the rule


# --------------------------------------------------------------------------- unit: conversion


def test_dict_float_and_tuple_become_object_number_and_array() -> None:
    out = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {
                "r": {"type": "float"},
                "xy": {"type": "tuple", "items": {"type": "float"}},
            },
            "required": ["r"],
        }
    )
    assert out == {
        "type": "object",
        "properties": {
            "r": {"type": "number"},
            "xy": {"type": "array", "items": {"type": "number"}},
        },
        "required": ["r"],
    }


def test_any_removes_the_type_and_keeps_the_rest() -> None:
    out = bfcl_to_json_schema(
        {"type": "dict", "properties": {"data": {"type": "any", "description": "Rows."}}}
    )
    assert out["properties"]["data"] == {"description": "Rows."}


def test_conversion_recurses_into_nested_objects_arrays_and_combinators() -> None:
    out = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {
                "rows": {
                    "type": "array",
                    "items": {"type": "dict", "properties": {"v": {"type": "float"}}},
                },
                "either": {"anyOf": [{"type": "float"}, {"type": "tuple", "items": {}}]},
                "map": {"type": "dict", "additionalProperties": {"type": "float"}},
            },
            "$defs": {"P": {"type": "dict", "properties": {}}},
        }
    )
    assert out["properties"]["rows"]["items"]["properties"]["v"] == {"type": "number"}
    assert out["properties"]["either"]["anyOf"] == [
        {"type": "number"},
        {"type": "array", "items": {}},
    ]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "number"}
    assert out["$defs"]["P"]["type"] == "object"


def test_values_of_default_and_enum_are_kept_verbatim() -> None:
    weird_default = {"type": "dict", "float": 1}
    out = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {
                "p": {"type": "dict", "properties": {}, "default": weird_default},
                "flag": {"type": "boolean", "default": "false"},
                "unit": {"type": "string", "enum": ["dict", "float"], "default": "dict"},
            },
        }
    )
    assert out["properties"]["p"]["default"] == weird_default
    assert out["properties"]["flag"] == {"type": "boolean", "default": "false"}
    assert out["properties"]["unit"]["enum"] == ["dict", "float"]


def test_optional_is_dropped_because_required_says_it() -> None:
    out = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {"a": {"type": "integer", "optional": True}, "b": {"type": "string"}},
            "required": ["b"],
            "optional": ["a"],
        }
    )
    assert out == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["b"],
    }


def test_unknown_keywords_and_types_are_kept() -> None:
    out = bfcl_to_json_schema(
        {"type": "dict", "properties": {"x": {"type": "HashMap", "x-unit": "cm"}}, "minimum": 1}
    )
    assert out == {
        "type": "object",
        "properties": {"x": {"type": "HashMap", "x-unit": "cm"}},
        "minimum": 1,
    }


def test_type_lists_are_converted_and_any_in_a_list_means_no_constraint() -> None:
    out = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {
                "a": {"type": ["float", "null"]},
                "b": {"type": ["dict", "object"]},
                "c": {"type": ["any", "string"]},
            },
        }
    )
    assert out["properties"] == {
        "a": {"type": ["number", "null"]},
        "b": {"type": ["object"]},
        "c": {},
    }


def test_conversion_does_not_modify_its_input() -> None:
    params = {
        "type": "dict",
        "properties": {"a": {"type": "float", "optional": True}},
        "optional": ["a"],
    }
    before = json.dumps(params)
    bfcl_to_json_schema(params)
    assert json.dumps(params) == before


# --------------------------------------------------------------------------- unit: tools, answers

_FN = {
    "name": "paint.estimate",
    "description": "Estimate paint for a room.",
    "parameters": {
        "type": "dict",
        "properties": {
            "area": {
                "type": "dict",
                "properties": {"width": {"type": "float"}, "height": {"type": "float"}},
                "required": ["width"],
            },
            "coats": {"type": "integer", "default": 2, "optional": True},
            "colors": {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}},
            "exclusions": {
                "type": "array",
                "items": {
                    "type": "dict",
                    "properties": {"kind": {"type": "string"}, "size": {"type": "float"}},
                    "required": ["kind"],
                },
            },
            "finish": {"type": "string", "enum": ["matte", "gloss"]},
            "corner": {"type": "tuple", "items": {"type": "integer"}},
        },
        "required": ["area", "finish"],
    },
}


def test_a_dotted_name_gets_a_valid_alias_and_a_valid_name_none() -> None:
    tool = bfcl_tool(_FN)
    assert (tool.name, tool.api_name) == ("paint.estimate", "paint_estimate")
    plain = bfcl_tool({**_FN, "name": "paint_estimate"})
    assert plain.api_name == plain.name == "paint_estimate"


def test_a_strict_bfcl_tool_obeys_the_strict_rules() -> None:
    tool = bfcl_tool(_FN)
    assert tool.strict, tool.strict_problems
    assert strict_violations(tool.to_openai(strict=True)["function"]["parameters"]) == []


def test_strict_answer_takes_first_values_and_sends_null_for_what_is_left_out() -> None:
    answer = {
        "area": [{"width": [12.5, 12], "height": ["", 8.0]}],
        "coats": ["", 2],
        "exclusions": [[{"kind": ["window"]}, {"kind": ["door"], "size": [2.0]}]],
        "finish": ["matte", "Matte"],
        "corner": [[0, 0]],
    }
    assert strict_answer(_FN, answer) == {
        "area": {"width": 12.5, "height": None},
        "coats": None,
        "colors": None,
        "exclusions": [{"kind": "window", "size": None}, {"kind": "door", "size": 2.0}],
        "finish": "matte",
        "corner": [0, 0],
    }


@pytest.mark.anyio
async def test_a_strict_answer_validates_and_its_nulls_never_reach_the_handler() -> None:
    tool = bfcl_tool(_FN, _received)
    sent = strict_answer(_FN, {"area": [{"width": [3.0]}], "finish": ["gloss"]})
    received = await tool.invoke(tool.validate(json.dumps(sent)))
    assert received == {"area": {"width": 3.0}, "finish": "gloss"}


def test_default_handler_returns_what_it_is_given() -> None:
    tool = bfcl_tool(_FN)
    args = {"area": {"width": 1.0}, "finish": "matte"}
    assert tool.handler(args) == args


def test_omitting_a_required_parameter_is_not_a_choice() -> None:
    # BFCL's checker rejects a call without a required parameter, so "" is skipped for one.
    assert (
        strict_answer(_FN, {"area": [{"width": [1.0]}], "finish": ["", "gloss"]})["finish"]
        == "gloss"
    )
    assert strict_answer(_FN, {"area": [{"width": [1.0]}], "finish": [""]})["finish"] is None


def test_an_undeclared_parameter_is_left_out_only_if_the_answer_allows_it() -> None:
    base = {"area": [{"width": [1.0]}], "finish": ["matte"]}
    assert "rate" not in strict_answer(_FN, {**base, "rate": ["", 0.1]})
    with pytest.raises(ValueError, match="needs 'rate', which the function does not declare"):
        strict_answer(_FN, {**base, "rate": [0.1]})


def test_an_open_object_gets_exactly_the_answers_keys() -> None:
    fn = {
        "name": "grades",
        "parameters": {
            "type": "dict",
            "properties": {"scores": {"type": "dict", "description": "subject -> score"}},
            "required": ["scores"],
        },
    }
    answer = {"scores": [{"math": [90, 90.0], "art": ["", 70], "cards": [["A", "K"]]}]}
    assert strict_answer(fn, answer) == {"scores": {"math": 90, "cards": ["A", "K"]}}


def test_a_malformed_answer_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        strict_answer(_FN, {"finish": "matte"})


def test_loading_pairs_cases_with_their_answers(tmp_path: Path) -> None:
    (tmp_path / "possible_answer").mkdir()
    case = {"id": "simple_python_0", "question": [[]], "function": [_FN]}
    (tmp_path / "BFCL_v4_simple_python.json").write_text(json.dumps(case) + "\n")
    (tmp_path / "BFCL_v4_irrelevance.json").write_text(json.dumps({**case, "id": "irr_0"}))
    truth = {"id": "simple_python_0", "ground_truth": [{"paint.estimate": {"finish": ["matte"]}}]}
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").write_text(json.dumps(truth))

    irrelevance, simple = load_bfcl_cases(tmp_path)
    assert (simple.category, simple.ground_truth) == ("simple_python", tuple(truth["ground_truth"]))
    assert (irrelevance.category, irrelevance.ground_truth) == ("irrelevance", None)
    assert simple.function("paint.estimate") is simple.functions[0]
    assert load_bfcl_functions(tmp_path) == [_FN, _FN]


# --------------------------------------------------------------------------- unit: strict rules

_GOOD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "format": "date", "description": "d"},
        "days": {"type": ["integer", "null"], "minimum": 1},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "maxItems": 3},
        "mode": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
    },
    "required": ["city", "days", "tags", "mode"],
    "additionalProperties": False,
    "$defs": {
        "Tag": {
            "type": "object",
            "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
}


def _with(path: tuple[str, ...], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of _GOOD with the node at ``path`` updated (a value of ``...`` deletes)."""
    schema: dict[str, Any] = json.loads(json.dumps(_GOOD))
    node = schema
    for part in path:
        node = node[part]
    for key, value in changes.items():
        if value is ...:
            node.pop(key)
        else:
            node[key] = value
    return schema


def test_a_schema_that_obeys_the_rules_has_no_violations() -> None:
    assert strict_violations(_GOOD) == []


def test_compiled_schemas_obey_the_rules() -> None:
    compiled = compile_strict(
        {
            "type": "object",
            "properties": {
                "q": {"type": "string", "minLength": 2},
                "n": {"type": "integer", "default": 3},
                "u": {"type": ["integer", "string"]},
            },
            "required": ["q"],
        }
    )
    assert compiled.strict
    assert strict_violations(compiled.schema) == []


_CITY = ("properties", "city")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            _with((), {"additionalProperties": ...}),
            "additionalProperties must be false",
            id="open",
        ),
        pytest.param(
            _with((), {"additionalProperties": True}),
            "additionalProperties must be false",
            id="extra",
        ),
        pytest.param(
            _with((), {"required": ["city"]}), "missing ['days', 'tags', 'mode']", id="required"
        ),
        pytest.param(
            _with((), {"required": [*_GOOD["required"], "zip"]}),
            "undeclared ['zip']",
            id="undeclared",
        ),
        pytest.param(
            _with(_CITY, {"minLength": 2}), "keyword 'minLength' is not supported", id="minLength"
        ),
        pytest.param(
            _with(_CITY, {"default": "Paris"}), "'default' is not permitted", id="default"
        ),
        pytest.param(_with(_CITY, {"format": "uri"}), "format 'uri' is not supported", id="format"),
        pytest.param(
            _with(_CITY, {"type": "float"}), "type 'float' is not a JSON Schema type", id="type"
        ),
        pytest.param(
            _with(_CITY, {"type": ["string", "integer"]}),
            "a type list must be [T, 'null']",
            id="union",
        ),
        pytest.param(_with(_CITY, {"type": ...}), "no type", id="any"),
        pytest.param(
            _with(("properties", "tags"), {"items": ...}), "must have an items schema", id="items"
        ),
        pytest.param(
            _with(("properties", "tags", "items"), {"$ref": "#/$defs/Nope"}),
            "$ref '#/$defs/Nope' does not resolve",
            id="ref",
        ),
        pytest.param(
            _with(("properties", "tags", "items"), {"description": "t"}),
            "$ref must stand alone",
            id="ref-siblings",
        ),
        pytest.param(
            _with(_CITY, {"enum": ["a", None]}), "enum value None does not match", id="enum"
        ),
        pytest.param(
            _with(_CITY, {"oneOf": [{"type": "string"}]}), "'oneOf' is not supported", id="oneOf"
        ),
        pytest.param(
            {"anyOf": [_GOOD]}, "the root must be an object schema, not anyOf", id="root-union"
        ),
        pytest.param({"type": "string"}, "the root must have type 'object'", id="root-type"),
        pytest.param(
            _with(("properties",), {"city": True}), "a schema must be an object", id="boolean"
        ),
    ],
)
def test_each_rule_is_checked(schema: dict[str, Any], expected: str) -> None:
    violations = strict_violations(schema)
    assert any(expected in v for v in violations), violations


def test_nesting_deeper_than_ten_levels_is_a_violation() -> None:
    def nested(levels: int) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "integer"}
        for _ in range(levels):
            node = {
                "type": "object",
                "properties": {"a": node},
                "required": ["a"],
                "additionalProperties": False,
            }
        return node

    assert strict_violations(nested(10)) == []
    assert any("more than 10" in v for v in strict_violations(nested(11)))


def test_violations_name_the_path() -> None:
    assert strict_violations(_with(_CITY, {"default": "x"})) == [
        "/properties/city: 'default' is not permitted"
    ]


def test_an_unknown_type_is_reported_once() -> None:
    assert strict_violations(_with(_CITY, {"type": "float"})) == [
        "/properties/city: type 'float' is not a JSON Schema type"
    ]


def test_a_recursive_ref_to_the_root_resolves() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["children"],
        "additionalProperties": False,
    }
    assert strict_violations(tree) == []


def test_the_check_is_independent_of_the_compiler() -> None:
    # BFCL's dialect sent unconverted: whatever the compiler makes of it, the checker must not
    # accept a schema that strict mode would reject.
    raw = {"type": "object", "properties": {"r": {"type": "float"}}, "required": ["r"]}
    assert strict_violations(compile_strict(raw).schema) == [
        "/properties/r: type 'float' is not a JSON Schema type"
    ]
