"""tool_choice policies: what an agent asks of the model about tools, turn by turn.

They live with the toolsets because an intent pairs a toolset with a policy, and the router
(which knows intents but not agents) needs both.

A policy gives the ``tool_choice`` of each turn: ``auto`` (call tools or answer), ``required``
(call at least one tool), ``none`` (answer without tools), ``forced(name)`` (call that tool),
or a sequence over turns, e.g. forced on the first turn and ``auto`` after::

    >>> policy = sequence(forced("search_products"), then="auto")
    >>> [policy.choice(turn) for turn in (1, 2, 3)]
    [ForcedTool(name='search_products'), 'auto', 'auto']

A policy whose steady state forces tool calls (``required`` or ``forced`` forever) would loop
until the turn cap; `ToolChoicePolicy.problems` finds that when the agent is built, and the
agent refuses to build unless the policy has an exit (a tool that ends the run).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "ForcedTool",
    "ToolChoice",
    "ToolChoiceMode",
    "ToolChoicePolicy",
    "as_policy",
    "auto",
    "forced",
    "none",
    "required",
    "sequence",
]


@dataclass(frozen=True, slots=True)
class ForcedTool:
    """A tool choice that makes the model call one named tool.

    Attributes:
        name: The tool's name as the model sees it (its ``api_name``).
    """

    name: str


ToolChoiceMode: TypeAlias = Literal["auto", "required", "none"]
"""``auto``: the model may call tools or answer; ``required``: it must call at least one;
``none``: it must answer without calling any."""

ToolChoice: TypeAlias = ToolChoiceMode | ForcedTool
"""What one request asks of the model regarding tools."""

_MODES = ("auto", "required", "none")


@dataclass(frozen=True, slots=True)
class ToolChoicePolicy:
    """The ``tool_choice`` of each turn: ``turns[i]`` on turn ``i + 1``, then ``then`` forever.

    Build one with `auto`, `required`, `none`, `forced` or `sequence`.

    Attributes:
        turns: The choices of the first turns, in order.
        then: The choice of every later turn (the steady state).
    """

    turns: tuple[ToolChoice, ...] = ()
    then: ToolChoice = "auto"

    def __post_init__(self) -> None:
        for choice in (*self.turns, self.then):
            _check_choice(choice)

    def choice(self, turn: int) -> ToolChoice:
        """The tool_choice of ``turn`` (1-based)."""
        if 1 <= turn <= len(self.turns):
            return self.turns[turn - 1]
        return self.then

    @property
    def forced_names(self) -> tuple[str, ...]:
        """Every tool this policy forces on some turn, in order."""
        return tuple(c.name for c in (*self.turns, self.then) if isinstance(c, ForcedTool))

    def problems(self, tool_names: Collection[str], exits: Collection[str]) -> list[str]:
        """What is wrong with this policy for an agent with these tools and exit tools.

        Args:
            tool_names: The names (as the model sees them) of the agent's tools.
            exits: The tools whose successful call ends the run.

        Returns:
            One line per problem, each saying how to fix it; empty when the policy is sound.

        Examples:
            >>> print(*required().problems({"search"}, exits=()))
            tool_choice 'required' forces a tool call on every turn and no tool ends the run, ...
        """
        out = []
        for name in dict.fromkeys(self.forced_names):
            if name not in tool_names:
                known = ", ".join(sorted(tool_names)) or "none"
                out.append(
                    f"tool_choice forces {name!r}, which is not a tool of the agent "
                    f"(its tools: {known})"
                )
        forcing = [c for c in self.turns if c != "auto" and c != "none"]
        if (forcing or self.then == "required" or isinstance(self.then, ForcedTool)) and not (
            tool_names
        ):
            out.append("tool_choice forces tool calls but there are no tools")
        steady = self.then
        if steady == "required" and not (set(exits) & set(tool_names)):
            out.append(
                "tool_choice 'required' forces a tool call on every turn and no tool ends the "
                "run, so the agent can never answer; use sequence(required(), then='auto'), "
                "or name a tool in stop_at_tools"
            )
        elif isinstance(steady, ForcedTool) and steady.name not in exits:
            out.append(
                f"tool_choice forces {steady.name!r} on every turn and that tool does not end "
                f"the run, so the agent can never answer; use sequence(forced({steady.name!r}), "
                f"then='auto'), or put {steady.name!r} in stop_at_tools"
            )
        return out

    def __repr__(self) -> str:
        if not self.turns:
            return _show(self.then)
        shown = ", ".join(_show(c) for c in self.turns)
        return f"sequence({shown}, then={_show(self.then)})"


def auto() -> ToolChoicePolicy:
    """The model decides on every turn whether to call tools or answer."""
    return ToolChoicePolicy((), "auto")


def required() -> ToolChoicePolicy:
    """The model must call at least one tool on every turn (needs an exit tool)."""
    return ToolChoicePolicy((), "required")


def none() -> ToolChoicePolicy:
    """The model must answer without calling tools on every turn."""
    return ToolChoicePolicy((), "none")


def forced(name: str) -> ToolChoicePolicy:
    """The model must call the tool ``name`` on every turn (needs it to end the run).

    On its own this is only sound for a tool in ``stop_at_tools``; inside `sequence` it
    forces one turn.
    """
    return ToolChoicePolicy((), ForcedTool(name))


def sequence(
    *turns: ToolChoicePolicy | ToolChoice, then: ToolChoicePolicy | ToolChoice = "auto"
) -> ToolChoicePolicy:
    """A policy that changes over turns: ``turns`` in order, then ``then`` forever.

    Args:
        *turns: One choice per turn, from the first: ``"auto"``, ``"required"``, ``"none"``,
            ``forced(name)`` (or the other single-choice policies).
        then: The choice of every later turn.

    Examples:
        >>> sequence("required", "required", then=none())
        sequence('required', 'required', then='none')
    """
    return ToolChoicePolicy(tuple(_single(t) for t in turns), _single(then))


def as_policy(value: ToolChoicePolicy | ToolChoice | str) -> ToolChoicePolicy:
    """A policy from a policy, a choice (``"auto"``...) or a `ForcedTool`."""
    if isinstance(value, ToolChoicePolicy):
        return value
    return ToolChoicePolicy((), _single(value))


def _single(value: ToolChoicePolicy | ToolChoice | str) -> ToolChoice:
    if isinstance(value, ToolChoicePolicy):
        if value.turns:
            raise ValueError(f"{value!r} is a sequence; a sequence step takes one choice")
        return value.then
    _check_choice(value)
    return value  # type: ignore[return-value]  # checked just above


def _check_choice(value: object) -> None:
    if isinstance(value, ForcedTool) or value in _MODES:
        return
    raise ValueError(
        f"not a tool_choice: {value!r}; use 'auto', 'required', 'none' or forced(name)"
    )


def _show(choice: ToolChoice) -> str:
    return f"forced({choice.name!r})" if isinstance(choice, ForcedTool) else repr(choice)
