"""Validation of tool arguments: JSON parsing, Pydantic errors as field errors, and validators
derived from a JSON Schema.

Tools that come from elsewhere (an MCP server, an API spec) arrive as a JSON Schema. They are
validated by a Pydantic type *derived from that schema*, not by a separate JSON-Schema engine:

* one validation engine (pydantic-core, compiled) for every tool, so errors have one shape and
  one quality (every failing field, with its path) whatever the tool's origin;
* it is fast (a few microseconds per call), which matters on the executor's hot path;
* the core needs no extra dependency.

The derived type follows JSON-Schema semantics, not Python's conveniences: strings are not
coerced to numbers, ``true`` is not an integer, ``5.0`` is an integer. Keywords it cannot
enforce (``not``, ``if``/``then``, ``patternProperties``, ...) are reported when the tool is
built (``unenforced``), never silently ignored.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

import pydantic_core
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from intentflow.errors import FieldError, InvalidToolJSON

__all__ = ["SchemaValidator", "build_schema_validator", "field_errors", "parse_arguments"]

_MODEL_PREFIX = "IntentflowArgs"
# Pydantic puts a tag for each union member / validator wrapper into an error's location; they
# say nothing to a model, so they are dropped from the path.
_TAGS = frozenset(
    {"int", "str", "float", "bool", "none", "list", "dict", "tuple", "set", "bytes", "any"}
)
_UNENFORCED = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "patternProperties",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
    }
)


def parse_arguments(tool: str, arguments: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Parse a tool call's raw arguments into a dict, or raise `InvalidToolJSON`.

    An empty string is taken as ``{}``: some OpenAI-compatible servers send it for tools without
    parameters.
    """
    if not isinstance(arguments, str | bytes) and isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = pydantic_core.from_json(arguments)
    except ValueError as exc:
        # Looked at only on failure: the common case (a JSON object) pays nothing for it.
        if not arguments or (isinstance(arguments, str) and not arguments.strip()):
            return {}
        raw = arguments if isinstance(arguments, str) else arguments.decode("utf-8", "replace")
        raise InvalidToolJSON(tool, raw, str(exc)) from None
    except TypeError:
        # pydantic_core cannot encode a str holding a lone surrogate ("\ud800" decoded by the
        # SDK's JSON parser from an endpoint's reply) and raises TypeError, not ValueError.
        raw = arguments if isinstance(arguments, str) else repr(arguments)
        raise InvalidToolJSON(
            tool, raw, "the text is not valid Unicode (it holds a lone surrogate)"
        ) from None
    if not isinstance(value, dict):
        raw = arguments if isinstance(arguments, str) else arguments.decode("utf-8", "replace")
        raise InvalidToolJSON(tool, raw, f"expected a JSON object, got {type(value).__name__}")
    return value


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Turn a Pydantic ``ValidationError`` into field errors, one per failing location.

    Union members that all failed at the same place are merged into one error ("... or ...").
    """
    merged: dict[tuple[str | int, ...], FieldError] = {}
    for err in exc.errors(include_url=False):
        path = tuple(
            part
            for part in err["loc"]
            if isinstance(part, int)
            or not (part in _TAGS or "[" in part or part.startswith(_MODEL_PREFIX))
        )
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "Field required (send a value for it)"
        elif err["type"] == "extra_forbidden":
            msg = "Unknown field: this tool takes no parameter of that name"
        prior = merged.get(path)
        if prior is None:
            merged[path] = FieldError(path, msg, err["type"])
        elif msg not in prior.message:
            merged[path] = FieldError(path, f"{prior.message}, or {msg}", prior.type)
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class SchemaValidator:
    """A Pydantic validator derived from a JSON Schema.

    Attributes:
        adapter: Validates the arguments object (raises ``ValidationError``).
        unenforced: Schema keywords the validator does not enforce, with their paths.
    """

    adapter: TypeAdapter[Any]
    unenforced: tuple[str, ...]


def build_schema_validator(schema: Mapping[str, Any]) -> SchemaValidator:
    """Derive a validator from a JSON Schema for a tool's parameters (the root is an object)."""
    builder = _Builder(schema)
    annotation = builder.annotation(dict(schema), ())
    return SchemaValidator(TypeAdapter(annotation), tuple(builder.unenforced))


# --------------------------------------------------------------------------- checks


def _canonical(value: Any) -> str:
    # JSON equality, not Python's: 1 == True in Python but not in JSON Schema.
    return json.dumps(value, sort_keys=True, default=str)


def _one_of(values: Sequence[Any]) -> Callable[[Any], Any]:
    allowed = {_canonical(v) for v in values}
    # Integral floats compare equal to ints in JSON Schema (1.0 is the enum value 1).
    allowed |= {_canonical(int(v)) for v in values if isinstance(v, float) and v.is_integer()}
    shown = ", ".join(json.dumps(v, default=str) for v in values[:20])

    def check(value: Any) -> Any:
        key = _canonical(value)
        if key not in allowed and not (
            isinstance(value, float) and value.is_integer() and _canonical(int(value)) in allowed
        ):
            raise PydanticCustomError(
                "enum", "Input should be one of: {expected}", {"expected": shown}
            )
        return value

    return check


def _unique(value: list[Any]) -> list[Any]:
    seen = {_canonical(v) for v in value}
    if len(seen) != len(value):
        raise PydanticCustomError("unique_items", "Items should be unique")
    return value


def _has_keys(keys: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in keys if k not in value]
        if missing:
            raise PydanticCustomError(
                "missing_keys", "Missing required keys: {keys}", {"keys": ", ".join(missing)}
            )
        return value

    return check


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _never(value: Any) -> Any:
    raise PydanticCustomError("false_schema", "No value is allowed here")


def _union(members: Sequence[Any]) -> Any:
    """``Union[members]``, built at run time from schema-derived types."""
    return Union.__getitem__(tuple(members))


def _generic(origin: type, *args: Any) -> Any:
    """``origin[args]`` (``list[int]``...), built at run time from schema-derived types."""
    return origin.__class_getitem__(args if len(args) > 1 else args[0])  # type: ignore[attr-defined]


_STRICT_STR = Annotated[str, Strict()]
_STRICT_BOOL = Annotated[bool, Strict()]


class _Builder:
    def __init__(self, root: Mapping[str, Any]) -> None:
        defs = root.get("$defs")
        if not isinstance(defs, dict):
            defs = root.get("definitions")
        self.defs: Mapping[str, Any] = defs if isinstance(defs, dict) else {}
        self.unenforced: list[str] = []
        self.refs: dict[str, Any] = {}
        self.in_progress: set[str] = set()
        self.counter = itertools.count()

    def note(self, path: tuple[str, ...], what: str) -> None:
        self.unenforced.append(f"{'/' + '/'.join(path) if path else '<root>'}: {what}")

    def annotation(self, node: Any, path: tuple[str, ...]) -> Any:
        if node is True or node == {}:
            return Any
        if node is False:
            return Annotated[Any, AfterValidator(_never)]
        if not isinstance(node, dict):
            self.note(path, f"schema {node!r} is not an object; not validated")
            return Any
        for key in sorted(_UNENFORCED & node.keys()):
            self.note(path, f"keyword {key!r} is not enforced")

        ref = node.get("$ref")
        if isinstance(ref, str):
            return self.ref(ref, node, path)

        all_of = node.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in all_of:
                if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                    target = self.resolve(part["$ref"])
                    part = {**(target or {}), **{k: v for k, v in part.items() if k != "$ref"}}
                if not isinstance(part, dict):
                    continue
                props = {**merged.get("properties", {}), **part.get("properties", {})}
                required = [*merged.get("required", []), *part.get("required", [])]
                merged = {**merged, **part, "properties": props, "required": required}
                if not props:
                    del merged["properties"]
            return self.annotation(merged, path)

        union = node.get("anyOf") or node.get("oneOf")
        if isinstance(union, list) and union:
            if "oneOf" in node:
                self.note(path, "oneOf is validated as anyOf (exactly-one is not enforced)")
            siblings = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            members = []
            for i, branch in enumerate(union):
                if isinstance(branch, dict) and siblings:
                    branch = {**siblings, **branch}
                members.append(self.annotation(branch, (*path, "anyOf", str(i))))
            return self.with_enum(_union(members), node)

        t = node.get("type")
        if isinstance(t, list):
            members = [self.annotation({**node, "type": x}, path) for x in t]
            return _union(members) if members else Any
        if t is None:
            if "properties" in node:
                t = "object"
            elif "items" in node or "prefixItems" in node:
                t = "array"
            else:
                return self.with_enum(Any, node)
        return self.with_enum(self.typed(t, node, path), node)

    def with_enum(self, annotation: Any, node: Mapping[str, Any]) -> Any:
        if "enum" in node and isinstance(node["enum"], list):
            return Annotated[annotation, AfterValidator(_one_of(node["enum"]))]
        if "const" in node:
            return Annotated[annotation, AfterValidator(_one_of([node["const"]]))]
        return annotation

    def resolve(self, ref: str) -> dict[str, Any] | None:
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                target = self.defs.get(ref[len(prefix) :])
                return target if isinstance(target, dict) else None
        return None

    def ref(self, ref: str, node: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        target = self.resolve(ref)
        if target is None:
            self.note(path, f"$ref {ref!r} does not resolve; not validated")
            return Any
        siblings = {k: v for k, v in node.items() if k not in ("$ref", "description", "title")}
        if siblings:
            return self.annotation({**target, **siblings}, path)
        if ref in self.refs:
            return self.refs[ref]
        if ref in self.in_progress:
            self.note(path, f"recursive $ref {ref!r} is validated one level deep")
            return Any
        self.in_progress.add(ref)
        built = self.annotation(target, path)
        self.in_progress.discard(ref)
        self.refs[ref] = built
        return built

    def typed(self, t: str, node: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        if t == "string":
            if "format" in node:
                self.note(path, f"format {node['format']!r} is not checked")
            constraints: dict[str, Any] = {}
            if isinstance(node.get("minLength"), int):
                constraints["min_length"] = node["minLength"]
            if isinstance(node.get("maxLength"), int):
                constraints["max_length"] = node["maxLength"]
            pattern = node.get("pattern")
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                    constraints["pattern"] = pattern
                except re.error:
                    self.note(path, f"pattern {pattern!r} is not a valid regex; not enforced")
            return Annotated[_STRICT_STR, Field(**constraints)] if constraints else _STRICT_STR
        if t in ("integer", "number"):
            numeric: dict[str, Any] = {}
            for key, arg in (
                ("minimum", "ge"),
                ("maximum", "le"),
                ("exclusiveMinimum", "gt"),
                ("exclusiveMaximum", "lt"),
                ("multipleOf", "multiple_of"),
            ):
                value = node.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    numeric[arg] = value
            base: Any = (
                Annotated[int, BeforeValidator(_integral), Strict()]
                if t == "integer"
                else Annotated[float, Strict()]
            )
            return Annotated[base, Field(**numeric)] if numeric else base
        if t == "boolean":
            return _STRICT_BOOL
        if t == "null":
            return None
        if t == "array":
            return self.array(node, path)
        if t == "object":
            return self.object(node, path)
        self.note(path, f"unknown type {t!r}; not validated")
        return Any

    def array(self, node: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        prefix = node.get("prefixItems")
        items = node.get("items")
        if isinstance(items, list):
            prefix, items = items, None
        sizes: dict[str, Any] = {}
        if isinstance(node.get("minItems"), int):
            sizes["min_length"] = node["minItems"]
        if isinstance(node.get("maxItems"), int):
            sizes["max_length"] = node["maxItems"]
        if isinstance(prefix, list) and prefix:
            members = [
                self.annotation(p, (*path, "prefixItems", str(i))) for i, p in enumerate(prefix)
            ]
            if items is False or sizes.get("max_length") == len(prefix):
                out: Any = Annotated[_generic(tuple, *members), Strict()]
            else:
                self.note(path, "prefixItems with extra items: positions are not enforced")
                out = _generic(list, _union(members))
        else:
            item = Any if items is None else self.annotation(items, (*path, "items"))
            out = _generic(list, item)
        if sizes:
            out = Annotated[out, Field(**sizes)]
        if node.get("uniqueItems") is True:
            out = Annotated[out, AfterValidator(_unique)]
        return out

    def object(self, node: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        props = node.get("properties")
        extra = node.get("additionalProperties", True)
        sizes: dict[str, Any] = {}
        if isinstance(node.get("minProperties"), int):
            sizes["min_length"] = node["minProperties"]
        if isinstance(node.get("maxProperties"), int):
            sizes["max_length"] = node["maxProperties"]
        if not isinstance(props, dict) or not props:
            if extra is False:
                return Annotated[dict[str, Any], Field(max_length=0)]
            value_type = (
                Any if extra is True else self.annotation(extra, (*path, "additionalProperties"))
            )
            mapping: Any = _generic(dict, str, value_type)
            if sizes:
                mapping = Annotated[mapping, Field(**sizes)]
            keys = node.get("required")
            if isinstance(keys, list) and keys:
                mapping = Annotated[mapping, AfterValidator(_has_keys(keys))]
            return mapping
        if sizes:
            self.note(path, "minProperties/maxProperties are not enforced on declared objects")
        if isinstance(extra, dict):
            self.note(path, "additionalProperties schema is not enforced beside properties")
        required = set(node.get("required") or ())
        fields: dict[str, Any] = {}
        for i, (name, sub) in enumerate(props.items()):
            annotation = self.annotation(sub, (*path, "properties", name))
            default: Any = ... if name in required else None
            fields[f"p{i}"] = (annotation, Field(default, alias=name))
        for name in sorted(required - props.keys()):
            fields[f"r{len(fields)}"] = (Any, Field(..., alias=name))
        config = ConfigDict(extra="forbid" if extra is False else "allow")
        return create_model(f"{_MODEL_PREFIX}{next(self.counter)}", __config__=config, **fields)
