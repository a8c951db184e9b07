"""Policies for failing tool calls: what to do with each kind of failure, and when to retry.

`ErrorPolicy` is configuration (immutable, shared by every run); `ErrorBudget` is
the per-run state that counts failures against the policy's budgets.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from intentflow.errors import TransientToolError
from intentflow.toolsets.outcomes import ErrorAction, OutcomeKind

__all__ = ["ErrorBudget", "ErrorPolicy", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """Decides, per kind of failure, whether it goes back to the model or is raised.

    Every failure that goes back to the model is charged to two budgets: one per tool and one
    for the run. A failure beyond a budget becomes a ``budget_exceeded`` outcome, handled by
    the ``budget_exceeded`` action (raise, by default): a model that keeps failing is stopped
    instead of looping.

    Examples:
        >>> strict = ErrorPolicy(tool_error=ErrorAction.RAISE, max_errors_per_run=3)
        >>> strict.action(OutcomeKind.TOOL_ERROR)
        <ErrorAction.RAISE: 'raise'>

    Attributes:
        unknown_tool: For a tool name that does not exist.
        permission_denied: For a tool not allowed this turn.
        invalid_json: For arguments that are not a JSON object.
        invalid_arguments: For arguments that fail validation.
        timeout: For a tool that ran past its timeout.
        tool_error: For a tool that raised.
        budget_exceeded: For a failure beyond a budget.
        max_errors_per_tool: Failures of one tool the model may see in a run.
        max_errors_per_run: Failures of all tools the model may see in a run.
        expose_exception_messages: Whether a tool exception's message is shown to the model
            (its type always is). Turn off when exception texts may hold secrets.
    """

    unknown_tool: ErrorAction = ErrorAction.RETURN_TO_MODEL
    permission_denied: ErrorAction = ErrorAction.RETURN_TO_MODEL
    invalid_json: ErrorAction = ErrorAction.RETURN_TO_MODEL
    invalid_arguments: ErrorAction = ErrorAction.RETURN_TO_MODEL
    timeout: ErrorAction = ErrorAction.RETURN_TO_MODEL
    tool_error: ErrorAction = ErrorAction.RETURN_TO_MODEL
    budget_exceeded: ErrorAction = ErrorAction.RAISE
    max_errors_per_tool: int = 3
    max_errors_per_run: int = 8
    expose_exception_messages: bool = True

    def action(self, kind: OutcomeKind) -> ErrorAction:
        """The action for a kind of failure (cancellations always propagate)."""
        if kind is OutcomeKind.SUCCESS or kind is OutcomeKind.CANCELLED:
            raise ValueError(f"{kind.value!r} is not a failure the policy decides")
        action: ErrorAction = getattr(self, kind.value)
        return action

    @classmethod
    def raise_all(cls) -> ErrorPolicy:
        """A policy that raises on every failure (useful in tests and batch jobs)."""
        r = ErrorAction.RAISE
        return cls(r, r, r, r, r, r, r)


@dataclass(slots=True)
class ErrorBudget:
    """Per-run counts of failures sent back to the model, checked against an ErrorPolicy.

    Create one per run and pass it to every `Executor.execute` of that run.
    """

    per_tool: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def charge(self, tool: str, policy: ErrorPolicy) -> str | None:
        """Count one failure of ``tool``; return why a budget is exceeded, or ``None``."""
        self.per_tool[tool] += 1
        self.total += 1
        if self.per_tool[tool] > policy.max_errors_per_tool:
            return (
                f"{tool!r} failed {self.per_tool[tool]} times in this run "
                f"(budget {policy.max_errors_per_tool})"
            )
        if self.total > policy.max_errors_per_run:
            return (
                f"{self.total} tool calls failed in this run (budget {policy.max_errors_per_run})"
            )
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries a tool's *transient* failures with exponential backoff and full jitter.

    Only exceptions of the listed types are retried (by default
    `TransientToolError`, which a tool raises to say "try again"),
    and timeouts only when ``retry_timeouts`` is set. Everything else fails at once.

    Examples:
        >>> RetryPolicy(attempts=4, retry_on=(TransientToolError, ConnectionError))
        RetryPolicy(attempts=4, ...)

    Attributes:
        attempts: Total attempts, the first included (1 means no retry).
        base_delay: Delay before the first retry, in seconds; doubled for each next one.
        max_delay: Cap on one delay.
        jitter: Draw each delay uniformly from ``[0, delay]`` so retries of many calls spread.
        retry_on: Exception types that are transient.
        retry_timeouts: Whether a timeout is transient too.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (TransientToolError,)
    retry_timeouts: bool = False

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def __repr__(self) -> str:
        return f"RetryPolicy(attempts={self.attempts}, ...)"

    def delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1 for the first retry)."""
        cap = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return random.uniform(0, cap) if self.jitter else cap

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` may go away on a retry."""
        return isinstance(exc, self.retry_on)
