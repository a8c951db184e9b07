"""StreamAccumulator: streamed deltas of every known provider shape back into whole calls."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from intentflow.messages import ToolCall
from intentflow.models.base import RefusalDelta, TextDelta, ToolCallDelta
from intentflow.models.stream import StreamAccumulator, complete_tool_calls, new_call_id


class Quirks(NamedTuple):
    """The fields of `intentflow.testing.StreamQuirks`, kept local so the test stands alone."""

    omit_index: bool = False
    index_always_zero: bool = False
    repeat_id: bool = False
    whole_call_per_chunk: bool = False
    omit_id: bool = False


# Every combination the fake server accepts: omit_index and index_always_zero exclude each other.
ALLOWED_QUIRKS = [
    q
    for q in itertools.starmap(Quirks, itertools.product((False, True), repeat=5))
    if not (q.omit_index and q.index_always_zero)
]


class Call(NamedTuple):
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Delta:
    index: int | None
    id: str | None
    name: str | None
    arguments: str


def render(position: int, call: Call, pieces: Sequence[str], quirks: Quirks) -> list[Delta]:
    """The deltas of one call, the way `FakeOpenAIServer` streams them under ``quirks``."""
    index = None if quirks.omit_index else (0 if quirks.index_always_zero else position)
    id = None if quirks.omit_id else call.id
    if quirks.whole_call_per_chunk:
        return [Delta(index, id, call.name, call.arguments)]
    first = Delta(index, id, call.name, "")
    if quirks.repeat_id:
        return [first, *(Delta(index, id, call.name, p) for p in pieces)]
    return [first, *(Delta(index, None, None, p) for p in pieces)]


def chunks(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(calls: Sequence[Call], quirks: Quirks) -> list[tuple[int, Delta]]:
    """(original position, delta) for every delta of ``calls``, in order."""
    return [
        (position, delta)
        for position, call in enumerate(calls)
        for delta in render(position, call, chunks(call.arguments), quirks)
    ]


def feed(acc: StreamAccumulator, deltas: Sequence[Delta]) -> list[ToolCallDelta]:
    return [
        acc.add_tool_call(index=d.index, id=d.id, name=d.name, arguments=d.arguments)
        for d in deltas
    ]


def counter(prefix: str = "call_gen_") -> Callable[[], str]:
    numbers: Iterator[int] = itertools.count()
    return lambda: f"{prefix}{next(numbers)}"


def ambiguous(calls: Sequence[Call], quirks: Quirks) -> bool:
    """The documented limit: nothing tells a new call of the same tool from a repeated name.

    Without ids and without a distinguishing index, the second call's first delta (a name)
    matches the previous call; only complete arguments on that call show it has ended, and
    empty arguments never are complete.
    """
    if not quirks.omit_id or not (quirks.omit_index or quirks.index_always_zero):
        return False
    return any(a.name == b.name and a.arguments == "" for a, b in itertools.pairwise(calls))


SAMPLE = [
    Call("call_w1", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
    Call("call_w2", "get_weather", '{"city": "Rome", "unit": "celsius"}'),
    Call("call_a1", "add", '{"a": 1, "b": 2}'),
]


# ---------------------------------------------------------------------------- helpers


def test_new_call_id_is_call_and_24_hex_digits() -> None:
    ids = {new_call_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)


# ---------------------------------------------------------------------------- OpenAI's shape


def test_openai_one_call() -> None:
    acc = StreamAccumulator()
    events = feed(acc, [d for _, d in stream(SAMPLE[:1], Quirks())])
    assert events[0] == ToolCallDelta(position=0, id="call_w1", name="get_weather", arguments="")
    assert all(e == ToolCallDelta(0, None, None, e.arguments) for e in events[1:])
    assert "".join(e.arguments for e in events) == SAMPLE[0].arguments
    assert acc.tool_calls() == (
        ToolCall(id="call_w1", name="get_weather", arguments=SAMPLE[0].arguments),
    )
    assert acc.tool_call_count == 1


def test_openai_three_parallel_calls() -> None:
    acc = StreamAccumulator()
    rendered = stream(SAMPLE, Quirks())
    events = feed(acc, [d for _, d in rendered])
    assert [e.position for e in events] == [p for p, _ in rendered]
    assert acc.tool_calls() == tuple(
        ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in SAMPLE
    )


# ---------------------------------------------------------------------------- quirks


@pytest.mark.parametrize(
    "quirks",
    ALLOWED_QUIRKS,
    ids=lambda q: "+".join(k for k, v in q._asdict().items() if v) or "none",
)
def test_every_allowed_quirk_combination(quirks: Quirks) -> None:
    acc = StreamAccumulator(new_id=counter())
    rendered = stream(SAMPLE, quirks)
    events = feed(acc, [d for _, d in rendered])
    assert [e.position for e in events] == [p for p, _ in rendered]
    calls = acc.tool_calls()
    assert [(c.name, c.arguments) for c in calls] == [(c.name, c.arguments) for c in SAMPLE]
    if quirks.omit_id:
        assert [c.id for c in calls] == ["call_gen_0", "call_gen_1", "call_gen_2"]
    else:
        assert [c.id for c in calls] == [c.id for c in SAMPLE]


def test_same_tool_twice_index_always_zero_without_ids_does_not_merge() -> None:
    calls = [Call("x", "search", '{"q": "cats"}'), Call("y", "search", '{"q": "dogs"}')]
    for repeat_id in (False, True):
        acc = StreamAccumulator()
        quirks = Quirks(index_always_zero=True, omit_id=True, repeat_id=repeat_id)
        feed(acc, [d for _, d in stream(calls, quirks)])
        got = acc.tool_calls()
        assert [(c.name, c.arguments) for c in got] == [
            ("search", '{"q": "cats"}'),
            ("search", '{"q": "dogs"}'),
        ]
        assert got[0].id != got[1].id


def test_same_tool_twice_whole_calls_without_index_or_ids_does_not_merge() -> None:
    acc = StreamAccumulator()
    quirks = Quirks(omit_index=True, omit_id=True, whole_call_per_chunk=True)
    calls = [
        Call("x", "search", '{"q": "cats"}'),
        Call("y", "search", '{"q": "dogs"}'),
        Call("z", "search", "{}"),
    ]
    events = feed(acc, [d for _, d in stream(calls, quirks)])
    assert [e.position for e in events] == [0, 1, 2]
    assert [c.arguments for c in acc.tool_calls()] == ['{"q": "cats"}', '{"q": "dogs"}', "{}"]


def test_parallel_calls_on_index_zero_kept_apart_by_id() -> None:
    acc = StreamAccumulator()
    feed(
        acc,
        [
            Delta(0, "call_1", "add", ""),
            Delta(0, None, None, '{"a": 1}'),
            Delta(0, "call_2", "add", ""),
            Delta(0, None, None, '{"a": 2}'),
        ],
    )
    assert [(c.id, c.arguments) for c in acc.tool_calls()] == [
        ("call_1", '{"a": 1}'),
        ("call_2", '{"a": 2}'),
    ]


def test_repeated_id_and_name_are_not_concatenated() -> None:
    acc = StreamAccumulator()
    events = feed(acc, [Delta(None, "call_1", "add", p) for p in ["", '{"a"', ": 1}"]])
    assert [e.position for e in events] == [0, 0, 0]
    assert acc.tool_calls() == (ToolCall(id="call_1", name="add", arguments='{"a": 1}'),)


def test_a_call_keeps_its_first_name() -> None:
    acc = StreamAccumulator()
    feed(acc, [Delta(0, "call_1", "add", "{}"), Delta(0, "call_1", "neg", "")])
    assert acc.tool_calls() == (ToolCall(id="call_1", name="add", arguments="{}"),)


def test_late_id_joins_the_call_with_its_index() -> None:
    acc = StreamAccumulator()
    events = feed(
        acc,
        [
            Delta(0, None, "add", ""),
            Delta(0, None, None, '{"a": '),
            Delta(0, "call_late", None, "1}"),
            Delta(1, "call_other", "neg", '{"a": 2}'),
        ],
    )
    assert events[2] == ToolCallDelta(position=0, id="call_late", name=None, arguments="1}")
    assert [(c.id, c.name, c.arguments) for c in acc.tool_calls()] == [
        ("call_late", "add", '{"a": 1}'),
        ("call_other", "neg", '{"a": 2}'),
    ]


def test_interleaved_deltas_of_two_calls_matched_by_index() -> None:
    acc = StreamAccumulator()
    events = feed(
        acc,
        [
            Delta(0, "call_a", "add", ""),
            Delta(1, "call_b", "add", ""),
            Delta(1, None, None, '{"a": '),
            Delta(0, None, None, '{"a": '),
            Delta(0, None, None, "1}"),
            Delta(1, None, None, "2}"),
        ],
    )
    assert [e.position for e in events] == [0, 1, 1, 0, 0, 1]
    assert [c.arguments for c in acc.tool_calls()] == ['{"a": 1}', '{"a": 2}']


def test_a_new_name_without_id_on_a_used_index_starts_a_new_call() -> None:
    acc = StreamAccumulator(new_id=counter())
    events = feed(
        acc,
        [Delta(0, None, "add", '{"a"'), Delta(0, None, "neg", "{}"), Delta(0, None, None, ": 1}")],
    )
    # The second call is the latest one with index 0, so the last piece belongs to it.
    assert [e.position for e in events] == [0, 1, 1]
    assert [(c.name, c.arguments) for c in acc.tool_calls()] == [("add", '{"a"'), ("neg", "{}: 1}")]


def test_name_arriving_after_arguments_is_taken() -> None:
    acc = StreamAccumulator(new_id=counter())
    feed(acc, [Delta(0, None, None, '{"a": 1}'), Delta(0, None, "add", "")])
    assert acc.tool_calls() == (ToolCall(id="call_gen_0", name="add", arguments='{"a": 1}'),)


# ---------------------------------------------------------------------------- text, refusal


def test_text_and_refusal_accumulate() -> None:
    acc = StreamAccumulator()
    assert acc.add_text(None) is None
    assert acc.add_text("") is None
    assert acc.add_refusal(None) is None
    assert acc.message().content is None
    assert acc.message().refusal is None
    assert acc.add_text("Hel") == TextDelta("Hel")
    assert acc.add_text("lo") == TextDelta("lo")
    assert acc.add_refusal("I can't") == RefusalDelta("I can't")
    assert acc.add_refusal(" help.") == RefusalDelta(" help.")
    message = acc.message(agent="support")
    assert (message.content, message.refusal, message.tool_calls, message.agent) == (
        "Hello",
        "I can't help.",
        (),
        "support",
    )


def test_message_carries_the_same_tool_calls_as_tool_calls() -> None:
    acc = StreamAccumulator()
    acc.add_text("Let me check.")
    feed(acc, [Delta(None, None, "add", "{}"), Delta(None, None, "neg", "{}")])
    first = acc.tool_calls()
    assert acc.tool_calls() == first
    assert acc.message().tool_calls == first
    assert acc.message().content == "Let me check."


# ---------------------------------------------------------------------------- finalization


@pytest.mark.parametrize("arguments", ['{"a": ', "not json", '{"a": 1}}', "[", "  ", '"\\u12'])
def test_invalid_or_truncated_arguments_kept_verbatim(arguments: str) -> None:
    acc = StreamAccumulator()
    # With the name repeated and no id or index, the accumulator probes the arguments as JSON.
    feed(acc, [Delta(None, None, "add", arguments), Delta(None, None, "add", "")])
    assert acc.tool_calls()[0].arguments == arguments


def test_deeply_nested_arguments_never_raise() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    acc = StreamAccumulator()
    feed(acc, [Delta(None, None, "add", deep), Delta(None, None, "add", "")])
    assert acc.tool_calls()[0].arguments == deep


def test_empty_arguments_become_an_empty_object() -> None:
    acc = StreamAccumulator()
    feed(acc, [Delta(0, "call_1", "ping", ""), Delta(1, "call_2", "pong", "")])
    assert [c.arguments for c in acc.tool_calls()] == ["{}", "{}"]
    assert complete_tool_calls([("call_1", "ping", None), ("call_2", "ping", "")]) == (
        ToolCall(id="call_1", name="ping", arguments="{}"),
        ToolCall(id="call_2", name="ping", arguments="{}"),
    )


def test_missing_ids_are_made_up_unique_and_stable() -> None:
    acc = StreamAccumulator()
    feed(acc, [d for _, d in stream(SAMPLE, Quirks(omit_id=True))])
    ids = [c.id for c in acc.tool_calls()]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
    assert [c.id for c in acc.tool_calls()] == ids
    assert [c.id for c in acc.message().tool_calls] == ids


def test_made_up_ids_survive_later_deltas() -> None:
    acc = StreamAccumulator(new_id=counter())
    acc.add_tool_call(index=0, id=None, name="add", arguments='{"a": 1}')
    first = acc.tool_calls()
    acc.add_tool_call(index=1, id=None, name="neg", arguments='{"a": 2}')
    second = acc.tool_calls()
    assert second[0] == first[0]
    assert second[1].id == "call_gen_1"


def test_a_provider_id_wins_over_an_earlier_made_up_one() -> None:
    acc = StreamAccumulator(new_id=iter(["call_9", "call_10"]).__next__)
    acc.add_tool_call(index=0, id=None, name="add", arguments="{}")
    assert acc.tool_calls()[0].id == "call_9"
    acc.add_tool_call(index=1, id="call_9", name="neg", arguments="{}")
    assert [c.id for c in acc.tool_calls()] == ["call_10", "call_9"]


def test_made_up_ids_avoid_every_id_the_provider_sent() -> None:
    ids = iter(["call_2", "call_3"]).__next__
    got = complete_tool_calls([(None, "a", "{}"), ("call_2", "b", "{}")], new_id=ids)
    assert [c.id for c in got] == ["call_3", "call_2"]


def test_duplicate_ids_are_replaced_after_the_first() -> None:
    got = complete_tool_calls(
        [
            ("call_1", "a", "{}"),
            ("call_1", "b", "{}"),
            (None, "c", "{}"),
            ("", "d", "{}"),
            ("call_1", "e", "{}"),
        ],
        new_id=counter(),
    )
    assert [c.id for c in got] == ["call_1", "call_gen_0", "call_gen_1", "call_gen_2", "call_gen_3"]
    assert [c.name for c in got] == ["a", "b", "c", "d", "e"]


def test_a_call_without_a_name_keeps_an_empty_name() -> None:
    acc = StreamAccumulator()
    feed(acc, [Delta(0, "call_1", None, '{"a": 1}')])
    assert acc.tool_calls()[0].name == ""
    assert complete_tool_calls([("call_1", None, "{}")])[0].name == ""


def test_a_broken_id_factory_fails_loudly() -> None:
    with pytest.raises(ValueError, match="new_id"):
        complete_tool_calls([("call_1", "a", "{}"), (None, "b", "{}")], new_id=lambda: "call_1")


def test_positions_are_stable_for_the_whole_stream() -> None:
    acc = StreamAccumulator()
    rendered = stream(SAMPLE, Quirks(repeat_id=True, index_always_zero=True))
    events = feed(acc, [d for _, d in rendered])
    for (position, delta), event in zip(rendered, events, strict=True):
        assert event == ToolCallDelta(position, delta.id, delta.name, delta.arguments)
    assert acc.tool_call_count == 3


def test_known_limit_same_tool_after_empty_arguments_merges() -> None:
    """Documented in the module: ambiguous, so the second call joins the first."""
    acc = StreamAccumulator()
    calls = [Call("x", "ping", ""), Call("y", "ping", '{"n": 1}')]
    feed(acc, [d for _, d in stream(calls, Quirks(omit_index=True, omit_id=True))])
    assert [(c.name, c.arguments) for c in acc.tool_calls()] == [("ping", '{"n": 1}')]
    assert ambiguous(calls, Quirks(omit_index=True, omit_id=True))
    # An index that differs per call, or ids, remove the ambiguity.
    assert not ambiguous(calls, Quirks(omit_id=True))
    acc = StreamAccumulator()
    feed(acc, [d for _, d in stream(calls, Quirks(omit_id=True))])
    assert [c.arguments for c in acc.tool_calls()] == ["{}", '{"n": 1}']


# ---------------------------------------------------------------------------- property

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.one_of(
    st.just(""),
    st.builds(
        lambda d, ascii_only: json.dumps(d, ensure_ascii=ascii_only),
        st.dictionaries(st.text(max_size=5), json_values, max_size=4),
        st.booleans(),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), quirks=st.sampled_from(ALLOWED_QUIRKS))
def test_property_any_quirks_any_split_gives_back_the_calls(
    data: st.DataObject, quirks: Quirks
) -> None:
    n = data.draw(st.integers(1, 4), label="n")
    names = data.draw(
        st.lists(st.sampled_from(["search", "add", "get_weather"]), min_size=n, max_size=n)
    )
    ids = data.draw(
        st.lists(
            st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=8),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    calls = [Call(i, name, data.draw(arguments)) for i, name in zip(ids, names, strict=True)]
    assume(not ambiguous(calls, quirks))

    rendered: list[tuple[int, Delta]] = []
    for position, call in enumerate(calls):
        size = len(call.arguments)
        cuts = sorted(data.draw(st.sets(st.integers(1, max(size - 1, 1)), max_size=min(size, 6))))
        bounds = [0, *(c for c in cuts if 0 < c < size), size]
        pieces = [call.arguments[a:b] for a, b in itertools.pairwise(bounds) if a < b]
        assert "".join(pieces) == call.arguments
        rendered += [(position, d) for d in render(position, call, pieces, quirks)]

    acc = StreamAccumulator()
    events = feed(acc, [d for _, d in rendered])

    assert [e.position for e in events] == [p for p, _ in rendered]
    got = acc.message().tool_calls
    assert [(c.name, c.arguments) for c in got] == [(c.name, c.arguments or "{}") for c in calls]
    if quirks.omit_id:
        assert len({c.id for c in got}) == n
        assert all(re.fullmatch(r"call_[0-9a-f]{24}", c.id) for c in got)
    else:
        assert [c.id for c in got] == ids
    assert acc.tool_calls() == got


def test_parallel_calls_that_share_one_id_are_kept_apart_by_index() -> None:
    # DeepSeek/GLM/Kimi-style: every call of a reply carries the same id, indexes differ.
    acc = StreamAccumulator()
    acc.add_tool_call(index=0, id="call_x", name="get_weather", arguments="")
    acc.add_tool_call(index=0, id="call_x", name=None, arguments='{"city":"Paris"}')
    acc.add_tool_call(index=1, id="call_x", name="get_weather", arguments="")
    acc.add_tool_call(index=1, id="call_x", name=None, arguments='{"city":"Rome"}')
    acc.add_tool_call(index=0, id="call_x", name=None, arguments="")
    first, second = acc.tool_calls()
    assert (first.arguments, second.arguments) == ('{"city":"Paris"}', '{"city":"Rome"}')
    assert first.id == "call_x"
    assert second.id != "call_x"  # re-issued, so each result answers its own call
