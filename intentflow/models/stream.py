"""Turn streamed chat-completion deltas into one complete assistant message.

`StreamAccumulator` is provider-neutral: a model adapter passes it the plain values of each
delta (text, refusal, and for tool calls ``index``, ``id``, function name and a piece of the
arguments) and gets back the events to yield, then the finished `AssistantMessage`.
`complete_tool_calls` applies the same finalization to a response that was not streamed.

OpenAI sends, for each tool call, a first delta with ``index``, ``id``, the name and empty
arguments, then deltas with only ``index`` and a piece of the arguments. Compatible servers
deviate (see `intentflow.testing.StreamQuirks`): no ``index``, ``index`` 0 for every call,
the id and name repeated on every delta, each call whole in one delta, no ``id`` at all. A
tool-call delta is matched to a call by these rules, in order:

1. It carries an id that an earlier call already has: it belongs to that call (servers that
   repeat the id on every delta), unless that call began at another ``index``: then the
   index decides (servers that give every parallel call of a reply the same id), and the
   delta belongs to the latest call with its index and this id, or starts a new call.
2. It carries an id not seen before: if it has an ``index`` and the latest call with that
   index has no id yet, it belongs to that call, which takes the id (the id came late).
   Otherwise it starts a new call; that is how parallel calls that all use index 0 but
   differ by id are kept apart.
3. It carries no id: the candidate is the latest call with its ``index`` or, when it has no
   index, the last call of the stream; with no candidate it starts a new call. When it
   carries a name, the candidate already has a name, and either the names differ or the
   candidate's arguments so far are already a complete JSON value, it starts a new call
   (a prefix of a JSON object is never itself complete JSON, so a complete value means
   that call has ended). Otherwise it belongs to the candidate.

Names are never concatenated: a call takes the first non-empty name it is sent and ignores
any repeat. Argument pieces are appended in arrival order.

Finalization gives a call without an id a new one (``new_id``), and a call whose id an
earlier call of the same message already has a new one too, so every tool result can be
matched to its call by id. Empty arguments become ``"{}"``; any other argument text is kept
exactly as received, even when it is not valid JSON: the executor reports that as a typed
outcome, and nothing here raises on it. A call that never got a name keeps ``""`` (the
executor reports an unknown tool).

Known limits: when a server sends neither ids nor a distinguishing index (no ``index``, or
``index`` 0 for every call) and the model calls the same tool twice in a row with empty
arguments on the first call, the second call's first delta cannot be told apart from a
repeat of the first call's name, and the two calls merge. For the same reason, under those
quirks plus a name repeated on every delta, arguments that are complete JSON before their
last piece (a trailing whitespace piece, or a top-level scalar split in two) are split into
two calls. Arguments are JSON objects in practice, so neither arises from a model that
sends any arguments at all.

Examples:
    >>> acc = StreamAccumulator()
    >>> acc.add_tool_call(index=0, id="call_1", name="get_weather", arguments="")
    ToolCallDelta(position=0, id='call_1', name='get_weather', arguments='')
    >>> acc.add_tool_call(index=0, id=None, name=None, arguments='{"city": ')
    ToolCallDelta(position=0, id=None, name=None, arguments='{"city": ')
    >>> _ = acc.add_tool_call(index=0, id=None, name=None, arguments='"Paris"}')
    >>> acc.tool_calls()
    (ToolCall(id='call_1', name='get_weather', arguments='{"city": "Paris"}'),)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable

from intentflow.messages import AssistantMessage, ToolCall
from intentflow.models.base import RefusalDelta, TextDelta, ToolCallDelta

__all__ = ["StreamAccumulator", "complete_tool_calls", "new_call_id"]

# JSON's own whitespace: what json.loads skips around a value (str.strip would skip more).
_JSON_SPACE = " \t\n\r"
_CLOSERS = {"{": "}", "[": "]", '"': '"'}
# A new_id that keeps returning used ids is broken; fail loudly rather than loop forever.
_MAX_ID_ATTEMPTS = 100


def new_call_id() -> str:
    """Make a tool-call id, for calls the provider sent without one.

    Returns:
        ``"call_"`` followed by 24 random hex digits.

    Examples:
        >>> cid = new_call_id()
        >>> cid.startswith("call_"), len(cid)
        (True, 29)
    """
    return "call_" + uuid.uuid4().hex[:24]


class _Call:
    """One tool call being streamed."""

    __slots__ = ("closing", "id", "index", "name", "opening", "parts")

    def __init__(self, id: str | None, index: int | None) -> None:
        self.id = id
        self.index = index
        self.name = ""
        self.parts: list[str] = []
        # First and last non-whitespace characters of the arguments so far: they rule out
        # most incomplete prefixes without parsing, so the check rarely costs more than O(1).
        self.opening = ""
        self.closing = ""

    def append(self, piece: str) -> None:
        self.parts.append(piece)
        stripped = piece.strip(_JSON_SPACE)
        if stripped:
            if not self.opening:
                self.opening = stripped[0]
            self.closing = stripped[-1]

    def arguments(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def is_complete_json(self) -> bool:
        if not self.opening:
            return False
        closer = _CLOSERS.get(self.opening)
        if closer is not None and self.closing != closer:
            return False
        try:
            json.loads(self.arguments())
        except (ValueError, RecursionError):
            return False
        return True


class StreamAccumulator:
    """Collects the deltas of one streamed answer into one assistant message.

    Feed it every delta in arrival order, yield the events it returns, and call `message`
    when the stream ends. The module documentation gives the rules that match tool-call
    deltas to calls.

    Args:
        new_id: Makes an id for a call that has none (or whose id an earlier call has).

    Examples:
        Three parallel calls from a server that sends index 0 for all and no ids:

        >>> acc = StreamAccumulator(new_id=iter(["call_a", "call_b", "call_c"]).__next__)
        >>> for name, args in [("add", '{"a": 1}'), ("add", '{"a": 2}'), ("neg", '{"a": 3}')]:
        ...     _ = acc.add_tool_call(index=0, id=None, name=name, arguments=args)
        >>> for call in acc.tool_calls():
        ...     print(call.id, call.name, call.arguments)
        call_a add {"a": 1}
        call_b add {"a": 2}
        call_c neg {"a": 3}
    """

    __slots__ = (
        "_by_id",
        "_by_index",
        "_calls",
        "_finalized",
        "_new_id",
        "_refusal",
        "_synthesized",
        "_text",
    )

    def __init__(self, *, new_id: Callable[[], str] = new_call_id) -> None:
        self._new_id = new_id
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: list[_Call] = []
        self._by_id: dict[str, int] = {}
        self._by_index: dict[int, int] = {}
        self._finalized: tuple[ToolCall, ...] | None = None
        # Ids made up for calls, by position, so that finalizing again gives the same ids.
        self._synthesized: dict[int, str] = {}

    def add_text(self, text: str | None) -> TextDelta | None:
        """Add a piece of the answer's text.

        Args:
            text: The piece, as the delta carried it.

        Returns:
            The event to yield, or None when the piece was empty or absent.
        """
        if not text:
            return None
        self._text.append(text)
        return TextDelta(text)

    def add_refusal(self, text: str | None) -> RefusalDelta | None:
        """Add a piece of a refusal.

        Args:
            text: The piece, as the delta carried it.

        Returns:
            The event to yield, or None when the piece was empty or absent.
        """
        if not text:
            return None
        self._refusal.append(text)
        return RefusalDelta(text)

    def add_tool_call(
        self, *, index: int | None, id: str | None, name: str | None, arguments: str | None
    ) -> ToolCallDelta:
        """Add one tool-call delta; the module documentation gives the matching rules.

        Args:
            index: The delta's ``index``, None when the server omitted it.
            id: The call id, when the delta carried one.
            name: The function name, when the delta carried one.
            arguments: The piece of the argument text, when the delta carried one.

        Returns:
            The event to yield: the position of the call this delta was matched to and what
            the delta carried.
        """
        self._finalized = None
        calls = self._calls
        position: int | None = None
        if id:
            position = self._by_id.get(id)
            if position is not None and index is not None:
                first = calls[position].index
                if first is not None and first != index:
                    # One id on several indexes: servers that give every parallel call the
                    # same id. The index tells the calls apart.
                    at = self._by_index.get(index)
                    position = at if at is not None and calls[at].id == id else None
            if position is None and index is not None:
                latest = self._by_index.get(index)
                if latest is not None and calls[latest].id is None:
                    position = latest
                    calls[latest].id = id
                    self._by_id[id] = latest
        else:
            if index is not None:
                position = self._by_index.get(index)
            elif calls:
                position = len(calls) - 1
            if position is not None and name:
                candidate = calls[position]
                if candidate.name and (name != candidate.name or candidate.is_complete_json()):
                    position = None
        if position is None:
            position = len(calls)
            calls.append(_Call(id or None, index))
            if id:
                self._by_id[id] = position
        call = calls[position]
        if index is not None and self._by_index.get(index, -1) < position:
            self._by_index[index] = position
        if name and not call.name:
            call.name = name
        if arguments:
            call.append(arguments)
        return ToolCallDelta(
            position=position, id=id or None, name=name or None, arguments=arguments or ""
        )

    @property
    def tool_call_count(self) -> int:
        """How many tool calls the stream has started so far."""
        return len(self._calls)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls, finalized, in the model's order.

        Calling it again gives the same calls with the same ids.
        """
        if self._finalized is None:
            raw = [(c.id, c.name, c.arguments()) for c in self._calls]
            self._finalized = _finalize(raw, self._new_id, self._synthesized)
        return self._finalized

    def message(self, *, agent: str | None = None) -> AssistantMessage:
        """The assistant message streamed so far.

        Args:
            agent: The name of the agent that produced it.

        Returns:
            The message: the text (None when no text was streamed), the refusal (likewise)
            and the finalized tool calls.

        Examples:
            >>> acc = StreamAccumulator()
            >>> _ = acc.add_text("Hel"), acc.add_text(""), acc.add_text("lo")
            >>> message = acc.message(agent="greeter")
            >>> message.content, message.refusal, message.tool_calls, message.agent
            ('Hello', None, (), 'greeter')
        """
        return AssistantMessage(
            content="".join(self._text) if self._text else None,
            refusal="".join(self._refusal) if self._refusal else None,
            tool_calls=self.tool_calls(),
            agent=agent,
        )


def complete_tool_calls(
    calls: Iterable[tuple[str | None, str | None, str | None]],
    *,
    new_id: Callable[[], str] = new_call_id,
) -> tuple[ToolCall, ...]:
    """Finalize the tool calls of a response that was not streamed.

    The same rules as a stream's: missing or repeated ids are replaced, empty arguments
    become ``"{}"``, other arguments are kept exactly, a missing name becomes ``""``.

    Args:
        calls: ``(id, name, arguments)`` of each call, in the model's order.
        new_id: Makes an id for a call that has none (or whose id an earlier call has).

    Returns:
        The finalized calls, in the same order.

    Examples:
        >>> ids = iter(["call_new", "call_other"]).__next__
        >>> for call in complete_tool_calls(
        ...     [("call_1", "add", ""), ("call_1", "add", "{bad"), (None, None, None)], new_id=ids
        ... ):
        ...     print(repr(call.id), repr(call.name), call.arguments)
        'call_1' 'add' {}
        'call_new' 'add' {bad
        'call_other' '' {}
    """
    raw = [(id, name or "", arguments or "") for id, name, arguments in calls]
    return _finalize(raw, new_id, {})


def _finalize(
    raw: list[tuple[str | None, str, str]],
    new_id: Callable[[], str],
    synthesized: dict[int, str],
) -> tuple[ToolCall, ...]:
    # Every id the provider sent is reserved up front, so a made-up id can never collide
    # with one that a later call carries.
    taken = {id for id, _, _ in raw if id}
    seen: set[str] = set()
    finalized = []
    for position, (id, name, arguments) in enumerate(raw):
        if not id or id in seen:
            id = synthesized.get(position)
            if id is None or id in taken:
                id = _fresh_id(new_id, taken)
            synthesized[position] = id
        seen.add(id)
        taken.add(id)
        finalized.append(ToolCall(id=id, name=name, arguments=arguments or "{}"))
    return tuple(finalized)


def _fresh_id(new_id: Callable[[], str], taken: set[str]) -> str:
    for _ in range(_MAX_ID_ATTEMPTS):
        candidate = new_id()
        if candidate and candidate not in taken:
            return candidate
    raise ValueError(
        f"new_id returned only empty or already used ids in {_MAX_ID_ATTEMPTS} attempts"
    )
