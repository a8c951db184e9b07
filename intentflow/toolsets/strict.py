"""The strict-schema compiler: turn a tool's JSON Schema into one OpenAI strict mode accepts.

Strict mode constrains decoding to the schema, but only for a subset of JSON Schema: every
object must list every property in ``required`` and set ``additionalProperties: false``, and
keywords such as ``default`` are rejected. The usual conversion (make everything required and
hope) forces a model to *invent* values for optional parameters. This compiler does not lie
about optionality:

* an optional or defaulted property becomes required **and nullable**, and its description
  states the default, e.g. ``unit: Literal["c", "f"] = "c"`` compiles to
  ``{"enum": ["c", "f", null], "type": ["string", "null"], "description": "... (default: \"c\";
  null uses the default)"}``; the executor maps a ``null`` back to the default before
  validation (see `intentflow.toolsets.nulls`);
* keywords strict mode rejects but that only *narrow* a value (``minLength``, ``default``,
  ``uniqueItems``, unsupported ``format`` values...) are moved into the description and listed
  in ``relaxed``; validation still enforces them (except ``format`` on JSON-schema tools,
  which JSON Schema treats as an annotation; such a tool lists it in ``unenforced``);
* what cannot be expressed at all (an open ``dict[str, Any]``, a value of any type, ``not``,
  ``if``/``then``...) makes the schema non-strict, with one reason per problem and its path
  (``problems``). The tool is then sent without strict mode; nothing is switched off silently.

Examples:
    >>> out = compile_strict({
    ...     "type": "object",
    ...     "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 3}},
    ...     "required": ["city"],
    ... })
    >>> out.strict, out.schema["required"], out.schema["properties"]["days"]["type"]
    (True, ['city', 'days'], ['integer', 'null'])
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["StrictCompilation", "compile_strict"]

# What OpenAI strict mode accepts, per its Structured Outputs guide.
_SUPPORTED_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
# Keywords strict mode rejects but that only narrow the accepted values: they are moved into the
# description and still enforced by local validation.
_RELAXABLE = frozenset(
    {
        "default",
        "minLength",
        "maxLength",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "examples",
        "discriminator",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentEncoding",
        "contentMediaType",
        "$comment",
        "$schema",
        "$id",
    }
)
# Keywords that change which values are accepted in ways strict mode cannot express.
_BLOCKING = frozenset(
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
        "additionalItems",
    }
)
# Every keyword strict mode accepts; anything else that is neither relaxable nor blocking (vendor
# extensions such as "x-order", OpenAPI's "nullable"...) is dropped from the strict schema.
_STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "$ref", "$defs", "definitions", "description", "title", "pattern", "format",
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems",
        "maxItems",
        # Handled (rewritten) by the compiler before the schema is emitted:
        "oneOf", "allOf", "prefixItems",
    }
)  # fmt: skip
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# OpenAI documents these limits for one strict schema.
_MAX_DEPTH = 10
_MAX_PROPERTIES = 5000


@dataclass(frozen=True, slots=True)
class StrictCompilation:
    """The result of compiling one schema.

    Attributes:
        schema: The strict-mode schema (meaningful only when ``strict`` is true).
        strict: Whether the schema can be sent with ``"strict": true``.
        problems: Why it cannot (one line per problem, with the JSON path); empty if strict.
        relaxed: Constraints that strict mode rejects and that were moved into descriptions;
            local validation still enforces them.
    """

    schema: dict[str, Any]
    strict: bool
    problems: tuple[str, ...]
    relaxed: tuple[str, ...]


def compile_strict(schema: Mapping[str, Any]) -> StrictCompilation:
    """Compile a JSON Schema for a tool's parameters into an OpenAI strict-mode schema.

    The input is not modified. The root must be an object schema.
    """
    compiler = _Compiler(copy.deepcopy(dict(schema)))
    out = compiler.run()
    return StrictCompilation(
        schema=out,
        strict=not compiler.problems,
        problems=tuple(compiler.problems),
        relaxed=tuple(compiler.relaxed),
    )


def is_nullable(node: Any) -> bool:
    """Whether a schema node accepts ``null``.

    Every constraint present must allow it (the type *and* the enum *and* the const), or one
    branch of an anyOf must.
    """
    if not isinstance(node, dict):
        return node is True
    branches = [*node.get("anyOf", ()), *node.get("oneOf", ())]
    if branches and any(is_nullable(b) for b in branches):
        return True
    if "$ref" in node or branches:
        return False
    t = node.get("type")
    constrained = t is not None or "enum" in node or "const" in node
    type_ok = t is None or t == "null" or (isinstance(t, list) and "null" in t)
    enum_ok = "enum" not in node or None in node["enum"]
    const_ok = "const" not in node or node["const"] is None
    return constrained and type_ok and enum_ok and const_ok


def describe_default(value: Any) -> str:
    """The note appended to an optional field's description."""
    if value is _NO_DEFAULT or value is None:
        return "(optional; null to omit)"
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"(default: {shown}; null uses the default)"


_NO_DEFAULT: Any = object()


def _append_description(node: dict[str, Any], note: str) -> None:
    base = node.get("description")
    node["description"] = f"{base} {note}" if base else note


def _path_str(path: tuple[str, ...]) -> str:
    return "/" + "/".join(path) if path else "<root>"


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.problems: list[str] = []
        self.relaxed: list[str] = []
        self.n_properties = 0
        self.inlining: set[str] = set()
        self.defs = root.get("$defs")
        if self.defs is None:
            self.defs = root.get("definitions")
        # Compiling rewrites the definitions in place; defaults are read from the originals.
        self.original_defs: dict[str, Any] = (
            copy.deepcopy(self.defs) if isinstance(self.defs, dict) else {}
        )

    def problem(self, path: tuple[str, ...], what: str) -> None:
        self.problems.append(f"{_path_str(path)}: {what}")

    def relax(self, path: tuple[str, ...], what: str) -> None:
        self.relaxed.append(f"{_path_str(path)}: {what}")

    def run(self) -> dict[str, Any]:
        root = self.root
        if root.get("type") != "object" and "properties" not in root:
            self.problem((), "the root of a tool's parameters must be an object schema")
            return root
        root.setdefault("type", "object")
        for key in ("$defs", "definitions"):
            defs = root.get(key)
            if isinstance(defs, dict):
                for name, sub in list(defs.items()):
                    # Inside its own definition, a self-reference is recursive.
                    ref = f"#/{key}/{name}"
                    self.inlining.add(ref)
                    defs[name] = self.node(sub, (key, name), depth=1)
                    self.inlining.discard(ref)
        body = {k: v for k, v in root.items() if k not in ("$defs", "definitions")}
        out: dict[str, Any] = self.node(body, (), depth=0)
        for key in ("$defs", "definitions"):
            if key in root:
                out[key] = root[key]
        if self.n_properties > _MAX_PROPERTIES:
            self.problem((), f"{self.n_properties} properties exceed strict mode's limit")
        return out

    def resolve(self, ref: str) -> dict[str, Any] | None:
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and isinstance(self.defs, dict):
                target = self.defs.get(ref[len(prefix) :])
                return target if isinstance(target, dict) else None
        return None

    def node(self, node: Any, path: tuple[str, ...], depth: int) -> Any:
        if not isinstance(node, dict):
            self.problem(path, f"boolean schema {node!r} cannot be strict")
            return node
        if depth > _MAX_DEPTH:
            self.problem(path, f"nesting deeper than {_MAX_DEPTH} levels")
            return node
        node = dict(node)

        for key in sorted(_BLOCKING & node.keys()):
            self.problem(path, f"keyword {key!r} cannot be expressed in strict mode")
        for key in sorted(_RELAXABLE & node.keys()):
            value = node.pop(key)
            if key == "default":
                continue  # stated by the owning object, which knows whether it is optional
            if key in ("minLength", "maxLength", "uniqueItems", "minProperties", "maxProperties"):
                _append_description(node, f"({key}: {json.dumps(value)})")
                self.relax(path, f"{key} moved into the description (enforced on validation)")
            elif key == "examples" and isinstance(value, list) and value:
                _append_description(node, f"(e.g. {json.dumps(value[0], ensure_ascii=False)})")

        for key in sorted(node.keys() - _STRICT_KEYWORDS - _BLOCKING):
            node.pop(key)
            self.relax(path, f"keyword {key!r} is not part of strict mode; left out")
        t = node.get("type")
        for name in [t] if isinstance(t, str) else (t if isinstance(t, list) else []):
            if name not in _JSON_TYPES:
                self.problem(path, f"unknown type {name!r}")

        fmt = node.get("format")
        if fmt is not None and fmt not in _SUPPORTED_FORMATS:
            node.pop("format")
            _append_description(node, f"(format: {fmt})")
            self.relax(path, f"format {fmt!r} moved into the description")

        ref = node.get("$ref")
        if isinstance(ref, str):
            if len(node) == 1:
                if self.resolve(ref) is None:
                    self.problem(path, f"$ref {ref!r} does not resolve to a local definition")
                return node
            # Strict mode rejects a $ref with sibling keywords (e.g. a description), so the
            # target is inlined under the siblings, as the OpenAI SDK does; a recursive
            # reference cannot be inlined, so it is wrapped in a one-branch anyOf instead.
            target = self.resolve(ref)
            if target is None:
                self.problem(path, f"$ref {ref!r} does not resolve to a local definition")
                return node
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if ref in self.inlining:
                return {**siblings, "anyOf": [{"$ref": ref}]}
            self.inlining.add(ref)
            try:
                return self.node({**copy.deepcopy(target), **siblings}, path, depth)
            finally:
                self.inlining.discard(ref)

        all_of = node.pop("allOf", None)
        if isinstance(all_of, list):
            if len(all_of) == 1 and isinstance(all_of[0], dict):
                return self.node({**all_of[0], **node}, path, depth)
            self.problem(path, "allOf with several schemas cannot be strict")

        one_of = node.pop("oneOf", None)
        if isinstance(one_of, list):
            node["anyOf"] = node.get("anyOf", []) + one_of
            self.relax(path, "oneOf sent as anyOf")

        if isinstance(node.get("anyOf"), list):
            node["anyOf"] = [
                self.node(b, (*path, "anyOf", str(i)), depth + 1)
                for i, b in enumerate(node["anyOf"])
            ]
            if not path:
                self.problem(path, "the root cannot be a union")
            return node

        t = node.get("type")
        if isinstance(t, list):
            non_null = [x for x in t if x != "null"]
            if len(non_null) > 1:
                # Strict mode takes a type list only as [T, "null"]; spell other unions as anyOf.
                branches: list[Any] = [
                    self.node({"type": x, **self.type_specific(node, x)}, path, depth + 1)
                    for x in non_null
                ]
                if len(non_null) < len(t):
                    branches.append({"type": "null"})
                keep = {k: v for k, v in node.items() if k in ("description", "title")}
                return {**keep, "anyOf": branches}
        types = set(t) if isinstance(t, list) else ({t} if isinstance(t, str) else set())

        if not types and "enum" not in node and "const" not in node:
            self.problem(path, "no type: a value of any type cannot be strict")
            return node
        if "object" in types or "properties" in node:
            return self.object(node, path, depth)
        if "array" in types:
            return self.array(node, path, depth)
        return node

    def default_of(self, node: Any) -> Any:
        """A property's default, looked up through a $ref when the property has none."""
        if not isinstance(node, dict):
            return _NO_DEFAULT
        if "default" in node:
            return node["default"]
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return _NO_DEFAULT
        target = self.original_defs.get(ref.rsplit("/", 1)[-1])
        return target.get("default", _NO_DEFAULT) if isinstance(target, dict) else _NO_DEFAULT

    def type_specific(self, node: dict[str, Any], type_name: str) -> dict[str, Any]:
        keys = {
            "object": ("properties", "required", "additionalProperties"),
            "array": ("items", "prefixItems", "minItems", "maxItems"),
            "string": ("pattern", "format", "minLength", "maxLength"),
            "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
            "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
        }.get(type_name, ())
        return {k: node[k] for k in keys if k in node}

    def object(self, node: dict[str, Any], path: tuple[str, ...], depth: int) -> dict[str, Any]:
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            self.problem(path, "an open object (additionalProperties) cannot be strict")
            return node
        if props is None:
            if extra is None:
                self.problem(path, "an object without declared properties accepts any keys")
                return node
            props = {}
        if not isinstance(props, dict):
            self.problem(path, "properties must be an object")
            return node
        required = set(node.get("required") or ())
        unknown_required = required - props.keys()
        if unknown_required:
            self.problem(path, f"required names undeclared properties {sorted(unknown_required)}")
        self.n_properties += len(props)
        out_props: dict[str, Any] = {}
        for name, sub in props.items():
            sub_path = (*path, "properties", name)
            default = self.default_of(sub)
            compiled = self.node(sub, sub_path, depth + 1)
            if name not in required and isinstance(compiled, dict):
                compiled = _nullable(compiled)
                _append_description(compiled, describe_default(default))
            elif default is not _NO_DEFAULT and isinstance(compiled, dict):
                # A required parameter's default is only a hint, but it must not vanish.
                _append_description(compiled, f"(default: {json.dumps(default, default=str)})")
            out_props[name] = compiled
        node["properties"] = out_props
        node["required"] = list(out_props)
        node["additionalProperties"] = False
        node["type"] = "object"
        return node

    def array(self, node: dict[str, Any], path: tuple[str, ...], depth: int) -> dict[str, Any]:
        items = node.get("items")
        prefix = node.pop("prefixItems", None)
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, None
        if isinstance(prefix, list) and prefix:
            # Strict mode has no tuples: send one item schema for all positions (a union of the
            # positions' schemas) plus the length; validation still checks each position.
            unique: list[Any] = []
            for p in prefix:
                if p not in unique:
                    unique.append(p)
            merged = unique[0] if len(unique) == 1 else {"anyOf": unique}
            if items not in (None, False):
                merged = {"anyOf": [*unique, items]}
            else:
                node.setdefault("minItems", len(prefix))
                node.setdefault("maxItems", len(prefix))
            items = merged
            self.relax(path, "tuple positions sent as one item schema (order checked locally)")
        if items is None:
            self.problem(path, "an array without an items schema accepts any items")
            return node
        node["items"] = self.node(items, (*path, "items"), depth + 1)
        return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """Make a compiled schema node also accept null, in the form strict mode takes."""
    if is_nullable(node):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    if "$ref" in node or "const" in node:
        desc = {k: node[k] for k in ("description",) if k in node}
        inner = {k: v for k, v in node.items() if k != "description"}
        return {"anyOf": [inner, {"type": "null"}], **desc}
    out = dict(node)
    # Both the enum and the type must let null through.
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    t = out.get("type")
    if isinstance(t, str) and t != "null":
        out["type"] = [t, "null"]
    elif isinstance(t, list) and "null" not in t:
        out["type"] = [*t, "null"]
    return out
