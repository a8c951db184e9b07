"""The LLM classifier through the real openai client against the fake server, and in a cascade."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from intentflow.errors import ClassificationError
from intentflow.models import OpenAIChatModel
from intentflow.router import Intent, Prediction, Router, Stage
from intentflow.router.llm import LLMClassifier
from intentflow.testing import FakeOpenAIServer, Fault, Reply
from tests.fakes import client_for
from tests.spec import assert_valid

pytestmark = pytest.mark.anyio

INTENTS = [
    Intent("refund", description="Money back for an order.", examples=["I want a refund"]),
    Intent("order_status", description="Where an order is.", examples=["where is my order"]),
    Intent("small_talk", description="Greetings.", examples=["hi", "how are you"]),
]


def llm(server: FakeOpenAIServer, **kwargs: object) -> LLMClassifier:
    client = client_for(server)
    return LLMClassifier(OpenAIChatModel("gpt-small", client), INTENTS, **kwargs)  # type: ignore[arg-type]


REFUND_TOKENS = [
    ('{"', -0.0001),
    ("intent", -0.0001),
    ('":"', -0.0001),
    ("ref", -0.1, [("ref", -0.1), ("order", -2.5), ("none", -4.0)]),
    ("und", -0.01),
    ('"}', -0.0001),
]


def tokens(spec: list[tuple[object, ...]]) -> list[object]:
    from intentflow.testing import TokenLogprob

    out = []
    for item in spec:
        token, logprob, *rest = item
        top = tuple(rest[0]) if rest else ()
        out.append(TokenLogprob(token, logprob, top))  # type: ignore[arg-type]
    return out


async def test_json_schema_mode_constrains_the_answer_and_reads_logprobs(
    server: FakeOpenAIServer,
) -> None:
    server.push(Reply.text('{"intent":"refund"}', logprobs=tokens(REFUND_TOKENS)))  # type: ignore[arg-type]
    prediction = await llm(server).classify("money back please")

    assert prediction.label == "refund"
    assert prediction.confidence == pytest.approx(math.exp(-0.1 - 0.01 - 0.0001 * 0))
    scores = dict(prediction.scores)
    assert scores["order_status"] == pytest.approx(math.exp(-2.5))
    assert "none" not in scores
    assert prediction.margin == pytest.approx(prediction.confidence - math.exp(-2.5))

    body = server.chat_requests[0]
    assert_valid("CreateChatCompletionRequest", body)
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    enum = schema["schema"]["properties"]["intent"]["enum"]
    assert enum == ["refund", "order_status", "small_talk", "none"]
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 5
    assert body["temperature"] == 0
    system = body["messages"][0]["content"]
    assert "- refund: Money back for an order." in system
    assert "e.g. 'where is my order'" in system
    assert body["messages"][1] == {"role": "user", "content": "money back please"}


async def test_none_means_no_intent(server: FakeOpenAIServer) -> None:
    server.push(Reply.text('{"intent":"none"}'))
    prediction = await llm(server, top_logprobs=0).classify("what is the airspeed of a swallow")
    assert prediction == Prediction(None, 1.0, 1.0, ())
    assert "logprobs" not in server.chat_requests[0]


async def test_without_logprobs_the_answer_is_taken_as_certain(server: FakeOpenAIServer) -> None:
    server.push(Reply.text('{"intent":"small_talk"}'))  # the endpoint sent no logprobs
    prediction = await llm(server).classify("hi there")
    assert (prediction.label, prediction.confidence, prediction.margin) == ("small_talk", 1.0, 1.0)


async def test_tool_mode_forces_a_constrained_call(server: FakeOpenAIServer) -> None:
    server.push(Reply.call("choose_intent", {"intent": "order_status"}))
    prediction = await llm(server, mode="tool").classify("where's my parcel")
    assert prediction.label == "order_status"
    body = server.chat_requests[0]
    assert_valid("CreateChatCompletionRequest", body)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "choose_intent"}}
    assert body["tools"][0]["function"]["parameters"]["properties"]["intent"]["enum"][-1] == "none"
    assert "response_format" not in body
    assert "logprobs" not in body


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("refund"),
        Reply.text('{"intent": "teleport"}'),
        Reply.text('{"label": "refund"}'),
        Reply.text("[1, 2]"),
        Reply.refused("I can't classify that."),
    ],
)
async def test_malformed_answers_are_typed_errors(server: FakeOpenAIServer, reply: Reply) -> None:
    server.push(reply)
    with pytest.raises(ClassificationError) as info:
        await llm(server).classify("hello")
    assert info.value.classifier == "llm"


class Fixed:
    def __init__(self, scores: Mapping[str, float]) -> None:
        self.name = "lexical"
        self.scores = scores

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores(list(self.scores.items()))


async def test_a_cascade_escalates_to_the_llm_only_when_unsure(server: FakeOpenAIServer) -> None:
    sure = Fixed({"refund": 0.95, "order_status": 0.05})
    router = Router(INTENTS, [Stage(sure, min_confidence=0.8), Stage(llm(server))])
    decision = await router.route("refund me")
    assert (decision.intent, decision.classifier) == ("refund", "lexical")
    assert server.chat_requests == []

    unsure = Fixed({"refund": 0.4, "order_status": 0.35, "small_talk": 0.25})
    server.push(Reply.text('{"intent":"order_status"}'))
    router = Router(INTENTS, [Stage(unsure, min_confidence=0.8), Stage(llm(server))])
    decision = await router.route("my parcel, money?")
    assert (decision.intent, decision.classifier, decision.stages) == (
        "order_status",
        "llm",
        ("lexical", "llm"),
    )


@pytest.mark.parametrize(
    "failure",
    [Reply.text("not json at all"), Reply.text('{"intent":"teleport"}'), Fault.server_error()],
)
async def test_a_failing_llm_falls_back_to_the_cheap_stage(
    server: FakeOpenAIServer, failure: Reply | Fault
) -> None:
    unsure = Fixed({"refund": 0.6, "order_status": 0.3, "small_talk": 0.1})
    server.push(failure)
    router = Router(
        INTENTS,
        [Stage(unsure, min_confidence=0.8), Stage(llm(server))],
        fallback="small_talk",
        threshold=0.5,
    )
    decision = await router.route("refund?")
    assert (decision.intent, decision.classifier, decision.stages) == (
        "refund",
        "lexical",
        ("lexical", "llm!"),
    )
    assert "llm failed" in decision.reason


async def test_the_llm_saying_none_makes_the_router_abstain(server: FakeOpenAIServer) -> None:
    server.push(Reply.text('{"intent":"none"}'))
    router = Router(INTENTS, [Stage(llm(server))], fallback="small_talk")
    decision = await router.route("asdfgh")
    assert (decision.intent, decision.abstained) == ("small_talk", True)


def test_an_intent_named_none_is_rejected() -> None:
    with pytest.raises(ValueError, match="named 'none'"):
        LLMClassifier(object(), [Intent("none", examples=["x"])])  # type: ignore[arg-type]
