"""Router.fit: classifiers trained, thresholds fitted on val or a holdout, the report."""

from __future__ import annotations

import json

import pytest

from intentflow.router import Example, Intent, Prediction, Router
from intentflow.router.fitting import FitReport
from tests.router.memo import AsyncMemoClassifier, MemoClassifier

pytestmark = pytest.mark.anyio

INTENTS = [
    Intent("refund", examples=["i want my money back", "refund my order"]),
    Intent("status", examples=["where is my parcel", "track my order"]),
    Intent("chat", description="Greetings and small talk.", tool_choice="none"),
]

TRAIN = [
    Example("please refund the order", "refund"),
    Example("money back for my purchase", "refund"),
    Example("refund my shoes", "refund"),
    Example("give me my money back", "refund"),
    Example("where is the parcel now", "status"),
    Example("track my parcel please", "status"),
    Example("when does my order arrive", "status"),
    Example("order tracking number", "status"),
    Example("hello there friend", "chat"),
    Example("good morning to you", "chat"),
    Example("what is the capital of peru", None),
    Example("recommend a good movie", None),
]

VAL = [
    Example("refund please", "refund"),
    Example("my money back now", "refund"),
    Example("where is my order", "status"),
    Example("track the parcel", "status"),
    Example("hello friend", "chat"),
    Example("how tall is everest", None),
    Example("play some jazz music", None),
    Example("book a table for two", None),
]


def make(*stages: object, **kwargs: object) -> Router:
    return Router(INTENTS, stages[0] if len(stages) == 1 else stages, **kwargs)  # type: ignore[arg-type]


async def test_fit_trains_on_intent_examples_and_train_then_fits_thresholds_on_val() -> None:
    memo = MemoClassifier()
    router = make(memo)
    report = await router.fit(TRAIN, VAL)
    assert memo.fits == [4 + len(TRAIN)]  # the intents' own examples come first
    assert report.source == "val"
    assert (report.n_train, report.n_threshold, report.n_threshold_oos) == (16, 8, 3)
    assert report.fitted_stages == ("memo",)
    # The router now uses what was fitted.
    assert (router.threshold, router.margin) == (report.threshold, report.margin)
    assert router.thresholds == report.thresholds
    assert router.fit_report is report
    assert report.threshold > 0  # out-of-scope messages score low: abstaining pays
    assert report.fitted is not None and report.fitted.oos_recall > 0
    decision = await router.route("how tall is everest")
    assert decision.abstained and decision.intent is None
    assert (await router.route("refund please")).intent == "refund"


async def test_the_sweep_reports_the_trade_off_at_the_chosen_margin() -> None:
    router = make(MemoClassifier())
    report = await router.fit(TRAIN, VAL)
    assert [p.threshold for p in report.sweep] == [round(0.05 * i, 2) for i in range(21)]
    assert all(p.margin == report.margin for p in report.sweep)
    recalls = [p.oos_recall for p in report.sweep]
    assert recalls == sorted(recalls)  # a higher threshold never abstains on fewer
    assert report.sweep[0].oos_recall == 0.0 and report.sweep[-1].oos_recall == 1.0


async def test_without_val_thresholds_come_from_a_holdout_then_everything_is_fitted() -> None:
    memo = MemoClassifier()
    router = make(memo)
    report = await router.fit(TRAIN, holdout=0.25)
    assert report.source == "holdout"
    # About a quarter of each label held out, never an intent's last example.
    assert (report.n_threshold, report.n_threshold_oos) == (4, 1)
    assert memo.fits == [4 + len(TRAIN) - 4, 4 + len(TRAIN)]
    assert report.classifier_seconds <= report.seconds


async def test_without_val_or_holdout_thresholds_stay_and_a_note_says_so() -> None:
    router = make(MemoClassifier(), threshold=0.3, margin=0.1)
    report = await router.fit(TRAIN, holdout=0.0)
    assert report.source == "none" and report.fitted is None and report.sweep == ()
    assert (router.threshold, router.margin) == (0.3, 0.1)
    assert any("no validation data" in note for note in report.notes)


async def test_val_without_out_of_scope_examples_is_noted() -> None:
    router = make(MemoClassifier())
    report = await router.fit(TRAIN, [e for e in VAL if e.intent is not None])
    assert any("no out-of-scope example" in note for note in report.notes)
    assert report.fitted is not None and report.fitted.in_scope_accuracy == 1.0


async def test_an_async_fit_is_awaited() -> None:
    memo = AsyncMemoClassifier()
    report = await make(memo).fit(TRAIN, VAL)
    assert memo.fits == [16] and report.fitted_stages == ("memo",)


class Fixed:
    """A stage that cannot be trained (like an LLM classifier)."""

    name = "fixed"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("chat", 0.5), ("refund", 0.3)])


async def test_stages_without_fit_are_used_as_they_are() -> None:
    memo = MemoClassifier()
    router = make(memo, Fixed())  # a bare classifier in a cascade is a stage
    report = await router.fit(TRAIN, VAL)
    assert report.fitted_stages == ("memo",)


@pytest.mark.parametrize("where", ["train", "val"])
async def test_examples_of_unknown_intents_are_refused_by_name(where: str) -> None:
    bad = [Example("cancel my plan", "cancel"), Example("upgrade", "upgrade")]
    router = make(MemoClassifier(), threshold=0.2)
    train, val = ([*TRAIN, *bad], VAL) if where == "train" else (TRAIN, [*VAL, *bad])
    with pytest.raises(ValueError, match=rf"{where} names intents .*'cancel', 'upgrade'"):
        await router.fit(train, val)
    assert router.threshold == 0.2  # nothing changed


async def test_bad_holdout_and_nothing_to_train_on_are_errors() -> None:
    with pytest.raises(ValueError, match="holdout"):
        await make(MemoClassifier()).fit(TRAIN, holdout=1.0)
    bare = Router([Intent("a", description="A."), Intent("b", description="B.")], MemoClassifier())
    with pytest.raises(ValueError, match="nothing to train on"):
        await bare.fit()


async def test_per_intent_thresholds_can_be_turned_off() -> None:
    router = make(MemoClassifier(), thresholds={"refund": 0.9})
    report = await router.fit(TRAIN, VAL, per_intent=False)
    assert report.thresholds == {} and router.thresholds == {}


async def test_the_report_serialises_and_summarises() -> None:
    router = make(MemoClassifier())
    report = await router.fit(TRAIN, VAL)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["source"] == "val" and data["threshold"] == report.threshold
    assert set(data["fitted"]) == {"in_scope_accuracy", "oos_recall", "oos_precision", "accuracy"}
    assert len(data["sweep"]) == 21
    text = report.summary()
    assert "thresholds on val (8 examples, 3 out of scope)" in text
    assert isinstance(report, FitReport)


async def test_the_fallback_intent_counts_as_abstaining_when_fitting() -> None:
    # With chat as the fallback, routing an out-of-scope message to chat is right.
    router = make(MemoClassifier(), fallback="chat")
    report = await router.fit(TRAIN, VAL)
    assert report.fitted is not None
    decision = await router.route("how tall is everest")
    assert decision.intent == "chat" and decision.abstained
