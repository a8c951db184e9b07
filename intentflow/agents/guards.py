"""Run guards: the step cap, token budget, visit and cycle caps, and the loop detector.

One `RunGuards` watches one run, across every agent (graph node) it goes through. The agent
loop consults it at three points:

* before each model call (`RunGuards.before_model`): counts the step against the run's
  step cap and checks the token budget; returns the notes and restriction the loop detector
  asked for on the previous turn;
* after each turn's tool calls (`RunGuards.after_tools`): feeds the loop detector;
* when the model transfers the conversation (`RunGuards.check_handoff`): visit caps, cycle
  caps and handoff ping-pong.

**Graceful or typed.** With ``on_limit="final_answer"`` (the default) the step cap ends the
run the way an agent's turn cap does: the last allowed call is made with tool_choice ``none``
and a note that the budget is spent, so the user gets an answer. A handoff refused by a
visit or cycle cap goes back to the model as the transfer's result ("not transferred: ...")
and the agent must answer itself on its next turn. With ``on_limit="raise"`` each trip is a
typed `GuardTripped` (`LoopDetected`, `TokenBudgetExceeded`, ...) carrying the transcript and
the node path. The token budget is never graceful: a final answer would spend tokens too.

**Token budget.** Before each model call the guard projects the call's cost: the previous
prompt, plus the previous answer, plus what was added since (estimated at 3 characters a
token, more than most text needs), plus an answer as long as the previous one. It stops the
run with `TokenBudgetExceeded` when the tokens used plus that projection exceed the budget,
so the call that would cross it is not made. It is an estimate: an answer much longer than the
previous one can still cross the budget by the difference. The first call is never stopped:
nothing is known before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from intentflow.agents.handoff import REROUTE
from intentflow.agents.loops import LoopDetector, LoopPolicy, LoopVerdict
from intentflow.errors import GuardTripped, TokenBudgetExceeded
from intentflow.messages import ToolCall, Usage
from intentflow.toolsets.outcomes import ToolCallOutcome
from intentflow.toolsets.tool import Tool

__all__ = ["CycleCap", "Limits", "OnLimit", "RunGuards", "TurnAdvice", "mask_arguments"]

OnLimit = Literal["final_answer", "raise"]
"""What a tripped cap does: end with a graceful answer, or raise a typed `GuardTripped`."""

STEP_CAP_NOTE = (
    "This request has used all the steps it may take. Do not call tools or transfer the "
    "conversation: answer the user now with what you have, and say briefly what is unfinished."
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The run-wide limits of a graph run.

    Attributes:
        max_steps: Model calls allowed in the whole run, over every agent (default 40: a
            triage, two specialists with a handful of tool rounds each, with room to spare).
        token_budget: Total tokens (prompt + completion) the run may use; ``None``: no limit.
        on_limit: What a tripped step, visit or cycle cap does (`OnLimit`).
        max_reroutes: How many times agents may ask for the message to be routed again.
        max_transcript_chars: The largest transcript (characters of JSON, history included)
            any model call of the run may send; past it the run raises `TranscriptTooLarge`
            before the call. An agent's own ``max_transcript_chars`` applies too (the lower
            wins). ``None``: no run-wide limit.
    """

    max_steps: int = 40
    token_budget: int | None = None
    on_limit: OnLimit = "final_answer"
    max_reroutes: int = 2
    max_transcript_chars: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {self.max_steps}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ValueError(f"token_budget must be positive, not {self.token_budget}")
        if self.max_reroutes < 0:
            raise ValueError(f"max_reroutes must be >= 0, not {self.max_reroutes}")
        if self.max_transcript_chars is not None and self.max_transcript_chars < 1:
            raise ValueError(
                f"max_transcript_chars must be positive, not {self.max_transcript_chars}"
            )
        if self.on_limit not in ("final_answer", "raise"):
            raise ValueError(f"on_limit must be 'final_answer' or 'raise', not {self.on_limit!r}")


@dataclass(frozen=True, slots=True)
class CycleCap:
    """A cap on the transitions inside one cycle of the graph.

    Attributes:
        nodes: The nodes of the cycle (a strongly connected component of the graph).
        max_passes: How many transitions between nodes of the cycle one run may make.
    """

    nodes: frozenset[str]
    max_passes: int


@dataclass(frozen=True, slots=True)
class TurnAdvice:
    """What the guards ask of the next model call.

    Attributes:
        notes: Notes for the model, sent with this request only.
        restrict: Make this call with tool_choice ``none`` (answer without tools).
    """

    notes: tuple[str, ...] = ()
    restrict: bool = False


@dataclass
class RunGuards:
    """The guards of one run (see the module notes).

    Args:
        limits: The run-wide limits.
        loop_policy: The loop detector's policy; ``None`` turns loop detection off.
        visit_caps: The most times each node may be entered in one run.
        cycle_caps: Caps on transitions within cycles.
        on_trip: Called with the guard's name and what happened, each time one acts (a
            note, a restriction, a refused transfer, a stop).
    """

    limits: Limits = field(default_factory=Limits)
    loop_policy: LoopPolicy | None = field(default_factory=LoopPolicy)
    visit_caps: Mapping[str, int] = field(default_factory=dict)
    cycle_caps: Sequence[CycleCap] = ()
    on_trip: Callable[[str, str], None] | None = None
    steps: int = field(default=0, init=False)
    reroutes: int = field(default=0, init=False)
    usage: Usage = field(default_factory=Usage, init=False)
    path: list[str] = field(default_factory=list, init=False)
    visits: Counter[str] = field(default_factory=Counter, init=False)
    passes: dict[frozenset[str], int] = field(default_factory=dict, init=False)
    tripped: list[str] = field(default_factory=list, init=False)
    _detector: LoopDetector | None = field(default=None, init=False)
    _pending: LoopVerdict | None = field(default=None, init=False)
    _last_prompt: int = field(default=0, init=False)
    _last_completion: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.loop_policy is not None:
            self._detector = LoopDetector(self.loop_policy)

    @property
    def detector(self) -> LoopDetector | None:
        """The loop detector, when loop detection is on."""
        return self._detector

    def snapshot(self) -> dict[str, Any]:
        """The guards' counters and the loop detector's state, as JSON-ready data."""
        pending = self._pending
        return {
            "steps": self.steps,
            "reroutes": self.reroutes,
            "usage": self.usage.model_dump(mode="json"),
            "path": list(self.path),
            "visits": dict(self.visits),
            "passes": [[sorted(nodes), count] for nodes, count in self.passes.items()],
            "tripped": list(self.tripped),
            "pending": (
                {**dataclasses.asdict(pending), "path": list(pending.path)}
                if pending is not None
                else None
            ),
            "last_prompt": self._last_prompt,
            "last_completion": self._last_completion,
            "detector": self._detector.snapshot() if self._detector is not None else None,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back the state `snapshot` returned (in a resumed run)."""
        self.steps = int(snapshot["steps"])
        self.reroutes = int(snapshot["reroutes"])
        self.usage = Usage.model_validate(snapshot["usage"])
        self.path = list(snapshot["path"])
        self.visits = Counter(snapshot["visits"])
        self.passes = {frozenset(nodes): int(count) for nodes, count in snapshot["passes"]}
        self.tripped = list(snapshot["tripped"])
        pending = snapshot["pending"]
        self._pending = (
            LoopVerdict(**{**pending, "path": tuple(pending["path"])}) if pending else None
        )
        self._last_prompt = int(snapshot["last_prompt"])
        self._last_completion = int(snapshot["last_completion"])
        if self._detector is not None and snapshot["detector"] is not None:
            self._detector.restore(snapshot["detector"])

    def enter(self, node: str) -> None:
        """Record that the run entered ``node`` (the visit caps were checked by the handoff)."""
        self.path.append(node)
        self.visits[node] += 1

    def before_model(self, node: str, new_chars: int = 0) -> TurnAdvice:
        """Count a model call; say how to make it. Raises when a limit forbids it.

        Args:
            node: The node about to call its model.
            new_chars: The size (characters of JSON) of the messages added to the
                transcript since the previous model call, for the token budget's projection.
        """
        limits = self.limits
        budget = limits.token_budget
        if budget is not None and self.steps:
            used = self.usage.total_tokens
            # The next prompt repeats the last one, its answer and what was added since (at a
            # conservative 3 characters a token); the answer costs about what the last did.
            projected = self._last_prompt + 2 * self._last_completion + math.ceil(new_chars / 3)
            if used + projected > budget:
                self._trip("token_budget", f"{used} of {budget} tokens used")
                raise TokenBudgetExceeded(budget, used, projected, path=self.path)
        self.steps += 1
        notes: list[str] = []
        restrict = False
        if self.steps > limits.max_steps:
            self._trip("max_steps", f"cap of {limits.max_steps} model calls")
            raise GuardTripped(
                "max_steps",
                f"the run reached its cap of {limits.max_steps} model calls (at {node!r}); "
                "raise Limits.max_steps, or use on_limit='final_answer' to end with an answer",
                limit=limits.max_steps,
                path=self.path,
            )
        if self.steps == limits.max_steps and limits.on_limit == "final_answer":
            self._trip("max_steps", "last allowed model call: answering without tools")
            notes.append(STEP_CAP_NOTE)
            restrict = True
        verdict, self._pending = self._pending, None
        if verdict is not None:
            notes.append(verdict.message)
            restrict = restrict or verdict.action == "restrict"
        return TurnAdvice(tuple(notes), restrict)

    def after_model(self, usage: Usage) -> None:
        """Add a model call's usage to the run's."""
        self.usage = self.usage + usage
        self._last_prompt = usage.prompt_tokens
        self._last_completion = usage.completion_tokens

    def after_tools(
        self, node: str, outcomes: Sequence[ToolCallOutcome], calls: Sequence[ToolCall] = ()
    ) -> None:
        """Feed a turn's tool calls to the loop detector; raises `LoopDetected` on "stop"."""
        if self._detector is None or not outcomes:
            return
        verdict = self._detector.observe_calls(node, outcomes, calls)
        self._act(verdict)

    def check_handoff(self, source: str, target: str) -> str | None:
        """Whether ``source`` may transfer to ``target`` now.

        Returns:
            ``None`` when it may; otherwise why not, to send back to the model as the
            transfer's result (graceful mode).

        Raises:
            GuardTripped: A visit or cycle cap, with ``on_limit="raise"``.
            LoopDetected: Handoff ping-pong at the "stop" level of escalation.
        """
        if target == REROUTE:
            limit = self.limits.max_reroutes
            if self.reroutes >= limit:
                return self._refuse(
                    "max_reroutes", f"the message was already routed again {limit} times", limit
                )
            self.reroutes += 1
            return None
        if self._detector is not None:
            verdict = self._detector.observe_handoff(source, target)
            if verdict is not None and verdict.action == "restrict":
                self._trip("loop", verdict.message)
                self._pending = verdict
                return f"Not transferred: {verdict.message}"
            self._act(verdict)
        cap = self.visit_caps.get(target)
        if cap is not None and self.visits[target] >= cap:
            return self._refuse(
                "max_visits",
                f"{target!r} was already entered {cap} time{'s' * (cap != 1)}, its cap",
                cap,
            )
        for cycle in self.cycle_caps:
            if source in cycle.nodes and target in cycle.nodes:
                done = self.passes.get(cycle.nodes, 0)
                if done >= cycle.max_passes:
                    shown = " <-> ".join(sorted(cycle.nodes))
                    return self._refuse(
                        "cycle_cap",
                        f"the cycle {shown} was already passed {done} times, its cap",
                        cycle.max_passes,
                    )
        for cycle in self.cycle_caps:
            if source in cycle.nodes and target in cycle.nodes:
                self.passes[cycle.nodes] = self.passes.get(cycle.nodes, 0) + 1
        return None

    def _trip(self, guard: str, detail: str) -> None:
        self.tripped.append(guard)
        if self.on_trip is not None:
            self.on_trip(guard, detail)

    def _refuse(self, guard: str, detail: str, limit: int) -> str:
        self._trip(guard, f"transfer refused: {detail}")
        if self.limits.on_limit == "raise":
            raise GuardTripped(guard, f"transfer refused: {detail}", limit=limit, path=self.path)
        return f"Not transferred: {detail}. Answer the user yourself now, without transferring."

    def _act(self, verdict: LoopVerdict | None) -> None:
        if verdict is None:
            return
        self._trip("loop", f"{verdict.action}: {verdict.message}")
        if verdict.action == "stop":
            raise verdict.error(self.path)
        self._pending = verdict


def mask_arguments(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's arguments with its sensitive values replaced by short digests.

    Equal values still compare equal (so the loop detector still sees a repeated call), but
    the notes and errors that quote a call never show a sensitive value.

    Examples:
        >>> from intentflow.toolsets.tool import Tool
        >>> def login(user: str, password: str) -> str:
        ...     return "ok"
        >>> tool = Tool.from_function(login, sensitive=["password"])
        >>> masked = mask_arguments(tool, {"user": "ada", "password": "hunter2"})
        >>> masked["user"], masked["password"].startswith("<hidden ")
        ('ada', True)
    """
    hidden = tool.sensitive
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if hidden is True or (hidden and key in hidden):
            digest = hashlib.blake2b(repr(value).encode(), digest_size=4).hexdigest()
            out[key] = f"<hidden {digest}>"
        else:
            out[key] = value
    return out
