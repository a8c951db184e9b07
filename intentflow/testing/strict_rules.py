"""An independent check that a JSON Schema obeys OpenAI strict mode's rules.

`intentflow.toolsets.strict` *produces* strict-mode schemas; this module *checks* them,
written separately from the compiler and sharing no code with it, so that a bug in one is not
silently repeated in the other. Use it in tests of anything that emits strict schemas::

    assert strict_violations(tool.to_openai()["function"]["parameters"]) == []

The rules are those of OpenAI's Structured Outputs guide (which function calling with
``"strict": true`` follows):

* the root is an object schema, not a union;
* every object sets ``additionalProperties: false`` and lists every one of its properties,
  and nothing else, in ``required``;
* only the supported keywords appear (`STRICT_KEYWORDS`), which leaves out ``default``,
  ``minLength``, ``oneOf``, ``allOf``, ``not`` and the rest; ``format`` takes only the
  supported values (`STRICT_FORMATS`);
* a ``type`` names JSON types; a list of types is only ``[T, "null"]``;
* every node says what it accepts (a ``type``, ``anyOf``, ``$ref``, ``enum`` or ``const``):
  there is no "any value"; an array says what its ``items`` are;
* ``enum``/``const`` values match the node's type;
* a ``$ref`` resolves inside the document and stands alone (the API rejects siblings such as a
  ``description`` beside it);
* nesting is at most `MAX_DEPTH` levels deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["JSON_TYPES", "MAX_DEPTH", "STRICT_FORMATS", "STRICT_KEYWORDS", "strict_violations"]

STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "pattern",
        "format",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
    }
)
"""The keywords a strict-mode schema may use."""

STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
"""The ``format`` values strict mode supports."""

JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
"""The type names of JSON Schema."""

MAX_DEPTH = 10
"""How many levels below the root a strict schema may nest (each ``properties`` entry,
``items`` and ``anyOf`` branch is one level)."""


def strict_violations(schema: Any) -> list[str]:
    """Every way ``schema`` breaks OpenAI strict mode's rules (empty when it obeys them).

    Args:
        schema: The ``parameters`` of a tool as it would be sent with ``"strict": true``.

    Returns:
        One line per violation, each starting with the JSON path of the offending node
        (``<root>`` for the root), e.g. ``"/properties/unit: 'default' is not permitted"``.

    Examples:
        >>> for line in strict_violations({
        ...     "type": "object",
        ...     "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        ...     "required": ["city"],
        ... }):
        ...     print(line)
        <root>: additionalProperties must be false, got <missing>
        <root>: required must list every property exactly: missing ['days']
    """
    checker = _Checker(schema)
    checker.check_root()
    return checker.violations


def _where(path: tuple[str, ...]) -> str:
    return "/" + "/".join(path) if path else "<root>"


def _matches(value: Any, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    if type_name == "integer":
        # JSON does not tell 5 from 5.0; bool is an int subclass in Python but not in JSON.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, Mapping)
    if type_name == "array":
        return isinstance(value, list)
    return False


class _Checker:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.violations: list[str] = []

    def fail(self, path: tuple[str, ...], what: str) -> None:
        self.violations.append(f"{_where(path)}: {what}")

    def check_root(self) -> None:
        root = self.root
        if not isinstance(root, Mapping):
            self.fail((), f"the root must be an object schema, got {type(root).__name__}")
            return
        if "anyOf" in root:
            self.fail((), "the root must be an object schema, not anyOf")
        elif root.get("type") != "object":
            self.fail(
                (), f"the root must have type 'object', got {root.get('type', '<missing>')!r}"
            )
        self.node(root, (), 0)

    def node(self, node: Any, path: tuple[str, ...], depth: int) -> None:
        if not isinstance(node, Mapping):
            self.fail(path, f"a schema must be an object, got {node!r}")
            return
        if depth > MAX_DEPTH:
            self.fail(path, f"nested {depth} levels deep, more than {MAX_DEPTH}")
            return
        self.keywords(node, path)
        types = self.types(node, path)
        self.values(node, types, path)

        if "$ref" in node:
            self.ref(node, path)
        if "anyOf" in node:
            self.any_of(node["anyOf"], path, depth)
        elif not {"type", "$ref", "enum", "const"} & node.keys():
            self.fail(path, "no type: strict mode has no schema for a value of any type")

        if "object" in types or "properties" in node:
            self.object(node, types, path, depth)
        if "array" in types:
            self.array(node, path, depth)
        for key in ("$defs", "definitions"):
            defs = node.get(key)
            if defs is None:
                continue
            if not isinstance(defs, Mapping):
                self.fail(path, f"{key} must be an object")
                continue
            for name, sub in defs.items():
                self.node(sub, (*path, key, str(name)), 1)

    def keywords(self, node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key in sorted(node.keys() - STRICT_KEYWORDS, key=str):
            if key == "default":
                self.fail(path, "'default' is not permitted")
            else:
                self.fail(path, f"keyword {key!r} is not supported")
        fmt = node.get("format")
        if fmt is not None and fmt not in STRICT_FORMATS:
            self.fail(path, f"format {fmt!r} is not supported")

    def types(self, node: Mapping[str, Any], path: tuple[str, ...]) -> set[str]:
        if "type" not in node:
            return set()
        t = node["type"]
        if isinstance(t, str):
            if t not in JSON_TYPES:
                self.fail(path, f"type {t!r} is not a JSON Schema type")
                return set()
            return {t}
        if isinstance(t, list):
            others = [x for x in t if x != "null"]
            if (
                len(t) != 2
                or len(others) != 1
                or not isinstance(others[0], str)
                or others[0] not in JSON_TYPES
            ):
                self.fail(path, f"a type list must be [T, 'null'], got {t!r}")
                return {x for x in t if isinstance(x, str) and x in JSON_TYPES}
            return {others[0], "null"}
        self.fail(path, f"type must be a string or a list, got {t!r}")
        return set()

    def values(self, node: Mapping[str, Any], types: set[str], path: tuple[str, ...]) -> None:
        if "enum" in node:
            enum = node["enum"]
            if not isinstance(enum, list) or not enum:
                self.fail(path, f"enum must be a non-empty list, got {enum!r}")
            elif types:
                for value in enum:
                    if not any(_matches(value, t) for t in types):
                        self.fail(
                            path, f"enum value {value!r} does not match type {node['type']!r}"
                        )
        if "const" in node and types and not any(_matches(node["const"], t) for t in types):
            self.fail(path, f"const {node['const']!r} does not match type {node['type']!r}")

    def ref(self, node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        ref = node["$ref"]
        siblings = sorted(k for k in node if k != "$ref")
        if siblings:
            self.fail(path, f"$ref must stand alone, found beside it {siblings}")
        if not isinstance(ref, str) or self.resolve(ref) is None:
            self.fail(path, f"$ref {ref!r} does not resolve")

    def resolve(self, ref: str) -> Any:
        """The node a local JSON pointer (``#``, ``#/$defs/x``...) points at, or None."""
        if ref == "#":
            return self.root
        if not ref.startswith("#/"):
            return None
        target: Any = self.root
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        return target if isinstance(target, Mapping) else None

    def any_of(self, branches: Any, path: tuple[str, ...], depth: int) -> None:
        if not isinstance(branches, list) or not branches:
            self.fail(path, f"anyOf must be a non-empty list, got {branches!r}")
            return
        for i, branch in enumerate(branches):
            self.node(branch, (*path, "anyOf", str(i)), depth + 1)

    def object(
        self, node: Mapping[str, Any], types: set[str], path: tuple[str, ...], depth: int
    ) -> None:
        if "object" not in types:
            self.fail(path, "'properties' on a schema whose type is not 'object'")
        extra = node.get("additionalProperties", "<missing>")
        if extra is not False:
            self.fail(path, f"additionalProperties must be false, got {extra}")
        props = node.get("properties", {})
        if not isinstance(props, Mapping):
            self.fail(path, f"properties must be an object, got {props!r}")
            return
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            self.fail(path, f"required must be a list of names, got {required!r}")
        else:
            duplicates = sorted({r for r in required if required.count(r) > 1})
            missing = [p for p in props if p not in required]
            unknown = [r for r in required if r not in props]
            problems = [
                f"{label} {names}"
                for label, names in (
                    ("missing", missing),
                    ("undeclared", unknown),
                    ("duplicated", duplicates),
                )
                if names
            ]
            if problems:
                self.fail(path, "required must list every property exactly: " + "; ".join(problems))
        for name, sub in props.items():
            self.node(sub, (*path, "properties", str(name)), depth + 1)

    def array(self, node: Mapping[str, Any], path: tuple[str, ...], depth: int) -> None:
        items = node.get("items")
        if items is None:
            self.fail(path, "an array must have an items schema")
        elif isinstance(items, list):
            self.fail(path, "items must be one schema (strict mode has no tuples)")
        else:
            self.node(items, (*path, "items"), depth + 1)
