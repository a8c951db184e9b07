"""Tools and toolsets: describe what the model may call, compile it once, execute it safely.

* `Tool` and the `tool` decorator: a tool from a function, a Pydantic model or a
  JSON Schema, with an honest strict-mode schema (`.strict`);
* `Toolset`: a named, ordered, composable collection;
* tool_choice policies (`ToolChoicePolicy`: `auto`, `required`, `none`, `forced`,
  `sequence`), which an intent or an agent pairs with a toolset;
* `Executor`: runs the model's tool calls with permission checks, validation, timeouts,
  retries and a concurrency limit, and returns one `ToolCallOutcome` per call.
"""

from intentflow.toolsets.choice import (
    ForcedTool,
    ToolChoice,
    ToolChoicePolicy,
    auto,
    forced,
    none,
    required,
    sequence,
)
from intentflow.toolsets.executor import Executor
from intentflow.toolsets.outcomes import ErrorAction, OutcomeKind, ToolCallOutcome, ToolError
from intentflow.toolsets.policy import ErrorBudget, ErrorPolicy, RetryPolicy
from intentflow.toolsets.strict import StrictCompilation, compile_strict
from intentflow.toolsets.tool import Tool, tool
from intentflow.toolsets.toolset import Toolset

__all__ = [
    "ErrorAction",
    "ErrorBudget",
    "ErrorPolicy",
    "Executor",
    "ForcedTool",
    "OutcomeKind",
    "RetryPolicy",
    "StrictCompilation",
    "Tool",
    "ToolCallOutcome",
    "ToolChoice",
    "ToolChoicePolicy",
    "ToolError",
    "Toolset",
    "auto",
    "compile_strict",
    "forced",
    "none",
    "required",
    "sequence",
    "tool",
]
