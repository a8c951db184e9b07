"""The router's decision logic: rules, cascade, stickiness, abstain; and build-time checks."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from intentflow import Toolset
from intentflow.errors import ConfigurationError, ModelAPIError
from intentflow.router import Intent, Prediction, Router, Rule, Stage, match_rules
from intentflow.toolsets.choice import forced

pytestmark = pytest.mark.anyio


class TableClassifier:
    """Answers from a table of text -> scores; counts its calls."""

    def __init__(self, name: str, table: Mapping[str, Mapping[str, float]]) -> None:
        self.name = name
        self.table = table
        self.calls = 0

    async def classify(self, text: str) -> Prediction:
        self.calls += 1
        return Prediction.from_scores(list(self.table.get(text, {}).items()))


class FailingClassifier:
    name = "llm"

    def __init__(self) -> None:
        self.calls = 0

    async def classify(self, text: str) -> Prediction:
        self.calls += 1
        raise ModelAPIError(503, "overloaded")


INTENTS = [
    Intent("refund", examples=["I want my money back"]),
    Intent("order_status", examples=["where is my order"]),
    Intent("small_talk", description="Greetings and chit-chat.", tool_choice="none"),
]

TABLE = {
    "money back please": {"refund": 0.9, "order_status": 0.05, "small_talk": 0.05},
    "hmm": {"refund": 0.4, "order_status": 0.35, "small_talk": 0.25},
    "refund, lol": {"small_talk": 0.6, "refund": 0.3, "order_status": 0.1},
    "and my parcel?": {"order_status": 0.5, "refund": 0.45, "small_talk": 0.05},
}


def router(**kwargs: object) -> Router:
    options: dict[str, object] = {"fallback": "small_talk", "threshold": 0.5}
    options.update(kwargs)
    classifier = options.pop("classifier", TableClassifier("lexical", TABLE))
    return Router(INTENTS, classifier, **options)  # type: ignore[arg-type]


async def test_a_confident_prediction_routes() -> None:
    decision = await router().route("money back please")
    assert decision.intent == "refund"
    assert not decision.abstained
    assert decision.classifier == "lexical"
    assert decision.confidence == 0.9
    assert decision.margin == pytest.approx(0.85)
    assert decision.scores[0] == ("refund", 0.9)
    assert decision.latency > 0
    assert decision.reason == "confident"


async def test_low_confidence_abstains_to_the_fallback_or_to_no_intent() -> None:
    decision = await router().route("hmm")
    assert decision.intent == "small_talk"
    assert decision.abstained
    assert "'refund' at 0.400 (threshold 0.500)" in decision.reason

    no_fallback = await router(fallback=None).route("hmm")
    assert no_fallback.intent is None
    assert no_fallback.abstained


async def test_margin_and_per_intent_thresholds() -> None:
    close = await router(threshold=0.0, margin=0.1).route("and my parcel?")
    assert close.abstained  # 0.5 vs 0.45: too close to call
    strict_refunds = router(threshold=0.0, thresholds={"refund": 0.95})
    assert (await strict_refunds.route("money back please")).abstained
    assert (await strict_refunds.route("and my parcel?")).intent == "order_status"


async def test_an_override_rule_decides_without_classifiers() -> None:
    classifier = TableClassifier("lexical", TABLE)
    rules = [Rule.pattern("order_status", r"\bparcel\b")]
    decision = await router(classifier=classifier, rules=rules).route("and my parcel?")
    assert (decision.intent, decision.classifier, decision.confidence) == (
        "order_status",
        "rules",
        1.0,
    )
    assert decision.reason == "rule override:order_status"
    assert classifier.calls == 0


async def test_a_veto_removes_an_intent_and_re_ranks() -> None:
    rules = [Rule.keywords("small_talk", ["refund"], action="veto")]
    decision = await router(rules=rules, threshold=0.0).route("refund, lol")
    assert decision.intent == "refund"
    assert [name for name, _ in decision.scores] == ["refund", "order_status"]


def test_a_veto_beats_an_override_of_the_same_intent() -> None:
    rules = [
        Rule.keywords("small_talk", ["lol"]),
        Rule.keywords("small_talk", ["refund"], action="veto"),
    ]
    matched = match_rules(rules, "refund, lol")
    assert matched.override is None
    assert matched.vetoed == {"small_talk"}
    assert matched.fired == ("override:small_talk", "veto:small_talk")


async def test_a_cascade_escalates_only_when_unsure() -> None:
    cheap = TableClassifier("lexical", TABLE)
    costly = TableClassifier("llm", {"hmm": {"order_status": 0.97, "refund": 0.03}})
    cascade = [Stage(cheap, min_confidence=0.8), Stage(costly)]
    r = router(classifier=cascade)

    sure = await r.route("money back please")
    assert (sure.intent, sure.classifier, sure.stages) == ("refund", "lexical", ("lexical",))
    assert costly.calls == 0

    unsure = await r.route("hmm")
    assert (unsure.intent, unsure.classifier) == ("order_status", "llm")
    assert unsure.stages == ("lexical", "llm")


async def test_a_failing_stage_falls_back_to_what_the_cheaper_one_said() -> None:
    cheap = TableClassifier("lexical", TABLE)
    llm = FailingClassifier()
    r = router(classifier=[Stage(cheap, min_confidence=0.95), Stage(llm)])

    decision = await r.route("money back please")

    assert decision.intent == "refund"
    assert decision.classifier == "lexical"
    assert decision.stages == ("lexical", "llm!")
    assert "llm failed: ModelAPIError" in decision.reason
    assert llm.calls == 1


async def test_when_every_stage_fails_the_router_abstains() -> None:
    decision = await router(classifier=[Stage(FailingClassifier())]).route("hi")
    assert decision.intent == "small_talk"
    assert decision.abstained
    assert "llm failed" in decision.reason


async def test_a_stage_that_names_no_intent_does_not_replace_an_answer() -> None:
    cheap = TableClassifier("lexical", TABLE)
    says_none = TableClassifier("llm", {})
    r = router(classifier=[Stage(cheap, min_confidence=0.95), Stage(says_none)])
    decision = await r.route("money back please")
    assert decision.intent == "refund"
    assert "llm named no intent" in decision.reason


async def test_unknown_intents_from_a_classifier_are_dropped() -> None:
    table = {"x": {"teleport": 0.9, "refund": 0.08, "small_talk": 0.02}}
    decision = await router(classifier=TableClassifier("llm", table), threshold=0.0).route("x")
    assert decision.intent == "refund"
    assert all(name != "teleport" for name, _ in decision.scores)


async def test_sticky_routing_keeps_the_current_intent_unless_another_is_clearly_better() -> None:
    r = router(threshold=0.0, sticky_margin=0.1)
    kept = await r.route("and my parcel?", current="refund")
    assert (kept.intent, kept.classifier) == ("refund", "sticky")
    switched = await r.route("money back please", current="order_status")
    assert switched.intent == "refund"
    vetoed = router(
        threshold=0.0, sticky_margin=0.5, rules=[Rule.keywords("refund", ["parcel"], action="veto")]
    )
    assert (await vetoed.route("and my parcel?", current="refund")).intent == "order_status"
    assert (await router(threshold=0.0).route("and my parcel?", current="refund")).intent == (
        "order_status"
    )


def test_every_router_problem_is_listed() -> None:
    with pytest.raises(ConfigurationError) as info:
        Router(
            [Intent("a", examples=["x"]), Intent("a", examples=["y"]), Intent("mute")],
            TableClassifier("t", {}),
            fallback="nope",
            threshold=1.5,
            thresholds={"ghost": 0.5},
            rules=[Rule.keywords("phantom", ["boo"])],
            sticky_margin=-1,
        )
    message = str(info.value)
    for part in (
        "two intents are named 'a'",
        "intent 'mute' cannot be recognised",
        "fallback 'nope'",
        "threshold must be between 0 and 1",
        "unknown intent 'ghost'",
        "unknown intent 'phantom'",
        "sticky_margin",
    ):
        assert part in message


def test_intents_are_checked_when_built() -> None:
    tools = Toolset("t")

    @tools.tool
    def lookup(order: str) -> str:
        """Look an order up."""
        return order

    Intent("status", examples=["where"], toolset=tools, tool_choice=forced("lookup"))
    with pytest.raises(ConfigurationError) as info:
        Intent("bad name!", examples=[""], toolset=tools, tool_choice=forced("refund"))
    message = str(info.value)
    assert "is not valid" in message
    assert "non-empty string" in message
    assert "forces 'refund', which is not a tool" in message
    with pytest.raises(ConfigurationError, match="there are no tools"):
        Intent("chat", examples=["hi"], tool_choice="required")


def test_rules_reject_bad_patterns_and_empty_keyword_lists() -> None:
    with pytest.raises(ConfigurationError, match="bad pattern"):
        Rule.pattern("x", "(unclosed")
    with pytest.raises(ConfigurationError, match="no keywords"):
        Rule.keywords("x", [" "])
    assert Rule.keywords("x", ["gift card"]).matches("a Gift Card please")
    assert not Rule.keywords("x", ["card"]).matches("cardigan")


async def test_exclude_keeps_a_decision_away_from_intents() -> None:
    r = router(threshold=0.0)
    decision = await r.route("money back please", exclude={"refund"})
    assert decision.intent == "order_status"  # the runner-up
    assert all(name != "refund" for name, _ in decision.scores)
    with_rule = router(rules=[Rule.keywords("refund", ["money"])], threshold=0.0)
    assert (await with_rule.route("money back please")).classifier == "rules"
    excluded = await with_rule.route("money back please", exclude=["refund"])
    assert excluded.intent == "order_status" and excluded.classifier == "lexical"
