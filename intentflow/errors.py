"""The one exception hierarchy of intentflow.

Every error says what happened, to what, and what to do about it. Errors fall in two families:
configuration errors are raised while an application is being *built* (a tool, a toolset, an
agent, a graph, a router) and mean the code must change; run errors are raised while a request
is being *served* and carry what the caller needs to act on them (the tool call, the outcomes
of the whole batch, later the transcript so far)::

    IntentflowError
    ├── ConfigurationError            raised at build time; fix the code
    │   ├── ToolDefinitionError       a tool cannot be built from this function/schema
    │   ├── ToolNameError             a tool name is invalid or taken (suggests an alias)
    │   └── ArtifactError             a saved router/classifier is missing, corrupt or too new
    └── RunError                      raised while serving a request (carries the transcript)
        ├── ToolInputError            the model's arguments for a tool are unusable
        │   ├── InvalidToolJSON       ...because they are not a JSON object
        │   └── InvalidToolArguments  ...because they fail validation (every field listed)
        ├── TransientToolError        raised *by a tool*: a retry may succeed
        ├── ToolCallFailed            the error policy chose to raise for a tool call
        ├── ModelError                the model could not be asked, or answered unusably
        │   ├── ModelAPIError         the endpoint answered with an HTTP error (status, message)
        │   │   └── ModelRateLimited  ...429, after the client's own retries
        │   ├── ModelConnectionError  no complete answer: connection refused, dropped or cut
        │   │   └── ModelTimeout      ...because the client's timeout expired
        │   └── ModelResponseError    the answer does not have the shape of a completion
        ├── ModelRefused              the model refused to answer
        ├── OutputValidationError     the final output failed validation after every retry
        ├── ClassificationError       a classifier's answer names no intent it knows
        ├── InvalidTransition         a node's next_node() named a node it has no edge to
        └── GuardTripped              a run guard stopped the run (carries the node path)
            ├── MaxTurnsExceeded      an agent reached its turn cap still calling tools
            ├── LoopDetected          the run repeats itself (same calls, ping-pong handoffs)
            ├── TokenBudgetExceeded   the next model call would exceed the run's token budget
            └── TranscriptTooLarge    the transcript outgrew its configured size
        ├── RunNotResumable           resume() was asked for a finished run, or wrong decisions
        └── StoreError                a checkpoint store could not save or load a run's state
            ├── CheckpointConflict    another writer saved this run (or conversation) first
            ├── CheckpointNotFound    no checkpoint has this run id
            └── IncompatibleCheckpoint  the checkpoint's format version is not readable here

    StrictSchemaWarning (a UserWarning)   a tool had to be emitted without strict mode
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intentflow.messages import Message, Usage
    from intentflow.toolsets.outcomes import ToolCallOutcome

__all__ = [
    "ArtifactError",
    "CheckpointConflict",
    "CheckpointNotFound",
    "ClassificationError",
    "ConfigurationError",
    "FieldError",
    "GuardTripped",
    "IncompatibleCheckpoint",
    "IntentflowError",
    "InvalidToolArguments",
    "InvalidToolJSON",
    "InvalidTransition",
    "LoopDetected",
    "MaxTurnsExceeded",
    "ModelAPIError",
    "ModelConnectionError",
    "ModelError",
    "ModelRateLimited",
    "ModelRefused",
    "ModelResponseError",
    "ModelTimeout",
    "OutputValidationError",
    "RunError",
    "RunNotResumable",
    "StoreError",
    "StrictSchemaWarning",
    "TokenBudgetExceeded",
    "ToolCallFailed",
    "ToolDefinitionError",
    "ToolInputError",
    "ToolNameError",
    "TranscriptTooLarge",
    "TransientToolError",
]


class IntentflowError(Exception):
    """Base class of every exception intentflow raises on purpose."""


# --------------------------------------------------------------------------- configuration


class ConfigurationError(IntentflowError):
    """Something was built wrong; raised at build time, never in the middle of a request."""


class ToolDefinitionError(ConfigurationError):
    """A tool cannot be built from the function, model or schema it was given.

    Attributes:
        tool: The tool's name (as the application wrote it).
        reason: What is wrong and how to fix it.
    """

    def __init__(self, tool: str, reason: str) -> None:
        self.tool = tool
        self.reason = reason
        super().__init__(f"tool {tool!r}: {reason}")


class ToolNameError(ConfigurationError):
    """A tool name is not accepted by the API, or is already taken in a toolset.

    Attributes:
        name: The offending name.
        reason: Why it was rejected.
        suggestion: A valid alias to register the tool under, when one can be derived.
    """

    def __init__(self, name: str, reason: str, suggestion: str | None = None) -> None:
        self.name = name
        self.reason = reason
        self.suggestion = suggestion
        hint = f"; register it under a valid alias, e.g. alias={suggestion!r}" if suggestion else ""
        super().__init__(f"tool name {name!r} {reason}{hint}")


class ArtifactError(ConfigurationError):
    """A saved artefact (a fitted router or classifier) cannot be loaded or written.

    Raised for a missing or unreadable file, a file that is not what it should be, and a file
    written by a format version this intentflow cannot read (the message says which versions
    it reads, so the fix, refitting or upgrading, is clear).

    Attributes:
        path: The file or directory concerned.
        found: The format version found, when the file has one.
        supported: The format versions this version of intentflow reads.
    """

    def __init__(
        self,
        path: object,
        reason: str,
        *,
        found: object = None,
        supported: Sequence[object] = (),
    ) -> None:
        self.path = str(path)
        self.reason = reason
        self.found = found
        self.supported = tuple(supported)
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------- run time


class RunError(IntentflowError):
    """Something went wrong while serving a request.

    A run error raised out of a run carries what the run produced up to that point, so
    nothing is lost: the caller can log it, show it, persist it, or continue the conversation
    from it.

    Attributes:
        transcript: Every message of the run so far (history included), in order; empty when
            the error was raised outside a run.
        usage: What the run consumed before the error.
        agent: The agent that was acting, if any.
        path: In a graph run, the nodes the run went through, in order.
    """

    transcript: tuple[Message, ...] = ()
    usage: Usage | None = None
    agent: str | None = None
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field of a tool call's arguments.

    Attributes:
        path: Where the failure is, from the root of the arguments: ``("items", 0, "qty")``.
        message: What is wrong, in words a model (or a person) can act on.
        type: A stable machine-readable error type (Pydantic's, e.g. ``"int_parsing"``).
    """

    path: tuple[str | int, ...]
    message: str
    type: str

    @property
    def location(self) -> str:
        """The path as a dotted string, ``"items[0].qty"``; ``"<root>"`` for the whole object."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "<root>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as sent back to the model."""
        return {"field": self.location, "error": self.message, "type": self.type}


class ToolInputError(RunError):
    """The arguments a model sent for a tool cannot be used.

    Attributes:
        tool: The name of the tool the arguments were for.
    """

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(message)


class InvalidToolJSON(ToolInputError):
    """The arguments are not a JSON object (unparseable, truncated, or not an object).

    Attributes:
        tool: The tool the arguments were for.
        raw: The raw argument text, cut to 200 characters.
        detail: The parser's message, with the position where it failed.
    """

    def __init__(self, tool: str, raw: str, detail: str) -> None:
        self.raw = raw[:200]
        self.detail = detail
        super().__init__(tool, f"arguments for {tool!r} are not a JSON object: {detail}")


class InvalidToolArguments(ToolInputError):
    """The arguments are JSON but fail validation; ``errors`` lists every failing field.

    Attributes:
        tool: The tool the arguments were for.
        errors: Every failing field, with its path.
    """

    def __init__(self, tool: str, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        listing = "; ".join(f"{e.location}: {e.message}" for e in self.errors)
        n = len(self.errors)
        super().__init__(tool, f"{n} invalid argument{'s' * (n != 1)} for {tool!r}: {listing}")


class TransientToolError(RunError):
    """Raise this from a tool to say the failure is temporary and a retry may succeed.

    Tools with a `RetryPolicy` are retried with backoff on this exception
    (and on any other exception type the policy lists).

    Examples:
        >>> async def get_quote(symbol: str) -> float:
        ...     raise TransientToolError("quote service is busy")
    """


class ToolCallFailed(RunError):
    """The error policy chose to raise for a tool call instead of telling the model.

    Nothing is lost: ``outcomes`` holds the outcome of *every* call in the batch (the others
    ran to completion; one failure never cancels its siblings).

    Attributes:
        outcome: The outcome that triggered the raise (the first, in the model's order).
        outcomes: The outcomes of the whole batch, in the model's order.
    """

    def __init__(self, outcome: ToolCallOutcome, outcomes: Sequence[ToolCallOutcome]) -> None:
        self.outcome = outcome
        self.outcomes = tuple(outcomes)
        error = outcome.error
        what = error.message if error is not None else "failed"
        super().__init__(
            f"tool call {outcome.tool_call_id!r} to {outcome.called_as!r} failed "
            f"({outcome.kind.value}): {what}"
        )


class StrictSchemaWarning(UserWarning):
    """A tool's schema cannot be sent in OpenAI strict mode, so that one tool is sent without it.

    Attributes:
        tool: The tool's name.
        reasons: Why strict mode is impossible for this schema (one line per problem, with its
            JSON path).
    """

    def __init__(self, tool: str, reasons: Sequence[str]) -> None:
        self.tool = tool
        self.reasons = tuple(reasons)
        super().__init__(f"tool {tool!r} is sent without strict mode: " + "; ".join(self.reasons))


# --------------------------------------------------------------------------- model calls


class ModelError(RunError):
    """A model call failed: the endpoint could not be reached or its answer is unusable.

    Attributes:
        model: The model the request was for.
        retryable: Whether sending the same request again later may succeed (the client's own
            retries are already spent when this is raised).
    """

    retryable: bool = False

    def __init__(self, message: str, *, model: str | None = None) -> None:
        self.model = model
        super().__init__(message)


class ModelAPIError(ModelError):
    """The endpoint answered with an HTTP error, after the client's own retries.

    Attributes:
        status: The HTTP status.
        message: The provider's error message, as it sent it.
        code: The provider's error code (``"context_length_exceeded"``, ...), if any.
        type: The provider's error type (``"invalid_request_error"``, ...), if any.
        request_id: The provider's request id, for its support.
        retryable: Whether the same request may succeed later (429, 408, 409, 5xx).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.request_id = request_id
        self.retryable = status in (408, 409, 429) or status >= 500
        what = f"{code}: " if code else ""
        super().__init__(f"the model endpoint answered HTTP {status}: {what}{message}", model=model)


class ModelRateLimited(ModelAPIError):
    """HTTP 429 from the endpoint, still there after the client's retries."""


class ModelConnectionError(ModelError):
    """No complete answer arrived: the connection failed, was dropped, or a stream was cut."""

    retryable = True


class ModelTimeout(ModelConnectionError):
    """The client's timeout expired before the answer was complete."""


class ModelResponseError(ModelError):
    """The endpoint's answer does not have the shape of a chat completion.

    Raised for answers a client cannot act on: no choices, a tool call of an unknown type.
    """


class ModelRefused(RunError):
    """The model refused to answer (its reply carried a refusal instead of content).

    Attributes:
        refusal: The model's refusal text, which may be shown to the user.
    """

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        super().__init__(f"the model refused: {refusal}")


class OutputValidationError(RunError):
    """The model's final output failed validation against the output type after every retry.

    Attributes:
        output_type: The name of the expected type.
        raw: The last output the model gave (cut to 2,000 characters).
        errors: Every failing field of that output (empty when it was not JSON at all).
        attempts: How many outputs were tried.
    """

    def __init__(
        self, output_type: str, raw: str, errors: Sequence[FieldError], detail: str, attempts: int
    ) -> None:
        self.output_type = output_type
        self.raw = raw[:2000]
        self.errors = tuple(errors)
        self.attempts = attempts
        super().__init__(
            f"the model's output is not a valid {output_type} after {attempts} "
            f"attempt{'s' * (attempts != 1)}: {detail}"
        )


class GuardTripped(RunError):
    """A guard stopped the run: a step, visit or cycle cap, a loop, or a budget.

    Attributes:
        guard: Which guard: ``"max_steps"``, ``"max_turns"``, ``"max_visits"``,
            ``"cycle_cap"``, ``"loop"`` or ``"token_budget"``.
        limit: The limit that was reached, when the guard has one.
        path: The agents (graph nodes) the run went through, in order.
    """

    def __init__(
        self, guard: str, detail: str, *, limit: int | None = None, path: Sequence[str] = ()
    ) -> None:
        self.guard = guard
        self.limit = limit
        self.path = tuple(path)
        super().__init__(detail)


class MaxTurnsExceeded(GuardTripped):
    """An agent used all its turns and the model still asked for tools.

    The tool calls of the last turn were executed and their results are in ``transcript``,
    so the transcript is complete and a conversation can continue from it.

    Attributes:
        agent: The agent that reached its cap.
        max_turns: The cap.
    """

    def __init__(
        self, agent: str, max_turns: int, *, hint: str | None = None, path: Sequence[str] = ()
    ) -> None:
        self.max_turns = max_turns
        hint = hint or (
            "raise max_turns, or set on_max_turns='final_answer' to end with an answer instead"
        )
        super().__init__(
            "max_turns",
            f"agent {agent!r} reached its cap of {max_turns} turn{'s' * (max_turns != 1)} "
            f"and the model still asks for tools; {hint}",
            limit=max_turns,
            path=path,
        )
        self.agent = agent


class TokenBudgetExceeded(GuardTripped):
    """The run's token budget would be exceeded by the next model call, so it was not made.

    Attributes:
        budget: The budget (total tokens per run).
        used: The tokens the run had used.
    """

    def __init__(self, budget: int, used: int, projected: int, *, path: Sequence[str] = ()) -> None:
        self.budget = budget
        self.used = used
        super().__init__(
            "token_budget",
            f"the run has used {used} of its {budget} tokens and the next model call would "
            f"need about {projected} more; raise the budget or shorten the conversation",
            limit=budget,
            path=path,
        )


class TranscriptTooLarge(GuardTripped):
    """The run's transcript grew past its configured size, so no further model call was made.

    Attributes:
        size: The transcript's size (characters of JSON).
    """

    def __init__(self, size: int, limit: int, *, path: Sequence[str] = ()) -> None:
        self.size = size
        super().__init__(
            "max_transcript_chars",
            f"the transcript is {size} characters of JSON, over its limit of {limit}; raise "
            "max_transcript_chars, cap tool output sizes, or start a new conversation",
            limit=limit,
            path=path,
        )


class LoopDetected(GuardTripped):
    """The run kept repeating itself after being warned: the same tool call again and again,
    two calls alternating, the same call getting the same result, or agents handing a
    conversation back and forth.

    Attributes:
        kind: What repeated (``"repeat"``, ``"same_result"``, ``"alternation"``,
            ``"ping_pong"``).
        signature: The repeated call(s) or handoffs, as the detector describes them.
    """

    def __init__(
        self, kind: str, detail: str, *, signature: str = "", path: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        self.signature = signature
        super().__init__("loop", f"loop detected ({kind}): {detail}", path=path)


class InvalidTransition(RunError):
    """A graph node's ``next_node`` named a node it has no edge to.

    Attributes:
        source: The node.
        target: What it named.
    """

    def __init__(self, source: str, target: str, allowed: Sequence[str]) -> None:
        self.source = source
        self.target = target
        shown = ", ".join(allowed) or "none"
        super().__init__(
            f"{source!r}.next_node() chose {target!r}, but the graph has no edge from "
            f"{source!r} to it (its successors: {shown}); add the transition to the graph"
        )


class ClassificationError(RunError):
    """A classifier could not classify a message: an LLM's answer was malformed or named an
    intent that does not exist. A router treats it as that stage failing and falls back.

    Attributes:
        classifier: The classifier's name.
        raw: What it answered (cut to 500 characters).
    """

    def __init__(self, classifier: str, raw: str, detail: str) -> None:
        self.classifier = classifier
        self.raw = raw[:500]
        super().__init__(f"classifier {classifier!r}: {detail}")


# --------------------------------------------------------------------------- durable runs


class StoreError(RunError):
    """A checkpoint store could not save or load a run's state (a database error, a
    checkpoint that does not decode). Raised during a run, it carries the transcript so far.

    Attributes:
        run_id: The run concerned, when known.
    """

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


class CheckpointConflict(StoreError):
    """Another writer saved this run (or started another run of this conversation) since its
    state was loaded: optimistic versioning refused to overwrite it.

    Attributes:
        expected: The version this writer started from.
        found: The version in the store (``None``: for a conversation, another run took the
            next place).
    """

    def __init__(
        self, run_id: str, expected: int | None, found: int | None, detail: str = ""
    ) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            detail
            or (
                f"run {run_id!r} was saved by another writer (version {found}, expected "
                f"{expected}); load it again and retry, or let the other writer finish"
            ),
            run_id=run_id,
        )


class CheckpointNotFound(StoreError):
    """No checkpoint has this run id (never saved, or deleted)."""

    def __init__(self, run_id: str, where: str = "") -> None:
        super().__init__(f"no checkpoint for run {run_id!r}{where}", run_id=run_id)


class IncompatibleCheckpoint(StoreError):
    """A checkpoint was written in a format version this intentflow cannot read.

    Attributes:
        found: Its version.
        supported: The versions this intentflow reads.
    """

    def __init__(self, run_id: str | None, found: Any, supported: Sequence[int]) -> None:
        self.found = found
        self.supported = tuple(supported)
        shown = ", ".join(map(str, supported))
        super().__init__(
            f"the checkpoint of run {run_id!r} has format version {found!r}; this intentflow "
            f"reads version {shown}: finish or discard runs before upgrading across formats",
            run_id=run_id,
        )


class RunNotResumable(RunError):
    """A run cannot be resumed as asked: it has finished, or the decisions given do not match
    the calls waiting for one (missing, unknown or repeated ids).

    Attributes:
        run_id: The run.
    """

    def __init__(self, run_id: str, detail: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} cannot be resumed: {detail}")
