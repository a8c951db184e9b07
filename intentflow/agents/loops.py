"""Loop detection over tool-call signatures and handoffs.

A model that calls the same tool with the same arguments again and again, or alternates between
two calls, or two agents that hand a conversation back and forth, make no progress while
spending tokens and time. `LoopDetector` watches one run (which may span several agents and
graph nodes) and says when that happens; `LoopPolicy` says how sensitive it is and what each
detection does. It is pure logic (no I/O, no clock): the agent loop feeds it each turn's
`ToolCallOutcome` objects and each handoff, and acts on the `LoopVerdict` it returns.

What it detects, over the last ``window`` tool calls of the run:

* ``same_result``: the same call (tool name + canonical arguments) got the same result
  ``same_result_repeats`` times. The strongest signal: calling again will change nothing.
* ``repeat``: the same call ``max_repeats`` times, whatever the results were.
* ``alternation``: two different calls alternating, A-B-A-B, ``alternation_cycles`` full
  cycles in a row.
* ``ping_pong``: handoffs going back and forth between two agents, X -> Y -> X -> Y
  (``ping_pong`` visits to each), over consecutive handoffs.

What a detection does is the policy's ``escalation``: by default, the first detection in a run
sends a note to the model (``"note"``: it is told what it repeated, how often, what the result
was, and what to do instead), the second also changes the next turn's ``tool_choice``
(``"restrict"``, e.g. to ``none`` so the model must answer), and the third stops the run with a
typed `~intentflow.errors.LoopDetected` (``"stop"``, see `LoopVerdict.error`).

Semantic decisions, and why:

* **Escalation is per run.** Each detection raises the level by one, whatever loop it is: a
  model that stops repeating one call only to start alternating two others is still looping,
  and warning it afresh each time would let it loop forever.
* **One verdict per turn.** The strongest loop of the turn is reported (a relapse, see below,
  then ``same_result``, then ``repeat``, then ``alternation``); any other loop found in the same
  turn is named in the same note and handled like the reported one. One turn of the model
  raises the level at most once.
* **Evidence is consumed.** The calls that made up a detected loop no longer count towards a new
  detection, so the same calls cannot trigger again on the next turn before the model has had
  a chance to react (which would skip straight from the note to the stop).
* **Ignoring a warning escalates at once.** The consumed calls stay in the window, marked; if
  the model makes one of them again (``after_warning`` times, by default once) while they are
  still in the window, that is the next detection at once: it was just told this call changes
  nothing. This makes note -> restrict -> stop take three turns of a model that ignores every
  note, not three times ``max_repeats``. Handoffs work the same way: after a ping-pong, the next
  handoff between the same two agents escalates; a handoff to a third agent ends that.
* **Failed calls count.** A model that keeps sending the same invalid call is looping. The
  result digest is taken over the content the model reads, which for a failure is the
  structured error, so "same call, same error" is ``same_result`` and its note says so.
* **Exempt tools are invisible.** A tool in ``exempt`` (a job-status poll, a clock) is never
  counted, takes no place in the window, and does not break up an alternation of other tools:
  a model alternating A and B must not escape detection by polling in between.
* **Parallel calls count one by one, in the model's order.** Three identical calls in one turn
  are three calls; the verdict comes at the end of the turn.
* **Names are as the model used them** (``called_as``), in signatures and notes alike: the
  note must speak the model's vocabulary, and an unknown tool has no other name. ``exempt``
  matches either ``called_as`` or the tool's own name (``tool_name``), so an application can
  exempt a tool by the name it gave it.
* **Arguments are compared after canonicalisation** (`call_signature`): key order and
  whitespace do not matter, and equal numbers are equal (``1`` and ``1.0`` are one argument:
  JSON has one number type, and validation coerces them alike). Strings are compared exactly.
  The validated arguments of an outcome are used when it has them (so an omitted optional
  argument and its default, or ``null``, are one call); else the raw arguments of the model's
  `~intentflow.messages.ToolCall`, when given; else the result stands in for the arguments
  (two calls whose arguments never parsed are the same only if they failed the same way).
* **The window is per run, across agents.** The same call made by two agents in one run returns
  the same thing to either; the agent is recorded in the verdict, not in the signature.

Examples:
    >>> from intentflow.toolsets.outcomes import OutcomeKind, ToolCallOutcome
    >>> def weather(i: int) -> ToolCallOutcome:
    ...     return ToolCallOutcome(f"c{i}", "get_weather", "get_weather", OutcomeKind.SUCCESS,
    ...                            '{"temp_c": 18}', arguments={"city": "Paris"})
    >>> detector = LoopDetector()
    >>> detector.observe_calls("assistant", [weather(1)]) is None
    True
    >>> verdict = detector.observe_calls("assistant", [weather(2)])
    >>> verdict.kind, verdict.action, verdict.signature
    ('same_result', 'note', 'get_weather({"city":"Paris"})')
    >>> detector.observe_calls("assistant", [weather(3)]).action  # it ignored the note
    'restrict'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pydantic_core

from intentflow.errors import LoopDetected
from intentflow.messages import ToolCall
from intentflow.toolsets.outcomes import ToolCallOutcome

__all__ = [
    "LoopAction",
    "LoopDetector",
    "LoopKind",
    "LoopPolicy",
    "LoopVerdict",
    "call_signature",
    "result_digest",
]

LoopAction = Literal["note", "restrict", "stop"]
"""What a detection does: tell the model (``"note"``), tell it and change the next turn's
``tool_choice`` so it cannot call tools (``"restrict"``), or stop the run (``"stop"``)."""

LoopKind = Literal["repeat", "same_result", "alternation", "ping_pong"]
"""What repeated: one call (``"repeat"``), one call with one result (``"same_result"``), two
calls in turn (``"alternation"``), or handoffs between two agents (``"ping_pong"``)."""

_ACTIONS: frozenset[str] = frozenset(get_args(LoopAction))
_RESULT_CHARS = 200
"""How much of a tool result a note quotes."""
_SIGNATURE_CHARS = 200
"""How much of one call's signature a note or an error shows."""
_RESTRICT_NOTE = "Your tools are disabled for your next reply: answer with what you have."


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    """How sensitive loop detection is, and what each detection does.

    Attributes:
        window: How many recent tool calls of the run are compared (exempt tools not counted).
        max_repeats: The same call (tool name + canonical arguments) this many times within the
            window is a ``"repeat"``.
        same_result_repeats: The same call getting the same result this many times within the
            window is ``"same_result"`` (checked before ``max_repeats``: the stronger signal).
        alternation_cycles: Two different calls alternating this many full cycles in a row
            (``2``: A-B-A-B) is an ``"alternation"``. Calls that keep getting the same result
            are caught earlier as ``"same_result"``, and with ``alternation_cycles`` at or
            above ``max_repeats`` as ``"repeat"``: this catches alternations whose results
            change (a model paging back and forth, say).
        ping_pong: Consecutive handoffs alternating between two agents, visiting each this
            many times (``2``: X -> Y -> X -> Y), is a ``"ping_pong"``.
        escalation: What the first, second, third... detection of a run does; past the end,
            the last action repeats. Any sequence of ``"note"``, ``"restrict"``, ``"stop"``.
        exempt: Tool names never counted (as the model calls them, or the tools' own names):
            tools that legitimately repeat, such as polling a job's status. Any collection of
            names (a single string is one name).
        after_warning: After a detection, the same call (or a handoff between the same two
            agents) this many more times, while the detected calls are still in the window, is
            the next detection at once: the model was told and did it again.

    Raises:
        ValueError: A threshold is not an integer of at least 2 (``window`` and
            ``after_warning``: at least 1), the window is too small for a threshold to ever be
            reached, or the escalation is empty or names an unknown action.

    Examples:
        >>> LoopPolicy(escalation=["note", "stop"], exempt={"job_status"})
        LoopPolicy(window=8, max_repeats=3, same_result_repeats=2, alternation_cycles=2, \
ping_pong=2, escalation=('note', 'stop'), exempt=frozenset({'job_status'}), after_warning=1)
        >>> LoopPolicy(window=3)
        Traceback (most recent call last):
        ...
        ValueError: LoopPolicy: window=3 is too small for alternation_cycles=2: an alternation \
needs 4 calls in the window; raise window to at least 4
    """

    window: int = 8
    max_repeats: int = 3
    same_result_repeats: int = 2
    alternation_cycles: int = 2
    ping_pong: int = 2
    escalation: Sequence[LoopAction] = ("note", "restrict", "stop")
    exempt: Collection[str] = frozenset()
    after_warning: int = 1

    def __post_init__(self) -> None:
        minimums = {
            "window": 1,
            "max_repeats": 2,
            "same_result_repeats": 2,
            "alternation_cycles": 2,
            "ping_pong": 2,
            "after_warning": 1,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"LoopPolicy: {name} must be an integer, got {value!r}")
            if value < minimum:
                why = " (1 would report every call)" if minimum == 2 else ""
                raise ValueError(f"LoopPolicy: {name} must be at least {minimum}{why}, got {value}")
        needs = {
            "max_repeats": (self.max_repeats, "a repeat"),
            "same_result_repeats": (self.same_result_repeats, "a same-result repeat"),
            "alternation_cycles": (2 * self.alternation_cycles, "an alternation"),
        }
        for name, (need, what) in needs.items():
            if self.window < need:
                raise ValueError(
                    f"LoopPolicy: window={self.window} is too small for "
                    f"{name}={getattr(self, name)}: {what} needs {need} calls in the window; "
                    f"raise window to at least {need}"
                )
        given: object = self.escalation
        escalation = (given,) if isinstance(given, str) else tuple(self.escalation)
        if not escalation:
            raise ValueError(
                "LoopPolicy: escalation must name at least one action "
                "(any of 'note', 'restrict', 'stop')"
            )
        unknown = [a for a in escalation if a not in _ACTIONS]
        if unknown:
            raise ValueError(
                f"LoopPolicy: unknown escalation action(s) {unknown!r}; "
                "use 'note', 'restrict' or 'stop'"
            )
        object.__setattr__(self, "escalation", escalation)
        exempt: object = self.exempt
        names = frozenset((exempt,) if isinstance(exempt, str) else self.exempt)
        bad: list[object] = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ValueError(f"LoopPolicy: exempt must hold tool names (strings), got {bad!r}")
        object.__setattr__(self, "exempt", names)

    def action(self, level: int) -> LoopAction:
        """What the ``level``-th detection of a run does (1-based; past the end, the last).

        Examples:
            >>> policy = LoopPolicy(escalation=("note", "note", "stop"))
            >>> [policy.action(n) for n in range(1, 6)]
            ['note', 'note', 'stop', 'stop', 'stop']
        """
        escalation = self.escalation
        return escalation[min(max(level, 1), len(escalation)) - 1]


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True, slots=True)
class LoopVerdict:
    """A detected loop, and what to do about it.

    Attributes:
        kind: What repeated.
        action: What to do: send ``message`` to the model (``"note"``), send it and change the
            next turn's ``tool_choice`` so the model must answer (``"restrict"``), or stop the
            run by raising `error` (``"stop"``).
        signature: What repeated, readable: ``'get_weather({"city":"Paris"})'``,
            ``'search({"q":"a"}) <-> fetch({"id":1})'``, ``'billing -> support -> billing'``.
        message: The note for the model: what it repeated, how many times, the result it got
            (when known, cut to 200 characters), and what to do instead.
        level: Which detection of the run this is (1-based); it chose ``action``.
        count: How many times the call (or, for an alternation, the cycle; for a ping-pong,
            the visit to each agent) occurred.
        agent: The agent whose turn produced the verdict (for a ping-pong: the agent the
            conversation was handed to, which reads the note).
        path: The agents the run went through so far, as the detector saw them.
        relapse: Whether the loop went on after an earlier note about it.
    """

    kind: LoopKind
    action: LoopAction
    signature: str
    message: str
    level: int
    count: int = 0
    agent: str = ""
    path: tuple[str, ...] = ()
    relapse: bool = False

    def error(self, path: Sequence[str] = ()) -> LoopDetected:
        """The typed stop: a `~intentflow.errors.LoopDetected` describing this loop.

        Args:
            path: The agents (graph nodes) the run went through; defaults to ``self.path``.

        Examples:
            >>> verdict = LoopVerdict("repeat", "stop", 'search({"q":"x"})', "...", level=3,
            ...                       count=3, agent="researcher")
            >>> err = verdict.error(["triage", "researcher"])
            >>> err.kind, err.signature, err.path
            ('repeat', 'search({"q":"x"})', ('triage', 'researcher'))
            >>> print(err)
            loop detected (repeat): search({"q":"x"}) was called 3 times \
(detection 3 of this run, after 2 earlier warnings)
        """
        what = {
            "repeat": f"{self.signature} was called {self.count} times",
            "same_result": f"{self.signature} was called {self.count} times "
            "with the same result each time",
            "alternation": f"the calls {self.signature} alternated for {self.count} cycles",
            "ping_pong": f"the conversation was handed back and forth: {self.signature}",
        }[self.kind]
        if self.relapse:
            what += ", again after a warning"
        earlier = self.level - 1
        when = (
            f"detection {self.level} of this run, after {earlier} earlier "
            f"warning{'s' * (earlier != 1)}"
            if earlier
            else "the first detection of this run"
        )
        return LoopDetected(
            self.kind,
            f"{what} ({when})",
            signature=self.signature,
            path=tuple(path) or self.path,
        )


# --------------------------------------------------------------------------- signatures


def call_signature(name: str, arguments: Mapping[str, Any] | str) -> str:
    """A tool call's signature: its name and its arguments as canonical JSON.

    Canonical JSON has sorted keys, no whitespace and unescaped non-ASCII text; numbers that
    are equal are written alike (``1.0`` as ``1``), and sets are sorted. Arguments given as
    text are parsed first (empty text is ``{}``, as the executor reads it); text that is not
    JSON is used verbatim, so it can never equal a canonical signature.

    Args:
        name: The tool's name, as the model called it.
        arguments: The arguments, as a mapping (validated or parsed) or as the model's raw text.

    Examples:
        >>> call_signature("get_weather", '{ "unit": "C",  "city": "Zürich" }')
        'get_weather({"city":"Zürich","unit":"C"})'
        >>> call_signature("get_weather", {"unit": "C", "city": "Zürich"})
        'get_weather({"city":"Zürich","unit":"C"})'
        >>> call_signature("scale", {"factor": 2.0}) == call_signature("scale", '{"factor": 2}')
        True
        >>> call_signature("get_weather", '{"city": "Par')
        'get_weather({"city": "Par)'
    """
    if isinstance(arguments, str):
        text = arguments
        if not text.strip():
            return f"{name}({{}})"
        try:
            value: Any = json.loads(text)
        except (ValueError, RecursionError):  # deeply nested text is not JSON either
            return f"{name}({text})"
    else:
        value = arguments
    try:
        return f"{name}({_canonical(value)})"
    except RecursionError:  # nested too deep to canonicalize: the text stands for itself
        return f"{name}({arguments if isinstance(arguments, str) else '<nested too deep>'})"


def result_digest(content: str) -> str:
    """A short, stable digest of a tool result (16 hex digits of BLAKE2b).

    Examples:
        >>> result_digest('{"temp_c": 18}')
        '6c25fe8268bec5a7'
        >>> result_digest("a") == result_digest("a") != result_digest("b")
        True
    """
    return hashlib.blake2b(content.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )


def _plain(value: Any) -> Any:
    """Arguments as plain JSON data: dicts with string keys, lists, and scalars."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=_canonical)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    # Models, dataclasses, dates, enums, decimals...: as Pydantic would send them as JSON.
    plain = pydantic_core.to_jsonable_python(value, fallback=repr)
    return plain if isinstance(plain, str) else _plain(plain)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- detector


@dataclass(slots=True, eq=False)
class _Call:
    """One counted tool call in the window."""

    key: str  # what identifies the call: its signature, or a stand-in when arguments are unknown
    shown: str  # the signature as notes show it
    name: str
    digest: str
    content: str
    ok: bool
    group: int = 0  # the detection that consumed it (0: not consumed)


@dataclass(slots=True)
class _Group:
    """One detection's evidence: what it was, over which calls."""

    kind: LoopKind
    keys: tuple[str, ...]


@dataclass(slots=True)
class _Found:
    """A loop found in this turn's window, before it is reported."""

    kind: LoopKind
    evidence: list[_Call]
    relapse: bool = False
    keys: tuple[str, ...] = ()


class LoopDetector:
    """Watches one run's tool calls and handoffs for loops (see the module for the semantics).

    Create one per run; feed it every turn's outcomes with `observe_calls` and every handoff
    with `observe_handoff`, and act on the verdicts: send the note, restrict the next turn's
    ``tool_choice``, or raise `LoopVerdict.error`.

    Args:
        policy: Thresholds, window, escalation and exempt tools; the defaults when ``None``.

    Examples:
        >>> detector = LoopDetector(LoopPolicy(escalation=("stop",)))
        >>> for source, target in [("billing", "support"), ("support", "billing")]:
        ...     assert detector.observe_handoff(source, target) is None
        >>> verdict = detector.observe_handoff("billing", "support")
        >>> verdict.kind, verdict.signature, verdict.action
        ('ping_pong', 'billing -> support -> billing -> support', 'stop')
        >>> raise verdict.error()
        Traceback (most recent call last):
        ...
        intentflow.errors.LoopDetected: loop detected (ping_pong): the conversation was handed \
back and forth: billing -> support -> billing -> support (the first detection of this run)
    """

    def __init__(self, policy: LoopPolicy | None = None) -> None:
        self.policy = policy if policy is not None else LoopPolicy()
        self._calls: deque[_Call] = deque(maxlen=self.policy.window)
        self._groups: dict[int, _Group] = {}
        self._next_group = 1
        self._detections: list[LoopVerdict] = []
        self._path: list[str] = []
        self._hops: list[str] = []  # the agents of the latest consecutive handoffs
        self._pair: frozenset[str] | None = None  # two agents caught ping-ponging
        self._pair_trail: list[str] = []
        self._pair_count = 0

    # ------------------------------------------------------------------ state

    @property
    def level(self) -> int:
        """How many loops were detected in this run so far (the escalation level)."""
        return len(self._detections)

    @property
    def detections(self) -> tuple[LoopVerdict, ...]:
        """Every verdict of this run, in order."""
        return tuple(self._detections)

    @property
    def path(self) -> tuple[str, ...]:
        """The agents the run went through, as observed (consecutive repeats collapsed)."""
        return tuple(self._path)

    def reset_window(self) -> None:
        """Forget the recent calls and handoffs, consumed ones included; keep the level.

        Call it when the run moves on, e.g. after a restricted turn produced an answer and the
        conversation continues: earlier calls are then no evidence of a loop, but a model that
        loops again is still escalated from where it was.
        """
        self._calls.clear()
        self._groups.clear()
        self._hops.clear()
        self._pair = None
        self._pair_trail = []
        self._pair_count = 0

    def snapshot(self) -> dict[str, Any]:
        """The detector's state as JSON-ready data (for checkpoints); see `restore`."""
        return {
            "calls": [
                [c.key, c.shown, c.name, c.digest, c.content, c.ok, c.group] for c in self._calls
            ],
            "groups": [[n, g.kind, list(g.keys)] for n, g in self._groups.items()],
            "next_group": self._next_group,
            "detections": [
                {**dataclasses.asdict(v), "path": list(v.path)} for v in self._detections
            ],
            "path": list(self._path),
            "hops": list(self._hops),
            "pair": sorted(self._pair) if self._pair is not None else None,
            "pair_trail": list(self._pair_trail),
            "pair_count": self._pair_count,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back the state `snapshot` returned (in a resumed run)."""
        self._calls.clear()
        self._calls.extend(_Call(*row) for row in snapshot["calls"])
        self._groups = {int(n): _Group(kind, tuple(keys)) for n, kind, keys in snapshot["groups"]}
        self._next_group = int(snapshot["next_group"])
        self._detections = [
            LoopVerdict(**{**v, "path": tuple(v["path"])}) for v in snapshot["detections"]
        ]
        self._path = list(snapshot["path"])
        self._hops = list(snapshot["hops"])
        pair = snapshot["pair"]
        self._pair = frozenset(pair) if pair is not None else None
        self._pair_trail = list(snapshot["pair_trail"])
        self._pair_count = int(snapshot["pair_count"])

    def _visit(self, agent: str) -> None:
        if not self._path or self._path[-1] != agent:
            self._path.append(agent)

    # ------------------------------------------------------------------ tool calls

    def observe_calls(
        self,
        agent: str,
        outcomes: Sequence[ToolCallOutcome],
        calls: Sequence[ToolCall] = (),
    ) -> LoopVerdict | None:
        """Record one turn's tool calls and report the strongest loop they complete, if any.

        Args:
            agent: The agent whose turn it was.
            outcomes: The turn's outcomes, in the model's order.
            calls: The turn's tool calls as the model sent them (optional): their raw
                arguments identify calls whose arguments never validated (bad JSON, invalid
                arguments, unknown tools), matched by ``tool_call_id``.

        Returns:
            At most one verdict per turn (the strongest loop), or ``None``.
        """
        self._visit(agent)
        exempt = self.policy.exempt
        raw = {c.id: c.arguments for c in calls}
        added = False
        for outcome in outcomes:
            if outcome.called_as in exempt or (
                outcome.tool_name is not None and outcome.tool_name in exempt
            ):
                continue
            self._calls.append(self._entry(outcome, raw.get(outcome.tool_call_id)))
            added = True
        if not added:
            return None
        found = self._find()
        if not found:
            return None
        return self._report(found, agent)

    def _entry(self, outcome: ToolCallOutcome, raw: str | None) -> _Call:
        name = outcome.called_as
        content = outcome.content
        digest = result_digest(content)
        arguments: Mapping[str, Any] | str | None = outcome.arguments
        if arguments is None:
            arguments = raw
        if arguments is None:
            # Nothing says what the arguments were: the result stands in for them.
            return _Call(f"{name}(…)\x00{digest}", f"{name}(…)", name, digest, content, outcome.ok)
        signature = call_signature(name, arguments)
        return _Call(
            signature, _cut(signature, _SIGNATURE_CHARS), name, digest, content, outcome.ok
        )

    def _find(self) -> list[_Found]:
        """Every loop in the window, strongest first; each consumes its evidence."""
        found: list[_Found] = []
        relapse = self._relapse()
        if relapse is not None:
            found.append(relapse)
            self._consume(relapse)
        found.extend(self._repeats())
        alternation = self._alternation()
        if alternation is not None:
            found.append(alternation)
            self._consume(alternation)
        return found

    def _relapse(self) -> _Found | None:
        """Consumed calls made again (``after_warning`` times) while still in the window."""
        owner: dict[str, int] = {}
        again: dict[int, list[_Call]] = {}
        for call in self._calls:
            if call.group:
                owner[call.key] = call.group
            elif call.key in owner:
                again.setdefault(owner[call.key], []).append(call)
        due = [g for g, calls in again.items() if len(calls) >= self.policy.after_warning]
        if not due:
            return None
        group = min(due, key=lambda g: self._calls.index(again[g][0]))
        kind = self._groups[group].kind
        keys = self._groups[group].keys
        evidence = [c for c in self._calls if c.group == group or c in again[group]]  # by identity
        if kind == "same_result":
            # Still the same result? Else it is a plain repeat now.
            last = again[group][-1]
            if not any(c.digest == last.digest for c in evidence if c is not last):
                kind = "repeat"
        return _Found(kind, evidence, relapse=True, keys=keys)

    def _repeats(self) -> list[_Found]:
        """Calls repeated (with the same result, or at all) among the unconsumed ones."""
        policy = self.policy
        by_key: dict[str, list[_Call]] = {}
        for call in self._calls:
            if not call.group:
                by_key.setdefault(call.key, []).append(call)
        found: list[_Found] = []
        for key, calls in by_key.items():
            digests: dict[str, int] = {}
            for call in calls:
                digests[call.digest] = digests.get(call.digest, 0) + 1
            if max(digests.values()) >= policy.same_result_repeats:
                found.append(_Found("same_result", calls, keys=(key,)))
            elif len(calls) >= policy.max_repeats:
                found.append(_Found("repeat", calls, keys=(key,)))
        order = list(self._calls)
        # Strongest first: same result before repeat, then the most calls, then the latest.
        found.sort(
            key=lambda f: (f.kind != "same_result", -len(f.evidence), -order.index(f.evidence[-1]))
        )
        for f in found:
            self._consume(f)
        return found

    def _alternation(self) -> _Found | None:
        """The latest run of two calls alternating, long enough, among unconsumed calls."""
        calls = list(self._calls)
        need = 2 * self.policy.alternation_cycles
        start: int | None = None
        best: tuple[int, int] | None = None
        for i, call in enumerate(calls):
            if call.group:
                start = None
                continue
            if start is None or calls[i - 1].key == call.key:
                start = i
                continue
            if i - start >= 2 and calls[i - 2].key != call.key:
                start = i - 1
            if i - start + 1 >= need:
                best = (start, i)
        if best is None:
            return None
        evidence = calls[best[0] : best[1] + 1]
        return _Found("alternation", evidence, keys=(evidence[0].key, evidence[1].key))

    def _consume(self, found: _Found) -> None:
        group = self._next_group
        self._next_group += 1
        self._groups[group] = _Group(found.kind, found.keys)
        for call in found.evidence:
            call.group = group
        live = {c.group for c in self._calls}
        for stale in [g for g in self._groups if g not in live]:
            del self._groups[stale]

    def _report(self, found: list[_Found], agent: str) -> LoopVerdict:
        top = found[0]
        level = self.level + 1
        action = self.policy.action(level)
        signature, count, message = self._describe(top)
        others = [self._describe(f)[0] for f in found[1:]]
        if others:
            message += f" You also repeated: {'; '.join(others)}."
        if action == "restrict":
            message += f" {_RESTRICT_NOTE}"
        verdict = LoopVerdict(
            kind=top.kind,
            action=action,
            signature=signature,
            message=message,
            level=level,
            count=count,
            agent=agent,
            path=self.path,
            relapse=top.relapse,
        )
        self._detections.append(verdict)
        return verdict

    def _describe(self, found: _Found) -> tuple[str, int, str]:
        """The signature, the count and the note for a loop found among the calls."""
        lead = "Loop warning (again): " if found.relapse else "Loop warning: "
        evidence = found.evidence
        if found.kind == "alternation":
            first = next(c for c in reversed(evidence) if c.key == found.keys[0])
            second = next(c for c in reversed(evidence) if c.key == found.keys[1])
            cycles = max(
                sum(c.key == first.key for c in evidence),
                sum(c.key == second.key for c in evidence),
            )
            signature = f"{first.shown} <-> {second.shown}"
            message = (
                f"{lead}you keep alternating between {first.shown} and {second.shown} "
                f"({cycles} times each) without making progress. The last results were: "
                f"{first.name} -> {_cut(first.content, _RESULT_CHARS)}; "
                f"{second.name} -> {_cut(second.content, _RESULT_CHARS)}. Stop alternating: "
                "use these results, try something different, or answer the user."
            )
            return signature, cycles, message
        last = evidence[-1]
        count = len(evidence)
        result = _cut(last.content, _RESULT_CHARS)
        if found.kind == "same_result":
            count = sum(c.digest == last.digest for c in evidence)
            if last.ok:
                message = (
                    f"{lead}you have called {last.shown} {count} times and got the same result "
                    f"each time: {result}. Calling it again will return the same thing: use "
                    "the result you already have, try different arguments, or answer the user."
                )
            else:
                message = (
                    f"{lead}you have called {last.shown} {count} times and it failed the same "
                    f"way each time: {result}. It will fail again with the same arguments: "
                    "change them as the error says, or answer the user without this tool."
                )
        else:
            outcome = "result" if last.ok else "error"
            message = (
                f"{lead}you have called {last.shown} {count} times in your last "
                f"{len(self._calls)} tool calls. The last {outcome} was: {result}. Do not call "
                "it again with the same arguments: use the results you have, try different "
                "arguments, or answer the user."
            )
        return last.shown, count, message

    # ------------------------------------------------------------------ handoffs

    def observe_handoff(self, source: str, target: str) -> LoopVerdict | None:
        """Record a handoff from one agent to another; report a ping-pong, if any.

        Handoffs are consecutive whatever tool calls happen between them; a handoff whose
        source is not the latest target (a transition the detector did not see) continues the
        sequence from ``source``.

        Args:
            source: The agent that hands the conversation over.
            target: The agent that receives it (and reads any note).

        Returns:
            A ``"ping_pong"`` verdict, or ``None``.
        """
        self._visit(source)
        self._visit(target)
        hops = self._hops
        if not hops or hops[-1] != source:
            hops.append(source)
        hops.append(target)
        need = 2 * self.policy.ping_pong
        del hops[:-need]

        pair = self._pair
        if pair is not None:
            if source != target and {source, target} <= pair:
                self._pair_count += 1
                self._pair_trail.append(target)
                if self._pair_count >= self.policy.after_warning:
                    return self._ping_pong(self._pair_trail, target, relapse=True)
            else:
                self._pair = None
                self._pair_trail = []
                self._pair_count = 0

        if len(hops) < need or len(set(hops)) != 2:
            return None
        if any(hops[i] == hops[i - 1] or hops[i] != hops[i - 2] for i in range(2, need)):
            return None
        return self._ping_pong(list(hops), target, relapse=False)

    def _ping_pong(self, trail: list[str], target: str, *, relapse: bool) -> LoopVerdict:
        level = self.level + 1
        action = self.policy.action(level)
        signature = " -> ".join(trail)
        count = max(trail.count(a) for a in set(trail))
        lead = "Loop warning (again): " if relapse else "Loop warning: "
        message = (
            f"{lead}the conversation has been handed back and forth: {signature}. "
            "Handing it back again will not help: answer the user with what you have, "
            "or say what is missing."
        )
        if action == "restrict":
            message += f" {_RESTRICT_NOTE}"
        verdict = LoopVerdict(
            kind="ping_pong",
            action=action,
            signature=signature,
            message=message,
            level=level,
            count=count,
            agent=target,
            path=self.path,
            relapse=relapse,
        )
        self._detections.append(verdict)
        # The evidence is consumed: the next handoff between these two agents escalates.
        self._pair = frozenset(trail)
        self._pair_trail = list(trail)
        self._pair_count = 0
        self._hops = [target]
        return verdict
