"""`Intent`: what a user may want, the tools that serve it, and who handles it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from intentflow.errors import ConfigurationError
from intentflow.toolsets.choice import ToolChoice, ToolChoicePolicy, as_policy
from intentflow.toolsets.toolset import Toolset

__all__ = ["Intent"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Intent:
    """One intent: how to recognise it, the tools and tool_choice policy it selects, its entry.

    Examples:
        >>> refund = Intent(
        ...     "refund",
        ...     description="The customer wants money back for an order.",
        ...     examples=["I want a refund", "give me my money back"],
        ...     tool_choice="auto",
        ...     entry="billing",
        ... )
        >>> refund.policy
        'auto'

    Attributes:
        name: A unique name (letters, digits, ``_ . : -``; starts with a letter).
        description: What the intent means, for people and for LLM classifiers.
        examples: Example utterances, for trained classifiers.
        toolset: The tools the model may see and call for this intent (``None``: none).
        tool_choice: The tool_choice policy for this intent.
        entry: The agent (or graph node) that handles it; ``None`` leaves it to the caller.
        policy: ``tool_choice`` as a `ToolChoicePolicy`.
    """

    name: str
    description: str = ""
    examples: Iterable[str] = ()
    toolset: Toolset | None = None
    tool_choice: ToolChoicePolicy | ToolChoice | str = "auto"
    entry: str | None = None
    policy: ToolChoicePolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            problems.append(
                f"the name {self.name!r} is not valid: use letters, digits and _ . : - "
                "(starting with a letter, at most 64 characters)"
            )
        examples = tuple(self.examples)
        if not all(isinstance(e, str) and e.strip() for e in examples):
            problems.append("every example must be a non-empty string")
        object.__setattr__(self, "examples", examples)
        try:
            policy = as_policy(self.tool_choice)
        except ValueError as exc:
            problems.append(str(exc))
            policy = ToolChoicePolicy()
        object.__setattr__(self, "policy", policy)
        names = set(self.toolset.names) if self.toolset is not None else set()
        # An intent has no exit tools of its own (that is the agent's business), so only what
        # can be known here is checked: forced tools exist, forcing needs tools.
        problems += [p for p in policy.problems(names, exits=names) if "can never answer" not in p]
        if problems:
            raise ConfigurationError(
                f"intent {self.name!r} is invalid:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the intent's tools, as the model sees them."""
        return self.toolset.names if self.toolset is not None else ()
