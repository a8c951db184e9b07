"""The loop detector: repeats, same results, alternations, ping-pong, escalation, policy."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentflow.agents.loops import (
    LoopDetector,
    LoopPolicy,
    LoopVerdict,
    call_signature,
    result_digest,
)
from intentflow.errors import LoopDetected
from intentflow.messages import ToolCall
from intentflow.toolsets.outcomes import OutcomeKind, ToolCallOutcome, ToolError

_ids = itertools.count(1)


def ok(
    name: str, args: dict[str, Any] | None = None, content: str | None = None
) -> ToolCallOutcome:
    """A successful call; without ``content``, every result is different."""
    n = next(_ids)
    return ToolCallOutcome(
        f"call_{n}",
        name,
        name,
        OutcomeKind.SUCCESS,
        content if content is not None else f'{{"n": {n}}}',
        arguments=args if args is not None else {},
    )


def failed(
    name: str,
    args: dict[str, Any] | None = None,
    kind: OutcomeKind = OutcomeKind.TOOL_ERROR,
    message: str = "the tool failed: ValueError",
) -> ToolCallOutcome:
    error = ToolError(kind, message, hint="Do not retry with the same arguments.")
    return ToolCallOutcome(
        f"call_{next(_ids)}",
        name,
        name if kind is not OutcomeKind.UNKNOWN_TOOL else None,
        kind,
        error.to_content(),
        arguments=args,
        error=error,
    )


def feed(detector: LoopDetector, *outcomes: ToolCallOutcome, agent: str = "a") -> list[Any]:
    """One turn per outcome; the verdicts (or None) of each turn."""
    return [detector.observe_calls(agent, [o]) for o in outcomes]


def verdicts(results: list[Any]) -> list[tuple[int, str]]:
    """(index of the turn, kind) for each turn that produced a verdict."""
    return [(i, v.kind) for i, v in enumerate(results) if v is not None]


PARIS = {"city": "Paris"}


# --------------------------------------------------------------------------- thresholds


def test_same_result_is_detected_at_its_threshold_and_not_before() -> None:
    detector = LoopDetector()
    assert detector.observe_calls("a", [ok("get_weather", PARIS, "18C")]) is None
    verdict = detector.observe_calls("a", [ok("get_weather", PARIS, "18C")])
    assert verdict is not None
    assert (verdict.kind, verdict.action, verdict.level, verdict.count) == (
        "same_result",
        "note",
        1,
        2,
    )
    assert verdict.signature == 'get_weather({"city":"Paris"})'


def test_a_higher_same_result_threshold() -> None:
    detector = LoopDetector(LoopPolicy(same_result_repeats=3, max_repeats=4))
    results = feed(detector, *(ok("get_weather", PARIS, "18C") for _ in range(3)))
    assert verdicts(results) == [(2, "same_result")]


def test_repeat_is_detected_at_its_threshold_and_not_before() -> None:
    detector = LoopDetector()  # max_repeats=3; different results, so never "same_result"
    results = feed(detector, *(ok("search", {"q": "x"}) for _ in range(3)))
    assert verdicts(results) == [(2, "repeat")]
    assert results[2].count == 3


def test_a_higher_repeat_threshold() -> None:
    detector = LoopDetector(LoopPolicy(max_repeats=5))
    results = feed(detector, *(ok("search", {"q": "x"}) for _ in range(5)))
    assert verdicts(results) == [(4, "repeat")]


def test_same_result_is_checked_before_repeat() -> None:
    detector = LoopDetector(LoopPolicy(max_repeats=2, same_result_repeats=2))
    results = feed(detector, ok("search", {"q": "x"}, "r"), ok("search", {"q": "x"}, "r"))
    assert verdicts(results) == [(1, "same_result")]


def test_a_repeat_with_a_different_result_each_time_is_a_repeat() -> None:
    detector = LoopDetector(LoopPolicy(max_repeats=2, same_result_repeats=2))
    results = feed(detector, ok("search", {"q": "x"}, "r1"), ok("search", {"q": "x"}, "r2"))
    assert verdicts(results) == [(1, "repeat")]


def test_alternation_is_detected_at_two_cycles_and_not_before() -> None:
    detector = LoopDetector()
    a, b = {"q": "a"}, {"id": 1}
    results = feed(detector, ok("search", a), ok("fetch", b), ok("search", a), ok("fetch", b))
    assert verdicts(results) == [(3, "alternation")]
    verdict = results[3]
    assert verdict.signature == 'search({"q":"a"}) <-> fetch({"id":1})'
    assert verdict.count == 2


def test_alternation_of_one_tool_with_two_argument_sets() -> None:
    detector = LoopDetector()
    results = feed(detector, *(ok("page", {"n": n % 2}) for n in range(4)))
    assert verdicts(results) == [(3, "alternation")]


def test_a_higher_alternation_threshold() -> None:
    # Three cycles visit each call three times: max_repeats must be above that.
    detector = LoopDetector(LoopPolicy(alternation_cycles=3, max_repeats=4))
    results = feed(detector, *(ok("page", {"n": n % 2}) for n in range(6)))
    assert verdicts(results) == [(5, "alternation")]


def test_an_alternation_must_be_consecutive() -> None:
    detector = LoopDetector()
    calls = [ok("a"), ok("b"), ok("c"), ok("a"), ok("b"), ok("c")]
    assert verdicts(feed(detector, *calls)) == []


def test_an_alternation_of_the_same_results_is_caught_earlier_as_same_result() -> None:
    detector = LoopDetector()
    results = feed(detector, ok("a", {}, "ra"), ok("b", {}, "rb"), ok("a", {}, "ra"))
    assert verdicts(results) == [(2, "same_result")]


def test_distinct_calls_are_never_a_loop() -> None:
    detector = LoopDetector()
    results = feed(detector, *(ok("search", {"q": f"query {n}"}, "same") for n in range(50)))
    assert verdicts(results) == []


# --------------------------------------------------------------------------- window


def test_repeats_spread_beyond_the_window_are_not_a_loop() -> None:
    def run(window: int) -> list[tuple[int, str]]:
        detector = LoopDetector(LoopPolicy(window=window))
        calls = []
        for n in range(3):
            calls.append(ok("search", {"q": "x"}))
            if n < 2:
                calls += [ok("other", {"n": n}), ok("more", {"n": n})]
        return verdicts(feed(detector, *calls))  # search at 0, 3 and 6

    assert run(window=6) == []
    assert run(window=7) == [(6, "repeat")]


def test_the_window_is_shared_by_the_agents_of_a_run() -> None:
    detector = LoopDetector()
    assert detector.observe_calls("triage", [ok("lookup", {"id": 7}, "r")]) is None
    verdict = detector.observe_calls("billing", [ok("lookup", {"id": 7}, "r")])
    assert verdict is not None
    assert verdict.agent == "billing"
    assert verdict.path == ("triage", "billing")


# --------------------------------------------------------------------------- signatures


def test_key_order_and_whitespace_do_not_matter() -> None:
    one = call_signature("f", '{"b": 2,   "a": {"y": [1, 2], "x": null}}')
    two = call_signature("f", '{"a":{"x":null,"y":[1,2]},"b":2}')
    three = call_signature("f", {"b": 2, "a": {"y": [1, 2], "x": None}})
    assert one == two == three == 'f({"a":{"x":null,"y":[1,2]},"b":2})'


def test_canonical_values() -> None:
    assert call_signature("f", {"x": 1.0}) == call_signature("f", {"x": 1}) == 'f({"x":1})'
    assert call_signature("f", {"x": 1.5}) == 'f({"x":1.5})'
    assert call_signature("f", {"x": True}) != call_signature("f", {"x": 1})
    assert call_signature("f", {"x": "1"}) != call_signature("f", {"x": 1})
    assert call_signature("f", {"x": "Paris "}) != call_signature("f", {"x": "Paris"})
    assert call_signature("f", {"x": {3, 1, 2}}) == 'f({"x":[1,2,3]})'
    assert call_signature("f", {"x": (1, 2)}) == 'f({"x":[1,2]})'
    assert call_signature("f", {"city": "Zürich"}) == 'f({"city":"Zürich"})'
    assert call_signature("f", "") == call_signature("f", "{}") == "f({})"
    assert call_signature("f", '{"a": 1') == 'f({"a": 1)'
    assert call_signature("f", {}) != call_signature("g", {})


def test_canonical_values_of_python_objects() -> None:
    from datetime import date
    from enum import Enum

    from pydantic import BaseModel

    class Unit(Enum):
        C = "celsius"

    class Place(BaseModel):
        city: str
        zip: int | None = None

    signature = call_signature(
        "f", {"when": date(2024, 5, 1), "unit": Unit.C, "at": Place(city="X")}
    )
    assert signature == 'f({"at":{"city":"X","zip":null},"unit":"celsius","when":"2024-05-01"})'


def test_result_digest_is_short_and_stable() -> None:
    assert result_digest("abc") == result_digest("abc")
    assert result_digest("abc") != result_digest("abd")
    assert len(result_digest("x" * 10_000)) == 16


def test_the_detector_compares_canonical_arguments() -> None:
    detector = LoopDetector()
    first = ok("f", {"b": 2, "a": 1.0}, "r")
    second = ok("f", {"a": 1, "b": 2}, "r")
    assert detector.observe_calls("a", [first]) is None
    assert detector.observe_calls("a", [second]) is not None


def test_raw_arguments_identify_calls_that_never_validated() -> None:
    detector = LoopDetector()
    verdict = None
    for text in ['{"city": "Paris", "days": "x"}', '{"days":"x","city":"Paris"}']:
        outcome = failed("forecast", None, OutcomeKind.INVALID_ARGUMENTS, "days: not an int")
        call = ToolCall(id=outcome.tool_call_id, name="forecast", arguments=text)
        verdict = detector.observe_calls("a", [outcome], [call])
    assert verdict is not None
    assert verdict.kind == "same_result"
    assert verdict.signature == 'forecast({"city":"Paris","days":"x"})'


def test_invalid_json_is_compared_verbatim() -> None:
    detector = LoopDetector(LoopPolicy(same_result_repeats=2))
    results: list[LoopVerdict | None] = []
    for text in ['{"city": "Par', '{"city": "Pa', '{"city": "Par']:
        outcome = failed("forecast", None, OutcomeKind.INVALID_JSON, "unexpected end")
        call = ToolCall(id=outcome.tool_call_id, name="forecast", arguments=text)
        results.append(detector.observe_calls("a", [outcome], [call]))
    assert verdicts(results) == [(2, "same_result")]
    assert results[2] is not None
    assert results[2].signature == 'forecast({"city": "Par)'


def test_without_arguments_the_result_stands_in_for_them() -> None:
    detector = LoopDetector()
    first = failed("nope", None, OutcomeKind.UNKNOWN_TOOL, "tool 'nope' is not available")
    other = failed("nope", None, OutcomeKind.INVALID_JSON, "bad json")
    same = failed("nope", None, OutcomeKind.UNKNOWN_TOOL, "tool 'nope' is not available")
    results = feed(detector, first, other, same)
    assert verdicts(results) == [(2, "same_result")]
    assert results[2].signature == "nope(…)"


def test_names_are_the_ones_the_model_used() -> None:
    detector = LoopDetector()
    outcome = ToolCallOutcome("c1", "weather", "get_weather_v2", OutcomeKind.SUCCESS, "r", None, {})
    again = ToolCallOutcome("c2", "weather", "get_weather_v2", OutcomeKind.SUCCESS, "r", None, {})
    detector.observe_calls("a", [outcome])
    verdict = detector.observe_calls("a", [again])
    assert verdict is not None
    assert verdict.signature == "weather({})"
    assert "weather({})" in verdict.message
    assert "get_weather_v2" not in verdict.message


# --------------------------------------------------------------------------- failures


def test_the_same_failing_call_is_a_loop_and_the_note_quotes_the_error() -> None:
    detector = LoopDetector()
    results = feed(detector, failed("charge", {"amount": 5}), failed("charge", {"amount": 5}))
    verdict = results[1]
    assert verdict is not None
    assert verdict.kind == "same_result"
    assert "failed the same way" in verdict.message
    assert "ValueError" in verdict.message
    assert "charge" in verdict.message


def test_a_success_and_a_failure_of_the_same_call_are_different_results() -> None:
    detector = LoopDetector()
    results = feed(detector, ok("charge", {"amount": 5}, "done"), failed("charge", {"amount": 5}))
    assert verdicts(results) == []
    verdict = detector.observe_calls("a", [failed("charge", {"amount": 5})])
    assert verdict is not None
    assert verdict.kind == "same_result"


# --------------------------------------------------------------------------- exempt tools


def test_exempt_tools_are_never_counted() -> None:
    detector = LoopDetector(LoopPolicy(exempt=["job_status"]))
    results = feed(detector, *(ok("job_status", {"id": 1}, "running") for _ in range(20)))
    assert verdicts(results) == []
    assert detector.level == 0


def test_a_single_exempt_name_may_be_a_string() -> None:
    assert LoopPolicy(exempt="job_status").exempt == frozenset({"job_status"})


def test_exempt_matches_the_tools_own_name_too() -> None:
    detector = LoopDetector(LoopPolicy(exempt={"get_job_status"}))
    for _ in range(5):
        outcome = ToolCallOutcome(
            f"c{next(_ids)}", "status", "get_job_status", OutcomeKind.SUCCESS, "running", None, {}
        )
        assert detector.observe_calls("a", [outcome]) is None


def test_exempt_tools_do_not_break_up_an_alternation() -> None:
    detector = LoopDetector(LoopPolicy(exempt={"poll"}))
    calls = []
    for n in range(4):
        calls += [ok("page", {"n": n % 2}), ok("poll", {}, "running")]
    assert verdicts(feed(detector, *calls)) == [(6, "alternation")]


def test_exempt_tools_take_no_place_in_the_window() -> None:
    def run(filler: str) -> list[tuple[int, str]]:
        detector = LoopDetector(LoopPolicy(window=4, exempt={"poll"}))
        calls = []
        for _ in range(3):
            calls += [ok("search", {"q": "x"}), *(ok(filler, {"n": next(_ids)}) for _ in range(5))]
        return verdicts(feed(detector, *calls))

    assert run("other") == []  # counted calls push the searches out of the window
    assert run("poll") == [(12, "repeat")]  # polls do not


# --------------------------------------------------------------------------- escalation


def test_the_default_escalation_is_note_restrict_stop() -> None:
    detector = LoopDetector()
    actions = []
    for _ in range(6):
        verdict = detector.observe_calls("a", [ok("get_weather", PARIS, "18C")])
        actions.append(verdict.action if verdict else None)
    # A note at the second identical call; each call after it ignores the note.
    assert actions == [None, "note", "restrict", "stop", "stop", "stop"]
    assert detector.level == 5
    assert [v.level for v in detector.detections] == [1, 2, 3, 4, 5]
    assert [v.relapse for v in detector.detections] == [False, True, True, True, True]


def test_escalation_is_per_run_whatever_the_loop() -> None:
    detector = LoopDetector()
    first = feed(detector, ok("a", {}, "r"), ok("a", {}, "r"))[1]
    second = feed(detector, *(ok("b", {"n": n % 2}) for n in range(4)))[3]
    detector.observe_handoff("x", "y")
    detector.observe_handoff("y", "x")
    third = detector.observe_handoff("x", "y")
    assert third is not None
    assert [first.kind, second.kind, third.kind] == ["same_result", "alternation", "ping_pong"]
    assert [first.action, second.action, third.action] == ["note", "restrict", "stop"]


@pytest.mark.parametrize(
    ("escalation", "expected"),
    [
        (("stop",), ["stop", "stop"]),
        (("note", "note", "stop"), ["note", "note", "stop", "stop"]),
        (["restrict"], ["restrict", "restrict"]),
        (("note",), ["note", "note", "note"]),
    ],
)
def test_custom_escalations(escalation: Any, expected: list[str]) -> None:
    detector = LoopDetector(LoopPolicy(escalation=escalation))
    detector.observe_calls("a", [ok("f", {}, "r")])
    actions = [detector.observe_calls("a", [ok("f", {}, "r")]) for _ in expected]
    assert [v.action for v in actions if v is not None] == expected


def test_the_restrict_note_says_tools_are_disabled() -> None:
    detector = LoopDetector()
    note, restrict = feed(detector, *(ok("f", {}, "r") for _ in range(3)))[1:]
    assert "disabled" not in note.message
    assert "tools are disabled for your next reply" in restrict.message


def test_evidence_is_consumed_so_a_changed_model_is_not_punished() -> None:
    detector = LoopDetector()
    feed(detector, ok("search", {"q": "x"}, "r"), ok("search", {"q": "x"}, "r"))
    assert detector.level == 1
    results = feed(detector, *(ok("search", {"q": f"other {n}"}) for n in range(10)))
    assert verdicts(results) == []
    assert detector.level == 1


def test_a_consumed_call_escalates_again_only_while_in_the_window() -> None:
    detector = LoopDetector(LoopPolicy(window=4))
    feed(detector, ok("f", {}, "r"), ok("f", {}, "r"))
    feed(detector, ok("g", {"n": 1}), ok("g", {"n": 2}), ok("g", {"n": 3}))
    # The detected calls have left the window: f is a fresh call again.
    assert detector.observe_calls("a", [ok("f", {}, "r")]) is None
    verdict = detector.observe_calls("a", [ok("f", {}, "r")])
    assert verdict is not None
    assert not verdict.relapse


def test_after_warning_sets_how_many_relapses_escalate() -> None:
    detector = LoopDetector(LoopPolicy(after_warning=2))
    results = feed(detector, *(ok("f", {}, "r") for _ in range(6)))
    assert [(v.level, v.action) for v in results if v is not None] == [
        (1, "note"),
        (2, "restrict"),
        (3, "stop"),
    ]
    assert verdicts(results) == [(1, "same_result"), (3, "same_result"), (5, "same_result")]


def test_a_relapse_with_a_new_result_is_a_repeat() -> None:
    detector = LoopDetector()
    feed(detector, ok("f", {}, "r"), ok("f", {}, "r"))
    verdict = detector.observe_calls("a", [ok("f", {}, "changed")])
    assert verdict is not None
    assert (verdict.kind, verdict.relapse, verdict.action) == ("repeat", True, "restrict")
    assert "(again)" in verdict.message


def test_an_alternation_relapses_on_either_call() -> None:
    detector = LoopDetector()
    feed(detector, *(ok("page", {"n": n % 2}) for n in range(4)))
    verdict = detector.observe_calls("a", [ok("page", {"n": 1})])
    assert verdict is not None
    assert (verdict.kind, verdict.relapse, verdict.level) == ("alternation", True, 2)


def test_reset_window_forgets_calls_and_keeps_the_level() -> None:
    detector = LoopDetector()
    feed(detector, ok("f", {}, "r"), ok("f", {}, "r"))
    detector.reset_window()
    assert detector.observe_calls("a", [ok("f", {}, "r")]) is None  # no relapse: forgotten
    verdict = detector.observe_calls("a", [ok("f", {}, "r")])
    assert verdict is not None
    assert (verdict.level, verdict.action, verdict.relapse) == (2, "restrict", False)


# --------------------------------------------------------------------------- turns


def test_parallel_calls_in_one_turn_count_in_the_models_order() -> None:
    detector = LoopDetector()
    turn = [
        ok("search", {"q": "x"}),
        ok("other"),
        ok("search", {"q": "x"}),
        ok("search", {"q": "x"}),
    ]
    verdict = detector.observe_calls("a", turn)
    assert verdict is not None
    assert (verdict.kind, verdict.count, verdict.level) == ("repeat", 3, 1)


def test_one_verdict_per_turn_the_strongest_and_the_others_are_named() -> None:
    detector = LoopDetector()
    turn = [
        ok("s", {"q": 1}),
        ok("s", {"q": 1}),
        ok("s", {"q": 1}),
        ok("w", {}, "r"),
        ok("w", {}, "r"),
    ]
    verdict = detector.observe_calls("a", turn)
    assert verdict is not None
    assert verdict.kind == "same_result"
    assert verdict.signature == "w({})"
    assert 's({"q":1})' in verdict.message
    assert detector.level == 1
    # Both loops were consumed: nothing fires on the next turn unless the model persists.
    assert detector.observe_calls("a", [ok("z")]) is None
    assert detector.observe_calls("a", [ok("s", {"q": 1})]) is not None


def test_a_turn_without_counted_calls_is_no_verdict() -> None:
    detector = LoopDetector(LoopPolicy(exempt={"poll"}))
    assert detector.observe_calls("a", []) is None
    assert detector.observe_calls("a", [ok("poll")]) is None


# --------------------------------------------------------------------------- messages


def test_the_note_names_the_call_the_count_and_the_result() -> None:
    detector = LoopDetector()
    detector.observe_calls("a", [ok("get_weather", PARIS, '{"temp_c": 18}')])
    verdict = detector.observe_calls("a", [ok("get_weather", PARIS, '{"temp_c": 18}')])
    assert verdict is not None
    message = verdict.message
    assert 'get_weather({"city":"Paris"})' in message
    assert "2 times" in message
    assert '{"temp_c": 18}' in message
    assert "use the result you already have" in message
    assert "answer the user" in message


def test_a_repeat_note_quotes_the_last_result() -> None:
    detector = LoopDetector()
    results = feed(detector, *(ok("search", {"q": "x"}, f"result {n}") for n in range(3)))
    message = results[2].message
    assert 'search({"q":"x"})' in message
    assert "3 times" in message
    assert "result 2" in message
    assert "different arguments" in message


def test_an_alternation_note_quotes_both_results() -> None:
    detector = LoopDetector()
    calls = [
        ok("search", {"q": "a"}, f"s{n}") if n % 2 == 0 else ok("fetch", {}, f"f{n}")
        for n in range(4)
    ]
    message = feed(detector, *calls)[3].message
    assert 'search({"q":"a"})' in message
    assert "fetch({})" in message
    assert "s2" in message
    assert "f3" in message


def test_long_results_and_arguments_are_cut() -> None:
    detector = LoopDetector()
    big = "x" * 5000
    feed(detector, ok("f", {"text": big}, big))
    verdict = detector.observe_calls("a", [ok("f", {"text": big}, big)])
    assert verdict is not None
    assert len(verdict.message) < 1000
    assert "…" in verdict.message


# --------------------------------------------------------------------------- the stop


def test_the_stop_is_a_typed_loop_detected() -> None:
    detector = LoopDetector(LoopPolicy(escalation=("note", "restrict", "stop")))
    verdicts_ = [
        detector.observe_calls("researcher", [ok("search", {"q": "x"}, "r")]) for _ in range(4)
    ]
    stop = verdicts_[-1]
    assert stop is not None
    assert stop.action == "stop"
    error = stop.error(["triage", "researcher"])
    assert isinstance(error, LoopDetected)
    assert error.kind == "same_result"
    assert error.signature == 'search({"q":"x"})'
    assert error.path == ("triage", "researcher")
    text = str(error)
    assert text.startswith("loop detected (same_result): ")
    assert 'search({"q":"x"})' in text
    assert "detection 3 of this run, after 2 earlier warnings" in text
    assert "again after a warning" in text


def test_the_stop_defaults_to_the_observed_path() -> None:
    detector = LoopDetector(LoopPolicy(escalation=("stop",)))
    detector.observe_handoff("triage", "billing")
    detector.observe_calls("billing", [ok("f", {}, "r")])
    verdict = detector.observe_calls("billing", [ok("f", {}, "r")])
    assert verdict is not None
    error = verdict.error()
    assert error.path == ("triage", "billing")
    assert "the first detection of this run" in str(error)


def test_verdict_error_for_each_kind() -> None:
    for kind, needle in [
        ("repeat", "was called 3 times"),
        ("same_result", "with the same result"),
        ("alternation", "alternated for 3 cycles"),
        ("ping_pong", "handed back and forth"),
    ]:
        verdict = LoopVerdict(kind, "stop", "sig", "msg", level=1, count=3)  # type: ignore[arg-type]
        assert needle in str(verdict.error())


# --------------------------------------------------------------------------- handoffs


def handoffs(detector: LoopDetector, *agents: str) -> list[LoopVerdict | None]:
    return [detector.observe_handoff(s, t) for s, t in itertools.pairwise(agents)]


def test_ping_pong_is_detected_at_its_threshold() -> None:
    detector = LoopDetector()
    results = handoffs(detector, "billing", "support", "billing", "support")
    assert results[:2] == [None, None]
    verdict = results[2]
    assert verdict is not None
    assert verdict.kind == "ping_pong"
    assert verdict.signature == "billing -> support -> billing -> support"
    assert verdict.agent == "support"
    assert verdict.count == 2
    assert "billing -> support -> billing -> support" in verdict.message
    assert "answer the user" in verdict.message


def test_a_higher_ping_pong_threshold() -> None:
    detector = LoopDetector(LoopPolicy(ping_pong=3))
    results = handoffs(detector, "x", "y", "x", "y", "x", "y")
    assert [i for i, v in enumerate(results) if v is not None] == [4]


@pytest.mark.parametrize(
    "agents",
    [
        ("a", "b", "c", "d"),
        ("a", "b", "a"),
        ("a", "b", "a", "c", "a", "d"),
        ("a", "b", "c", "a", "b", "c", "a"),
    ],
)
def test_no_ping_pong_for_chains_and_single_returns(agents: tuple[str, ...]) -> None:
    detector = LoopDetector()
    assert handoffs(detector, *agents) == [None] * (len(agents) - 1)


def test_tool_calls_between_handoffs_do_not_hide_a_ping_pong() -> None:
    detector = LoopDetector()
    verdict = None
    for source, target in [("b", "s"), ("s", "b"), ("b", "s")]:
        detector.observe_calls(source, [ok("work", {"by": source})])
        verdict = detector.observe_handoff(source, target)
    assert verdict is not None
    assert verdict.kind == "ping_pong"


def test_a_ping_pong_escalates_on_the_next_handoff_between_the_pair() -> None:
    detector = LoopDetector()
    handoffs(detector, "billing", "support", "billing", "support")
    verdict = detector.observe_handoff("support", "billing")
    assert verdict is not None
    assert (verdict.action, verdict.relapse) == ("restrict", True)
    assert verdict.signature == "billing -> support -> billing -> support -> billing"


def test_a_handoff_to_a_third_agent_ends_the_ping_pong() -> None:
    detector = LoopDetector()
    handoffs(detector, "billing", "support", "billing", "support")
    assert handoffs(detector, "support", "tech", "support", "billing") == [None, None, None]
    assert detector.level == 1


def test_a_handoff_from_an_unseen_node_continues_the_sequence() -> None:
    detector = LoopDetector()
    assert detector.observe_handoff("x", "y") is None
    assert detector.observe_handoff("z", "x") is None  # y -> z happened in code
    assert detector.path == ("x", "y", "z", "x")


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window must be at least 1"),
        ({"max_repeats": 1}, "max_repeats must be at least 2"),
        ({"same_result_repeats": 1}, "same_result_repeats must be at least 2"),
        ({"alternation_cycles": 1}, "alternation_cycles must be at least 2"),
        ({"ping_pong": 0}, "ping_pong must be at least 2"),
        ({"after_warning": 0}, "after_warning must be at least 1"),
        ({"max_repeats": 2.5}, "max_repeats must be an integer"),
        ({"window": True}, "window must be an integer"),
        ({"window": 2}, "window=2 is too small for max_repeats=3"),
        ({"max_repeats": 9}, "window=8 is too small for max_repeats=9"),
        ({"window": 3, "max_repeats": 2}, "too small for alternation_cycles=2"),
        ({"alternation_cycles": 5}, "an alternation needs 10 calls"),
        ({"escalation": ()}, "escalation must name at least one action"),
        ({"escalation": ("note", "panic")}, "unknown escalation action"),
        ({"exempt": [1]}, "exempt must hold tool names"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoopPolicy(**kwargs)


def test_policy_normalises_its_collections() -> None:
    policy = LoopPolicy(escalation=["note", "stop"], exempt=["poll", "poll", "clock"])
    assert policy.escalation == ("note", "stop")
    assert policy.exempt == frozenset({"poll", "clock"})
    assert LoopPolicy(escalation="stop").escalation == ("stop",)  # type: ignore[arg-type]
    assert hash(policy) == hash(LoopPolicy(escalation=("note", "stop"), exempt={"clock", "poll"}))


def test_policy_action_past_the_end_repeats_the_last() -> None:
    policy = LoopPolicy(escalation=("note", "restrict"))
    assert [policy.action(n) for n in (1, 2, 3, 10)] == ["note", "restrict", "restrict", "restrict"]


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
argument_dicts = st.dictionaries(st.text(max_size=4), json_values, max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), argument_dicts),
        max_size=30,
        unique_by=lambda c: call_signature(c[0], c[1]),
    ),
    turn_sizes=st.lists(st.integers(1, 4), max_size=30),
    same_results=st.booleans(),
)
def test_distinct_signatures_are_never_a_loop(
    calls: list[tuple[str, dict[str, Any]]], turn_sizes: list[int], same_results: bool
) -> None:
    detector = LoopDetector()
    outcomes = [ok(name, args, "same" if same_results else None) for name, args in calls]
    sizes = iter(turn_sizes)
    while outcomes:
        size = next(sizes, 1)
        turn, outcomes = outcomes[:size], outcomes[size:]
        assert detector.observe_calls("agent", turn) is None
    assert detector.level == 0


@settings(max_examples=200, deadline=None)
@given(arguments=argument_dicts, seed=st.randoms(use_true_random=False))
def test_signatures_ignore_key_order_and_whitespace(arguments: dict[str, Any], seed: Any) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            seed.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    other = shuffled(arguments)
    text = json.dumps(other, indent=seed.choice([None, 1, 4]), ensure_ascii=seed.random() < 0.5)
    assert call_signature("f", other) == call_signature("f", arguments) == call_signature("f", text)


@settings(max_examples=100, deadline=None)
@given(agents=st.lists(st.text(min_size=1, max_size=3), min_size=2, max_size=20, unique=True))
def test_a_chain_of_distinct_agents_is_never_a_ping_pong(agents: list[str]) -> None:
    detector = LoopDetector()
    assert all(v is None for v in handoffs(detector, *agents))
