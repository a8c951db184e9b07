"""Helpers for checking tools against BFCL function-calling data.

The `Berkeley Function Calling Leaderboard <https://gorilla.cs.berkeley.edu/leaderboard.html>`_
(BFCL) publishes real function definitions together with the calls a model is expected to make.
Its files use a dialect of JSON Schema and a compact answer format; this module turns both into
what intentflow works with:

* `bfcl_to_json_schema` converts a BFCL ``parameters`` schema to standard JSON Schema;
* `bfcl_tool` builds a `Tool` from a BFCL function
  definition (with a valid alias when the name, e.g. ``math.factorial``, is not a valid OpenAI
  tool name);
* `strict_answer` turns one expected call into the arguments a strict-mode model would
  send for it, ``null`` included;
* `load_bfcl_cases` and `load_bfcl_functions` read the JSON-lines files (and the
  ``possible_answer/`` files beside them).

Examples:
    >>> fn = {
    ...     "name": "math.factorial",
    ...     "description": "Factorial of a number.",
    ...     "parameters": {
    ...         "type": "dict",
    ...         "properties": {
    ...             "number": {"type": "integer"},
    ...             "precision": {"type": "float", "default": 1.0},
    ...         },
    ...         "required": ["number"],
    ...     },
    ... }
    >>> t = bfcl_tool(fn)
    >>> t.api_name, t.strict
    ('math_factorial', True)
    >>> args = strict_answer(fn, {"number": [5], "precision": ["", 1.0]})
    >>> args
    {'number': 5, 'precision': None}
    >>> t.validate(args)
    {'number': 5}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intentflow.toolsets.tool import Tool, suggest_alias, valid_tool_name

__all__ = [
    "BFCL_TYPES",
    "OMITTED",
    "BFCLCase",
    "bfcl_to_json_schema",
    "bfcl_tool",
    "drop_nulls",
    "load_bfcl_cases",
    "load_bfcl_functions",
    "strict_answer",
]

BFCL_TYPES: Mapping[str, str | None] = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "any": None,
    "object": "object",
    "number": "number",
    "array": "array",
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "null": "null",
}
"""BFCL type names and the JSON Schema type each stands for (``None``: no type constraint).

The standard names map to themselves. A name outside this table is kept as it is by
`bfcl_to_json_schema`, so it stays visible to whoever checks the schema.
"""

OMITTED = ""
"""The value BFCL lists among a parameter's acceptable values when it may be left out."""

# Keywords whose value is one schema, a list of schemas, or a map of name -> schema: the
# conversion recurses into exactly these, and never into values (``enum``, ``default``,
# ``const``, ``examples``), which may well contain a key named "type".
_SCHEMA_VALUED = frozenset(
    {
        "items",
        "additionalProperties",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
    }
)
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_MAPS = frozenset(
    {"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"}
)

_VERSIONED_NAME = re.compile(r"^BFCL_v\d+_(?P<category>.+)\.json$")


# --------------------------------------------------------------------------- schemas


def bfcl_to_json_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a BFCL ``parameters`` schema to standard JSON Schema.

    What the conversion does, keyword by keyword (every keyword and type that occurs in the
    BFCL v4 non-live categories was surveyed):

    * ``type``: ``"dict"`` becomes ``"object"``, ``"float"`` ``"number"``, ``"tuple"``
      ``"array"`` (BFCL's tuples are homogeneous, their ``items`` is one schema), and
      ``"any"`` removes the type constraint, leaving the rest of the node (its description)
      as it is. A list of types is converted element by element; ``"any"`` in it removes the
      constraint. See `BFCL_TYPES`.
    * ``optional`` (BFCL's own: ``true``/``"True"`` on a property, or a list of names on an
      object) is dropped: standard JSON Schema states optionality with ``required`` only,
      which BFCL's checker also reads. Where the two disagree (one property in BFCL v4),
      ``required`` wins.
    * ``properties``, ``items`` and every other keyword whose value is a schema (or a list or
      map of schemas) are converted recursively.
    * Everything else is kept verbatim: ``description``, ``enum``, ``required``, ``format``,
      ``maximum``, ``minItems``... and ``default``, even where BFCL's default does not match
      the type (``"false"`` for a boolean): a default is an annotation, never validated. A
      keyword this function does not know is kept too, not dropped. Keywords placed where
      they have no effect (``minItems`` on an integer) stay where they are, as JSON Schema
      ignores them there.

    Args:
        parameters: The ``parameters`` of a BFCL function definition.

    Returns:
        A new schema; the input is not modified.

    Examples:
        >>> bfcl_to_json_schema({
        ...     "type": "dict",
        ...     "properties": {"xy": {"type": "tuple", "items": {"type": "float"}},
        ...                    "data": {"type": "any", "description": "Anything."}},
        ...     "required": ["xy"],
        ... })  # doctest: +NORMALIZE_WHITESPACE
        {'type': 'object',
         'properties': {'xy': {'type': 'array', 'items': {'type': 'number'}},
                        'data': {'description': 'Anything.'}},
         'required': ['xy']}
    """
    converted = _convert(parameters)
    if not isinstance(converted, dict):  # pragma: no cover - a Mapping converts to a dict
        raise TypeError(f"parameters must be a mapping, got {type(parameters).__name__}")
    return converted


def _convert(node: Any) -> Any:
    if not isinstance(node, Mapping):
        return node  # a boolean schema, or something malformed: not ours to judge
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            converted_type = _convert_type(value)
            if converted_type is not None:
                out["type"] = converted_type
        elif key == "optional":
            continue
        elif key in _SCHEMA_VALUED:
            # ``items`` may also be a list (draft-4 tuples): convert each position.
            out[key] = [_convert(v) for v in value] if isinstance(value, list) else _convert(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_convert(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = value
    return out


def _convert_type(value: Any) -> Any:
    """The JSON Schema ``type`` for a BFCL one; ``None`` for no constraint."""
    if isinstance(value, str):
        return BFCL_TYPES.get(value, value)
    if isinstance(value, list):
        converted = [BFCL_TYPES.get(v, v) if isinstance(v, str) else v for v in value]
        if None in converted:  # "any" in a union swallows the union
            return None
        unique: list[Any] = []
        for v in converted:  # "dict" and "object" would otherwise both become "object"
            if v not in unique:
                unique.append(v)
        return unique
    return value


# --------------------------------------------------------------------------- tools


def _echo(arguments: dict[str, Any]) -> dict[str, Any]:
    """The default handler: returns what it receives, which is what a real tool would get."""
    return arguments


def bfcl_tool(
    function_def: Mapping[str, Any],
    handler: Callable[..., Any] | None = None,
    *,
    strict: bool = True,
) -> Tool:
    """Build a tool from a BFCL function definition.

    The parameters are converted with `bfcl_to_json_schema` and the tool is built with
    `Tool.from_json_schema <intentflow.toolsets.tool.Tool.from_json_schema>`. BFCL names
    often contain dots (``math.factorial``), which OpenAI does not accept: such a tool keeps
    its BFCL name as ``name`` and is shown to the model under an alias derived with
    `suggest_alias` (``math_factorial``).

    A schema that cannot be strict emits a
    `StrictSchemaWarning`, as for any tool.

    Args:
        function_def: A BFCL function definition: ``name``, ``description``, ``parameters``.
        handler: Called with the validated arguments as a dict. By default the arguments are
            returned as they are, so a test can see exactly what an implementation would get.
        strict: Whether to send the tool in strict mode when its schema allows it.

    Returns:
        The tool.

    Raises:
        ToolDefinitionError: The schema cannot be turned into a validator.
    """
    name = str(function_def["name"])
    alias = suggest_alias(name) if valid_tool_name(name) is not None else None
    return Tool.from_json_schema(
        name,
        str(function_def.get("description") or ""),
        bfcl_to_json_schema(function_def["parameters"]),
        handler if handler is not None else _echo,
        alias=alias,
        strict=strict,
    )


# --------------------------------------------------------------------------- answers


class _Omitted:
    """Marks a parameter the chosen answer leaves out."""


_OMIT = _Omitted()


def strict_answer(function_def: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a strict-mode model would send for one expected BFCL call.

    For each parameter, the first acceptable value is chosen. In strict mode every declared
    property is sent, so a parameter left out (``""`` chosen, or not mentioned by the answer)
    is sent as ``null``, which intentflow reads as "not given". Nested objects are built the
    same way, with every declared property present; an object without declared properties (a
    BFCL ``"dict"`` used as a map) gets exactly the answer's keys.

    Two rules follow BFCL's own checker rather than the order of the values:

    * for a *required* parameter, ``""`` is skipped: the checker rejects a call that leaves a
      required parameter out, so the first value that is not ``""`` is the first acceptable
      one (if there is none, ``null`` is sent and validation will say so);
    * a parameter the function does not declare can only be left out (strict mode does not let
      a model send it, and the checker rejects it); the answer must allow that with ``""``.

    Args:
        function_def: The BFCL function definition the call is for.
        answer: One expected call's parameters: ``{parameter: [acceptable values...]}``, as
            in ``ground_truth`` (for a nested object, each acceptable value is itself such a
            mapping).

    Returns:
        The arguments as a JSON-ready dict.

    Raises:
        ValueError: The answer is malformed, or it needs a parameter the function does not
            declare.

    Examples:
        >>> fn = {"name": "f", "parameters": {"type": "dict", "properties": {
        ...     "where": {"type": "dict", "properties": {"city": {"type": "string"},
        ...                                            "zip": {"type": "string"}}},
        ...     "unit": {"type": "string"}}, "required": ["where"]}}
        >>> strict_answer(fn, {"where": [{"city": ["Paris", "paris"]}]})
        {'where': {'city': 'Paris', 'zip': None}, 'unit': None}
    """
    schema = bfcl_to_json_schema(function_def["parameters"])
    return _object_arguments(schema, answer, str(function_def.get("name", "<function>")))


def _types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set()


def _first(choices: Any, *, required: bool, where: str) -> Any:
    if not isinstance(choices, list):
        raise ValueError(f"{where}: acceptable values must be a list, got {choices!r}")
    candidates = [c for c in choices if c != OMITTED] if required else choices
    if not candidates:
        return _OMIT
    return _OMIT if candidates[0] == OMITTED else candidates[0]


def _object_arguments(schema: Mapping[str, Any], answer: Any, where: str) -> dict[str, Any]:
    if not isinstance(answer, Mapping):
        raise ValueError(f"{where}: expected {{parameter: [acceptable values]}}, got {answer!r}")
    required = set(schema.get("required") or ())
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        # A map whose keys the model chooses: there is nothing to send as null, and a key left
        # out is simply absent.
        extra = schema.get("additionalProperties")
        value_schema: Mapping[str, Any] = extra if isinstance(extra, Mapping) else {}
        out: dict[str, Any] = {}
        for key, choices in answer.items():
            value = _first(choices, required=key in required, where=f"{where}.{key}")
            if value is not _OMIT:
                out[key] = _value(value_schema, value, f"{where}.{key}")
        return out
    for key in answer.keys() - props.keys():
        choices = answer[key]
        if not (isinstance(choices, list) and OMITTED in choices):
            raise ValueError(
                f"{where}: the answer needs {key!r}, which the function does not declare "
                f"(acceptable values {choices!r}); a strict-mode model cannot send it"
            )
    out = {}
    for name, sub in props.items():
        if name not in answer:
            out[name] = None
            continue
        value = _first(answer[name], required=name in required, where=f"{where}.{name}")
        sub_schema = sub if isinstance(sub, Mapping) else {}
        out[name] = None if value is _OMIT else _value(sub_schema, value, f"{where}.{name}")
    return out


def _value(schema: Mapping[str, Any], value: Any, where: str) -> Any:
    """One chosen value, with nested objects (whose values are BFCL choice lists) resolved."""
    types = _types(schema)
    if isinstance(value, Mapping) and ("object" in types or "properties" in schema):
        return _object_arguments(schema, value, where)
    items = schema.get("items")
    if isinstance(value, list) and "array" in types and isinstance(items, Mapping):
        return [_value(items, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class BFCLCase:
    """One BFCL test case.

    Attributes:
        id: The case id, e.g. ``"simple_python_0"``.
        category: The file's category, e.g. ``"simple_python"``.
        question: The conversation, as in the file (a list of turns, each a list of messages).
        functions: The function definitions offered to the model, in BFCL's dialect.
        ground_truth: The expected calls, ``({function_name: {param: [acceptable values]}},
            ...)``; ``None`` when the category has no answers (e.g. ``irrelevance``).
    """

    id: str
    category: str
    question: Sequence[Any]
    functions: tuple[dict[str, Any], ...]
    ground_truth: tuple[dict[str, dict[str, Any]], ...] | None

    def function(self, name: str) -> dict[str, Any]:
        """The definition of the function called ``name`` in this case.

        Raises:
            KeyError: No function of that name is offered.
        """
        for fn in self.functions:
            if fn.get("name") == name:
                return fn
        raise KeyError(f"case {self.id!r} offers no function named {name!r}")


def _category(path: Path) -> str:
    match = _VERSIONED_NAME.match(path.name)
    return match["category"] if match else path.stem


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    return rows


def _category_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("BFCL_*.json") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no BFCL_*.json files in {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no BFCL file or directory at {path}")
    return [path]


def load_bfcl_cases(path: str | Path) -> list[BFCLCase]:
    """Read BFCL cases, with their expected calls when an answer file exists.

    Args:
        path: A category file (``BFCL_v4_simple_python.json``), whose answers are read from
            ``possible_answer/`` beside it; or a directory, whose ``BFCL_*.json`` files are all
            read, in name order.

    Returns:
        The cases, in file order.

    Raises:
        FileNotFoundError: Nothing to read at ``path``.
        ValueError: A line is not a JSON object, or an answer names an unknown case.
    """
    cases: list[BFCLCase] = []
    for file in _category_files(Path(path)):
        answers: dict[str, tuple[dict[str, dict[str, Any]], ...]] | None = None
        answer_file = file.parent / "possible_answer" / file.name
        if answer_file.is_file():
            answers = {
                str(row["id"]): tuple(row["ground_truth"]) for row in _read_jsonl(answer_file)
            }
        rows = _read_jsonl(file)
        if answers is not None:
            unknown = answers.keys() - {str(row["id"]) for row in rows}
            if unknown:
                raise ValueError(f"{answer_file}: answers for unknown cases {sorted(unknown)[:5]}")
        category = _category(file)
        for row in rows:
            case_id = str(row["id"])
            cases.append(
                BFCLCase(
                    id=case_id,
                    category=category,
                    question=row.get("question") or [],
                    functions=tuple(row.get("function") or ()),
                    ground_truth=None if answers is None else answers.get(case_id, ()),
                )
            )
    return cases


def load_bfcl_functions(path: str | Path) -> list[dict[str, Any]]:
    """Every function definition of the cases at ``path`` (see `load_bfcl_cases`).

    Definitions are listed once per case that offers them, in file order; many functions recur
    across cases.
    """
    return [fn for case in load_bfcl_cases(path) for fn in case.functions]


def drop_nulls(value: Any) -> Any:
    """What a handler receives for strict-mode arguments ``value``: every ``null`` key left out.

    Examples:
        >>> drop_nulls({"a": 1, "b": None, "c": [{"d": None}]})
        {'a': 1, 'c': [{}]}
    """
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
