"""The lexical intent classifier, on small synthetic intents (no data files needed)."""

from __future__ import annotations

import json
import random

import anyio
import pytest

from intentflow.router import Classifier, lexical
from intentflow.router.evaluation import fit_threshold
from intentflow.router.lexical import LexicalClassifier, Prediction

# Each intent: a few content words, mixed into carrier phrases shared by every intent.
INTENTS: dict[str, list[str]] = {
    "book_flight": ["flight", "plane", "fly", "airline", "ticket"],
    "weather": ["weather", "rain", "sunny", "forecast", "temperature"],
    "play_music": ["song", "music", "playlist", "album", "artist"],
    "set_alarm": ["alarm", "wake", "morning", "clock", "snooze"],
    "order_food": ["pizza", "burger", "delivery", "hungry", "takeout"],
}
CARRIERS = [
    "can you help me with the {0} and {1}",
    "i want to know about {0} {1}",
    "please {0} {1} now",
    "what about my {0} for the {1}",
    "tell me the {1} {0} today",
]
OUT_OF_SCOPE = [
    "what is the meaning of life",
    "tell me a joke about cats",
    "who won the game last night",
    "how tall is mount everest",
    "translate hello to german",
    "what is the capital of peru",
]


def make_data(n_per_intent: int, seed: int) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[str | None] = []
    for intent, words in INTENTS.items():
        for _ in range(n_per_intent):
            a, b = rng.sample(words, 2)
            texts.append(rng.choice(CARRIERS).format(a, b))
            labels.append(intent)
    return texts, labels


@pytest.fixture(scope="module")
def data() -> tuple[list[str], list[str | None]]:
    return make_data(12, seed=1)


@pytest.fixture(scope="module")
def clf(data: tuple[list[str], list[str | None]]) -> LexicalClassifier:
    texts, labels = data
    return LexicalClassifier(top_k=3).fit(texts, labels)


def test_learns_separable_intents(clf: LexicalClassifier) -> None:
    texts, labels = make_data(6, seed=99)  # unseen combinations of the same words
    predictions = clf.predict_many(texts)
    accuracy = sum(p.label == g for p, g in zip(predictions, labels, strict=True)) / len(texts)
    assert accuracy == 1.0
    assert clf.labels == tuple(sorted(INTENTS))


def test_character_ngrams_generalise_to_inflections(clf: LexicalClassifier) -> None:
    # "flights", "songs", "alarms" never occur in training; their n-grams do.
    assert clf.predict("any flights").label == "book_flight"
    assert clf.predict("songs").label == "play_music"
    assert clf.predict("alarms").label == "set_alarm"


def test_prediction_fields_are_sane(clf: LexicalClassifier) -> None:
    p = clf.predict("play a song from my favourite album")
    assert isinstance(p, Prediction)
    assert p.label == "play_music"
    assert len(p.scores) == 3
    assert p.scores[0] == (p.label, p.confidence)
    probabilities = [s for _, s in p.scores]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0.0 < p.confidence <= 1.0
    assert 0.0 <= p.margin <= p.confidence
    assert p.margin == pytest.approx(p.confidence - p.scores[1][1])
    assert sum(probabilities) <= 1.0 + 1e-9
    assert len({label for label, _ in p.scores}) == 3


def test_confident_on_clear_messages_unsure_on_unrelated_ones(clf: LexicalClassifier) -> None:
    clear = clf.predict("what is the weather forecast, will it rain")
    unrelated = clf.predict("xylophone zebra quantum")
    empty = clf.predict("")
    assert clear.confidence > 0.9
    assert unrelated.confidence < clear.confidence
    assert empty.confidence < clear.confidence
    assert empty.label in clf.labels  # never None: abstaining is the caller's call


def test_top_k_larger_than_the_number_of_intents(
    data: tuple[list[str], list[str | None]],
) -> None:
    texts, labels = data
    p = LexicalClassifier(top_k=50).fit(texts, labels).predict("song")
    assert len(p.scores) == len(INTENTS)
    assert sum(s for _, s in p.scores) == pytest.approx(1.0)


def test_out_of_scope_examples_and_threshold(data: tuple[list[str], list[str | None]]) -> None:
    texts, labels = data
    clf = LexicalClassifier().fit([*texts, *OUT_OF_SCOPE], [*labels, *[None] * len(OUT_OF_SCOPE)])
    assert None not in clf.labels
    held_out, gold = make_data(3, seed=7)
    oos = [
        "what is the meaning of a joke",
        "who is the capital of everest",
        "how tall is the game",
    ]
    predictions = clf.predict_many([*held_out, *oos])
    gold_all: list[str | None] = [*gold, *[None] * len(oos)]
    fitted = fit_threshold(gold_all, predictions, objective="accuracy")
    # The router's abstain rule: confident enough and ahead of the runner-up (a message the
    # internal out-of-scope class wins has a negative margin, so it abstains at any threshold).
    answered = [
        p.label if p.confidence >= fitted.threshold and p.margin >= fitted.margin else None
        for p in predictions
    ]
    in_scope_ok = sum(a == g for a, g in zip(answered[: len(gold)], gold, strict=True))
    assert in_scope_ok / len(gold) >= 0.9
    assert answered[len(gold) :] == [None] * len(oos)
    # The out-of-scope class lowers the confidence of out-of-scope messages.
    assert max(p.confidence for p in predictions[len(gold) :]) < min(
        p.confidence for p in predictions[: len(gold)]
    )


def test_round_trip_gives_identical_predictions(
    clf: LexicalClassifier, data: tuple[list[str], list[str | None]]
) -> None:
    saved = json.loads(json.dumps(clf.to_dict()))
    again = LexicalClassifier.from_dict(saved)
    probes = [*data[0][:20], "totally new words here", "", "flights?"]
    assert again.predict_many(probes) == clf.predict_many(probes)
    assert again.labels == clf.labels
    assert again.to_dict() == clf.to_dict()


def test_from_dict_rejects_other_data() -> None:
    with pytest.raises(ValueError, match="not a saved LexicalClassifier"):
        LexicalClassifier.from_dict({"format": "something else"})


def test_deterministic_given_the_seed(data: tuple[list[str], list[str | None]]) -> None:
    texts, labels = data
    a = LexicalClassifier(seed=3).fit(texts, labels).to_dict()
    b = LexicalClassifier(seed=3).fit(texts, labels).to_dict()
    assert a == b


@pytest.mark.skipif(lexical._np is None, reason="numpy is not installed")
def test_pure_python_matches_numpy(data: tuple[list[str], list[str | None]]) -> None:
    texts, labels = data
    texts = [*texts, *OUT_OF_SCOPE]
    labels = [*labels, *[None] * len(OUT_OF_SCOPE)]
    fast = LexicalClassifier(use_numpy=True).fit(texts, labels)
    slow = LexicalClassifier(use_numpy=False).fit(texts, labels)
    assert fast.epochs_run == slow.epochs_run
    n_classes = len(fast.labels) + 1
    for (fc, fw), (sc, sw) in zip(fast._postings, slow._postings, strict=True):
        dense_fast, dense_slow = [0.0] * n_classes, [0.0] * n_classes
        for dense, cls, w in ((dense_fast, fc, fw), (dense_slow, sc, sw)):
            for c, x in zip(cls, w, strict=True):
                dense[c] = x
        assert dense_fast == pytest.approx(dense_slow, abs=1e-9)
    probes = [*texts[::7], "unseen words entirely", "", "flight flight flight weather"]
    # The same model predicts the same through both scoring paths, fitted either way.
    slow_scorer = LexicalClassifier.from_dict(fast.to_dict(), use_numpy=False)
    for text in probes:
        expected = fast.predict(text)
        for other in (slow.predict(text), slow_scorer.predict(text)):
            assert other.confidence == pytest.approx(expected.confidence, abs=1e-9)
            assert other.margin == pytest.approx(expected.margin, abs=1e-9)
            if expected.margin > 1e-6:  # (exact ties may be broken either way)
                assert other.label == expected.label
            probabilities = [s for _, s in other.scores]
            assert probabilities == pytest.approx([s for _, s in expected.scores], abs=1e-9)


def test_pure_python_scorer_matches_the_reference_sum(clf: LexicalClassifier) -> None:
    slow = LexicalClassifier.from_dict(clf.to_dict(), use_numpy=False)
    for text in ["play the song song song", "a", "wake me up, wake me up", "ünïcödé 123"]:
        tokens = lexical._tokens(text)
        assert slow._scores_python(tokens) == pytest.approx(
            slow._scores_reference(tokens), abs=1e-8
        )


def test_unicode_and_digits_are_tokens() -> None:
    assert lexical._tokens("Réservez 2 BILLETS, s'il vous plaît!") == [
        "réservez",
        "2",
        "billets",
        "s",
        "il",
        "vous",
        "plaît",
    ]
    clf = LexicalClassifier().fit(
        ["room 101", "room 102", "gate 7", "gate 9", "café au lait", "un café"],
        ["room", "room", "gate", "gate", "drink", "drink"],
    )
    assert clf.predict("CAFÉ").label == "drink"
    assert clf.predict("room 103").label == "room"


@pytest.mark.parametrize(
    ("texts", "labels", "message"),
    [
        ([], [], "empty training set"),
        (["a", "b"], ["x"], "2 texts but 1 labels"),
        (["a", "b"], ["x", "x"], "at least two intents"),
        (["a", "b", "c"], ["x", None, None], "at least two intents"),
        (["a", 3], ["x", "y"], "texts must be strings"),
        ("ab", ["x", "y"], "not a single string"),
    ],
)
def test_bad_training_input_is_a_clear_value_error(
    texts: list[str], labels: list[str | None], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LexicalClassifier().fit(texts, labels)


def test_bad_parameters_and_unfitted_use() -> None:
    with pytest.raises(ValueError, match="top_k"):
        LexicalClassifier(top_k=0)
    with pytest.raises(ValueError, match="positive"):
        LexicalClassifier(c=0)
    with pytest.raises(ValueError, match="char_ngrams"):
        LexicalClassifier(char_ngrams=(3, 2))
    with pytest.raises(ValueError, match="not fitted"):
        LexicalClassifier().predict("hello")
    with pytest.raises(ValueError, match="not fitted"):
        LexicalClassifier().to_dict()


def test_words_only_model(data: tuple[list[str], list[str | None]]) -> None:
    texts, labels = data
    clf = LexicalClassifier(char_ngrams=(0, 0), word_bigrams=False, min_df=1).fit(texts, labels)
    assert clf.predict("rain forecast").label == "weather"
    assert all(f.startswith("w:") for f in clf.to_dict()["features"])


def test_pure_python_falls_back_when_packing_could_overflow(
    clf: LexicalClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = ["play a song", "rain forecast", "wake me at the clock"]
    expected = [
        LexicalClassifier.from_dict(clf.to_dict(), use_numpy=False).predict(t) for t in probes
    ]
    monkeypatch.setattr(lexical, "_MAX_ITEM", 1)  # every packed vector "overflows"
    slow = LexicalClassifier.from_dict(clf.to_dict(), use_numpy=False)
    for text, want in zip(probes, expected, strict=True):
        got = slow.predict(text)
        assert got.label == want.label
        assert got.confidence == pytest.approx(want.confidence, abs=1e-9)
    monkeypatch.setattr(lexical, "_MAX_PACKED_ITEMS", 2)  # too many tokens to pack
    assert slow.predict("play a song").label == expected[0].label


def test_is_a_router_classifier(clf: LexicalClassifier) -> None:
    assert isinstance(clf, Classifier)
    assert clf.name == "lexical"

    async def main() -> Prediction:
        return await clf.classify("play my playlist")

    assert anyio.run(main) == clf.predict("play my playlist")
