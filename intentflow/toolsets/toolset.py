"""Toolsets: named, ordered, composable collections of tools.

A toolset is what an intent hands the model: a small set of tools, in a stable order (the order
they were added), so the ``tools`` array of a request is the same bytes every time and the
provider's prompt cache holds. Composition never mutates: ``union``, ``subset``, ``with_prefix``
and ``rename`` return new toolsets sharing the same compiled tools.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, overload

from intentflow.errors import ToolNameError
from intentflow.toolsets.policy import RetryPolicy
from intentflow.toolsets.tool import Approval, ConcurrencyKey, Handler, Tool, tool

__all__ = ["Toolset"]


class Toolset:
    """A named, ordered collection of tools, keyed by the name the model sees.

    Examples:
        >>> support = Toolset("support")
        >>> @support.tool
        ... async def order_status(order_id: str) -> str:
        ...     '''Where an order is.'''
        ...     return "shipped"
        >>> @support.tool(timeout=10, retry=RetryPolicy(attempts=3))
        ... async def refund(order_id: str, amount: float) -> str:
        ...     '''Refund an order.'''
        ...     return "refunded"
        >>> support.names
        ('order_status', 'refund')
        >>> (support.subset(["refund"]) | Toolset("other")).names
        ('refund',)
    """

    __slots__ = ("_openai", "_tools", "name")

    def __init__(self, name: str, tools: Iterable[Tool | Handler] = ()) -> None:
        if not isinstance(name, str):
            # Toolset([f, g]) would otherwise build an empty toolset named after a list.
            raise TypeError(
                f"Toolset(name, tools): the first argument is the toolset's name (a str), "
                f"not a {type(name).__name__}; e.g. Toolset('orders', [lookup_order])"
            )
        self.name = name
        self._tools: dict[str, Tool] = {}
        self._openai: dict[bool, list[dict[str, Any]]] = {}
        for t in tools:
            self.add(t)

    # ------------------------------------------------------------------ registration

    def add(self, tool: Tool | Handler) -> Tool:
        """Add a tool (or a function, made into a tool); return the tool.

        Raises:
            ToolNameError: Another tool already has the same name for the model.
        """
        t = tool if isinstance(tool, Tool) else Tool.from_function(tool)
        existing = self._tools.get(t.api_name)
        if existing is not None and existing is not t:
            raise ToolNameError(
                t.api_name,
                f"is already taken in toolset {self.name!r} (by tool {existing.name!r})",
                f"{self.name}_{t.api_name}"[:64],
            )
        self._tools[t.api_name] = t
        self._openai.clear()
        return t

    @overload
    def tool(self, fn: Handler, /) -> Tool: ...

    @overload
    def tool(
        self,
        /,
        *,
        name: str | None = None,
        alias: str | None = None,
        description: str | None = None,
        strict: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        exclusive: bool = False,
        concurrency_key: ConcurrencyKey | None = None,
        sensitive: bool | Collection[str] = False,
        approval: Approval = False,
        idempotent: bool = False,
    ) -> Callable[[Handler], Tool]: ...

    def tool(
        self,
        fn: Handler | None = None,
        /,
        *,
        name: str | None = None,
        alias: str | None = None,
        description: str | None = None,
        strict: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        exclusive: bool = False,
        concurrency_key: ConcurrencyKey | None = None,
        sensitive: bool | Collection[str] = False,
        approval: Approval = False,
        idempotent: bool = False,
    ) -> Tool | Callable[[Handler], Tool]:
        """Register a function as a tool of this toolset; use bare or with options.

        The options are those of `Tool.from_function`. The decorated name is bound to
        the `Tool` (call ``tool.handler`` for the function itself).
        """
        make = tool(
            name=name,
            alias=alias,
            description=description,
            strict=strict,
            timeout=timeout,
            retry=retry,
            exclusive=exclusive,
            concurrency_key=concurrency_key,
            sensitive=sensitive,
            approval=approval,
            idempotent=idempotent,
        )

        def register(f: Handler) -> Tool:
            return self.add(make(f))

        return register(fn) if fn is not None else register

    # ------------------------------------------------------------------ access

    @property
    def names(self) -> tuple[str, ...]:
        """The names the model sees, in order."""
        return tuple(self._tools)

    def get(self, api_name: str) -> Tool | None:
        """The tool the model calls ``api_name``, or ``None``."""
        return self._tools.get(api_name)

    def __getitem__(self, api_name: str) -> Tool:
        try:
            return self._tools[api_name]
        except KeyError:
            raise KeyError(
                f"no tool {api_name!r} in toolset {self.name!r}; it has {list(self._tools)}"
            ) from None

    def __contains__(self, api_name: object) -> bool:
        return api_name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"Toolset({self.name!r}, {list(self._tools)})"

    def to_openai(self, strict: bool = True) -> list[dict[str, Any]]:
        """The Chat Completions ``tools`` array, built once and cached (do not modify it)."""
        cached = self._openai.get(strict)
        if cached is None:
            cached = [t.to_openai(strict) for t in self._tools.values()]
            self._openai[strict] = cached
        return cached

    # ------------------------------------------------------------------ composition

    def union(self, *others: Toolset, name: str | None = None) -> Toolset:
        """All tools of this toolset and then the others', in order.

        The same tool appearing in several is kept once; two different tools under one name
        are an error.
        """
        out = Toolset(name or "+".join([self.name, *(o.name for o in others)]), self)
        for other in others:
            for t in other:
                out.add(t)
        return out

    __or__ = union

    def subset(self, names: Iterable[str], name: str | None = None) -> Toolset:
        """The named tools only, in this toolset's order.

        Raises:
            KeyError: A name is not in this toolset (a typo would otherwise silently drop
                a tool).
        """
        wanted = set(names)
        missing = wanted - self._tools.keys()
        if missing:
            raise KeyError(
                f"toolset {self.name!r} has no tools {sorted(missing)}; it has {list(self._tools)}"
            )
        return Toolset(name or self.name, (t for n, t in self._tools.items() if n in wanted))

    def with_prefix(self, prefix: str, name: str | None = None) -> Toolset:
        """Every tool shown to the model as ``prefix + name`` (e.g. to merge two MCP servers)."""
        return Toolset(
            name or self.name, (t.with_alias(prefix + n) for n, t in self._tools.items())
        )

    def rename(self, mapping: Mapping[str, str], name: str | None = None) -> Toolset:
        """Show some tools to the model under other names; handlers and logs keep theirs."""
        missing = mapping.keys() - self._tools.keys()
        if missing:
            raise KeyError(f"toolset {self.name!r} has no tools {sorted(missing)}")
        return Toolset(
            name or self.name,
            (t.with_alias(mapping[n]) if n in mapping else t for n, t in self._tools.items()),
        )
