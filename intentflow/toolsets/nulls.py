"""Map a strict-mode ``null`` back to "not given", so the Python default applies.

In strict mode every property is required, so an optional parameter is compiled as
required-and-nullable (`intentflow.toolsets.strict`) and a model that has nothing to say
sends ``null``. Before validation, such a ``null`` is removed from the arguments: the key is
then absent, exactly as if a non-strict model had omitted it, and validation fills in the
Python default (for a function tool) or leaves the key out (for a JSON-schema tool).

The rule is one and the same everywhere: *``null`` for an optional parameter means "not
given"*. A parameter declared ``x: int | None = 5`` therefore gets ``5`` for ``null``; to pass
``None`` to such a parameter the model has no way but the default, which is why a default of
``None`` is the natural choice for nullable parameters.

A plan is compiled once per tool, from the non-strict schema, and touches only the parts of
the arguments that can hold such a ``null``; arguments are copied only where something changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NullPlan", "build_null_plan"]


class NullPlan:
    """Removes ``null`` values of optional properties from (nested) arguments."""

    __slots__ = ()

    def apply(self, value: Any) -> Any:  # pragma: no cover - overridden
        """Return ``value`` with the nulls of optional properties removed (copy on write)."""
        raise NotImplementedError


@dataclass(slots=True, eq=False)
class _Object(NullPlan):
    optional: frozenset[str]
    children: dict[str, NullPlan] = field(default_factory=dict)

    def apply(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] | None = None
        for key in self.optional:
            if key in value and value[key] is None:
                if out is None:
                    out = dict(value)
                del out[key]
        for key, child in self.children.items():
            current = value.get(key)
            if current is None:
                continue
            new = child.apply(current)
            if new is not current:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out


@dataclass(slots=True, eq=False)
class _Array(NullPlan):
    item: NullPlan

    def apply(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out: list[Any] | None = None
        for i, element in enumerate(value):
            new = self.item.apply(element)
            if new is not element:
                if out is None:
                    out = list(value)
                out[i] = new
        return value if out is None else out


@dataclass(slots=True, eq=False)
class _Lazy(NullPlan):
    """Stands for a recursive ``$ref`` while its plan is being built."""

    target: NullPlan | None = None

    def apply(self, value: Any) -> Any:
        return value if self.target is None else self.target.apply(value)


def build_null_plan(schema: Mapping[str, Any]) -> NullPlan | None:
    """Compile the null-removal plan of a (non-strict) parameters schema.

    Returns ``None`` when no property anywhere is optional, so validation can skip the step.
    """
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        defs = schema.get("definitions")
    return _Builder(defs if isinstance(defs, dict) else {}).build(schema)


class _Builder:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.memo: dict[str, NullPlan | None] = {}
        self.building: dict[str, _Lazy] = {}

    def ref(self, ref: str) -> NullPlan | None:
        name = ref.rsplit("/", 1)[-1]
        if name in self.memo:
            return self.memo[name]
        if name in self.building:
            return self.building[name]
        target = self.defs.get(name)
        if not isinstance(target, dict):
            return None
        lazy = _Lazy()
        self.building[name] = lazy
        plan = self.build(target)
        lazy.target = plan
        del self.building[name]
        self.memo[name] = plan
        return plan

    def build(self, node: Any) -> NullPlan | None:
        if not isinstance(node, dict):
            return None
        plans: list[NullPlan] = []
        ref = node.get("$ref")
        if isinstance(ref, str):
            p = self.ref(ref)
            if p is not None:
                plans.append(p)
        branches: list[NullPlan] = []
        for key in ("anyOf", "oneOf", "allOf"):
            for branch in node.get(key) or ():
                p = self.build(branch)
                if p is not None:
                    branches.append(p)
        props = node.get("properties")
        if isinstance(props, dict):
            required = set(node.get("required") or ())
            children = {}
            for name, sub in props.items():
                p = self.build(sub)
                if p is not None:
                    children[name] = p
            optional = frozenset(props.keys() - required)
            if optional or children:
                plans.append(_Object(optional, children))
        if branches:
            merged = _merge(branches, self._required_in_union(node))
            if merged is not None:
                plans.append(merged)
        items = node.get("items")
        if isinstance(items, dict):
            p = self.build(items)
            if p is not None:
                plans.append(_Array(p))
        for prefix_item in node.get("prefixItems") or ():
            p = self.build(prefix_item)
            if p is not None:
                plans.append(_Array(p))
        if not plans:
            return None
        return plans[0] if len(plans) == 1 else _Chain(tuple(plans))

    def _required_in_union(self, node: Mapping[str, Any]) -> frozenset[str]:
        """The property names that some object branch of a union requires."""
        required_somewhere: set[str] = set()
        for key in ("anyOf", "oneOf"):
            for branch in node.get(key) or ():
                target = branch
                if isinstance(branch, dict) and isinstance(branch.get("$ref"), str):
                    target = self.defs.get(branch["$ref"].rsplit("/", 1)[-1], branch)
                if isinstance(target, dict) and isinstance(target.get("properties"), dict):
                    required_somewhere |= set(target.get("required") or ())
        return frozenset(required_somewhere)


def _merge(plans: list[NullPlan], required: frozenset[str]) -> NullPlan | None:
    """Combine the plans of a union's branches.

    A ``null`` is removed only if no object branch of the union *requires* that key: a branch
    that requires it may mean the ``null`` literally.
    """
    out: list[NullPlan] = []
    for p in plans:
        if isinstance(p, _Object) and p.optional & required:
            p = _Object(p.optional - required, p.children)
        if isinstance(p, _Object) and not p.optional and not p.children:
            continue
        out.append(p)
    if not out:
        return None
    return out[0] if len(out) == 1 else _Chain(tuple(out))


@dataclass(slots=True, eq=False)
class _Chain(NullPlan):
    plans: tuple[NullPlan, ...]

    def apply(self, value: Any) -> Any:
        for p in self.plans:
            value = p.apply(value)
        return value
