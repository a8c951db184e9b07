"""The lexical intent classifier, on small synthetic intents (no data files needed)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from intentflow.errors import ArtifactError
from intentflow.router import Classifier, lexical
from intentflow.router.evaluation import fit_threshold
from intentflow.router.lexical import LexicalClassifier, Prediction
from intentflow.router.persist import SavableClassifier, classifier_kind

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


@pytest.fixture(scope="module")
def clf_oos(data: tuple[list[str], list[str | None]]) -> LexicalClassifier:
    texts, labels = data
    return LexicalClassifier().fit([*texts, *OUT_OF_SCOPE], [*labels, *[None] * len(OUT_OF_SCOPE)])


def reload(
    clf: LexicalClassifier, folder: Path, *, use_numpy: bool | None = None
) -> LexicalClassifier:
    """``clf`` saved into ``folder`` and loaded back."""
    clf.save(folder)
    return LexicalClassifier.load(folder, use_numpy=use_numpy)


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


PROBES = ["play a song", "flights?", "", "totally new words here", "rain rain rain forecast"]


@pytest.mark.parametrize("use_numpy", [None, False])
def test_save_and_load_give_identical_predictions(
    clf_oos: LexicalClassifier,
    data: tuple[list[str], list[str | None]],
    tmp_path: Path,
    use_numpy: bool | None,
) -> None:
    # The same model scored the same way before saving and after loading: identical labels,
    # confidences, margins and scores (not merely close).
    scorer = clf_oos if use_numpy is None else reload(clf_oos, tmp_path / "a", use_numpy=False)
    again = reload(clf_oos, tmp_path / "b", use_numpy=use_numpy)
    probes = [*data[0][:20], *OUT_OF_SCOPE, *PROBES]
    assert again.predict_many(probes) == scorer.predict_many(probes)
    assert (again.labels, again.epochs_run, again.name, again.top_k) == (
        clf_oos.labels,
        clf_oos.epochs_run,
        clf_oos.name,
        clf_oos.top_k,
    )
    # Saving what was loaded writes the same files.
    again.save(tmp_path / "c")
    for name in ("lexical.json", "lexical.bin"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_save_writes_a_versioned_manifest_and_a_compact_binary(
    clf: LexicalClassifier, tmp_path: Path
) -> None:
    clf.save(tmp_path / "new" / "folder")  # created when missing
    folder = tmp_path / "new" / "folder"
    assert sorted(p.name for p in folder.iterdir()) == ["lexical.bin", "lexical.json"]
    manifest = json.loads((folder / "lexical.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("intentflow.lexical", 1)
    assert manifest["labels"] == list(clf.labels)
    assert manifest["params"]["top_k"] == 3
    arrays = manifest["arrays"]
    blob = (folder / "lexical.bin").read_bytes()
    assert arrays["bytes"] == len(blob)
    assert arrays["sha256"] == hashlib.sha256(blob).hexdigest()
    assert arrays["class_type"] == "B"  # class indices fit one byte
    assert len(manifest["features"]) == arrays["features"]
    assert isinstance(clf, SavableClassifier)
    assert LexicalClassifier.kind == "lexical"
    assert classifier_kind("lexical") is LexicalClassifier


def test_load_without_numpy(
    clf_oos: LexicalClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = reload(clf_oos, tmp_path / "a", use_numpy=False).predict_many(PROBES)
    clf_oos.save(tmp_path / "b")
    monkeypatch.setattr(lexical, "_numpy", lambda: None)
    again = LexicalClassifier.load(tmp_path / "b")
    assert again._dense is None
    assert again.predict_many(PROBES) == expected
    with pytest.raises(ValueError, match="numpy is not installed"):
        LexicalClassifier.load(tmp_path / "b", use_numpy=True)


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "lexical.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def edit_arrays(folder: Path, **changes: object) -> None:
    path = folder / "lexical.json"
    manifest = json.loads(path.read_text())
    manifest["arrays"].update(changes)
    path.write_text(json.dumps(manifest))


def flip_a_byte(folder: Path) -> None:
    path = folder / "lexical.bin"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))


def truncate(folder: Path) -> None:
    path = folder / "lexical.bin"
    path.write_bytes(path.read_bytes()[:-7])


PARAMS = {"char_ngrams": [2, 5]}
DAMAGE: list[tuple[Callable[[Path], object], str]] = [
    (lambda d: (d / "lexical.json").unlink(), "no such file"),
    (lambda d: (d / "lexical.bin").unlink(), "no such file"),
    (lambda d: (d / "lexical.json").write_text("{not json"), "not valid JSON"),
    (truncate, "truncated"),
    (flip_a_byte, "checksum"),
    (lambda d: edit_manifest(d, format="intentflow.router"), "is not a saved"),
    (lambda d: edit_manifest(d, version=2), "newer intentflow"),
    (lambda d: edit_manifest(d, version=0), "refit"),
    (lambda d: edit_manifest(d, labels=["only_one"]), "corrupt"),
    (lambda d: edit_manifest(d, features=["w:a"]), "corrupt"),
    (lambda d: edit_manifest(d, arrays=None), "corrupt"),
    (lambda d: edit_arrays(d, file="../elsewhere.bin"), "corrupt"),
    (lambda d: edit_arrays(d, class_type="H"), "corrupt"),
    (lambda d: edit_manifest(d, params={**PARAMS, "top_k": 0}), "corrupt"),
    (lambda d: edit_manifest(d, params={**PARAMS, "nonsense": 1}), "corrupt"),
]


@pytest.mark.parametrize(("damage", "message"), DAMAGE)
def test_damaged_artefacts_are_artifact_errors(
    clf: LexicalClassifier, tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    clf.save(tmp_path)
    damage(tmp_path)
    with pytest.raises(ArtifactError, match=message):
        LexicalClassifier.load(tmp_path)


def test_inconsistent_arrays_are_artifact_errors(clf: LexicalClassifier, tmp_path: Path) -> None:
    # A binary that matches its checksum but not the manifest's sizes (a hand-edited manifest).
    clf.save(tmp_path)
    manifest = json.loads((tmp_path / "lexical.json").read_text())
    manifest["arrays"]["weights"] += 1
    (tmp_path / "lexical.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="sizes disagree"):
        LexicalClassifier.load(tmp_path)
    # A class index out of range, under a matching checksum.
    clf.save(tmp_path)
    manifest = json.loads((tmp_path / "lexical.json").read_text())
    arrays = manifest["arrays"]
    blob = bytearray((tmp_path / "lexical.bin").read_bytes())
    blob[8 * (arrays["features"] + arrays["classes"]) + 4 * (arrays["features"] + 1)] = 255
    (tmp_path / "lexical.bin").write_bytes(bytes(blob))
    arrays["sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / "lexical.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="malformed"):
        LexicalClassifier.load(tmp_path)


def test_to_dict_and_from_dict_round_trip(
    clf: LexicalClassifier, data: tuple[list[str], list[str | None]]
) -> None:
    saved = json.loads(json.dumps(clf.to_dict()))  # for embedding in another JSON document
    again = LexicalClassifier.from_dict(saved)
    probes = [*data[0][:20], *PROBES]
    assert again.predict_many(probes) == clf.predict_many(probes)
    assert again.to_dict() == clf.to_dict()
    with pytest.raises(ValueError, match="not a saved LexicalClassifier"):
        LexicalClassifier.from_dict({"format": "something else"})


def test_saving_an_unfitted_classifier_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        LexicalClassifier().save(tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        LexicalClassifier().to_dict()


@pytest.mark.parametrize("use_numpy", [None, False])
def test_deterministic_given_the_seed(
    data: tuple[list[str], list[str | None]], tmp_path: Path, use_numpy: bool | None
) -> None:
    texts, labels = data
    for name in ("a", "b"):
        LexicalClassifier(seed=3, use_numpy=use_numpy).fit(texts, labels).save(tmp_path / name)
    for name in ("lexical.json", "lexical.bin"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_training_converges_and_max_epochs_caps_the_passes(
    data: tuple[list[str], list[str | None]],
) -> None:
    texts, labels = data
    converged = LexicalClassifier().fit(texts, labels)
    assert 1 <= converged.epochs_run < converged.max_epochs
    assert [p.label for p in converged.predict_many(texts)] == labels
    assert LexicalClassifier(max_epochs=1).fit(texts, labels).epochs_run == 1


def dense_weights(clf: LexicalClassifier) -> list[list[float]]:
    n_classes = len(clf.labels) + clf._has_oos
    rows = []
    for cls, w in clf._postings:
        row = [0.0] * n_classes
        for c, x in zip(cls, w, strict=True):
            row[c] = x
        rows.append(row)
    return rows


@pytest.mark.skipif(lexical._numpy() is None, reason="numpy is not installed")
@pytest.mark.parametrize("small_set", [None, 2])
def test_pure_python_matches_numpy(
    data: tuple[list[str], list[str | None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_set: int | None,
) -> None:
    if small_set is not None:
        # Working sets of more than two classes are stepped over every class, vectorised.
        monkeypatch.setattr(lexical, "_SMALL_SET", small_set)
    texts, labels = data
    texts = [*texts, *OUT_OF_SCOPE]
    labels = [*labels, *[None] * len(OUT_OF_SCOPE)]
    fast = LexicalClassifier(use_numpy=True).fit(texts, labels)
    slow = LexicalClassifier(use_numpy=False).fit(texts, labels)
    assert fast.epochs_run == slow.epochs_run  # the same steps, in the same order
    for row_fast, row_slow in zip(dense_weights(fast), dense_weights(slow), strict=True):
        assert row_fast == pytest.approx(row_slow, abs=1e-6)  # (float32 weights)
    probes = [*texts[::7], "unseen words entirely", "", "flight flight flight weather"]
    # The same model predicts the same through both scoring paths, fitted either way.
    slow_scorer = reload(fast, tmp_path, use_numpy=False)
    for text in probes:
        expected = fast.predict(text)
        for other in (slow.predict(text), slow_scorer.predict(text)):
            assert other.confidence == pytest.approx(expected.confidence, abs=1e-9)
            assert other.margin == pytest.approx(expected.margin, abs=1e-9)
            if expected.margin > 1e-6:  # (exact ties may be broken either way)
                assert other.label == expected.label
            probabilities = [s for _, s in other.scores]
            assert probabilities == pytest.approx([s for _, s in expected.scores], abs=1e-9)


@pytest.mark.skipif(lexical._numpy() is None, reason="numpy is not installed")
def test_index_grids_over_the_memory_budget_change_nothing(
    data: tuple[list[str], list[str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, labels = data
    cached = LexicalClassifier(use_numpy=True).fit(texts, labels)
    monkeypatch.setattr(lexical, "_IDX_BUDGET", 0)  # every index grid built when needed
    built = LexicalClassifier(use_numpy=True).fit(texts, labels)
    assert dense_weights(built) == dense_weights(cached)


def test_pure_python_scorer_matches_the_reference_sum(
    clf: LexicalClassifier, tmp_path: Path
) -> None:
    slow = reload(clf, tmp_path, use_numpy=False)
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


def test_words_only_model(data: tuple[list[str], list[str | None]]) -> None:
    texts, labels = data
    clf = LexicalClassifier(char_ngrams=(0, 0), word_bigrams=False, min_df=1).fit(texts, labels)
    assert clf.predict("rain forecast").label == "weather"
    assert all(f.startswith("w:") for f in clf._vocab)


def test_pure_python_falls_back_when_packing_could_overflow(
    clf: LexicalClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = ["play a song", "rain forecast", "wake me at the clock"]
    expected = reload(clf, tmp_path / "a", use_numpy=False).predict_many(probes)
    monkeypatch.setattr(lexical, "_MAX_ITEM", 1)  # every packed vector "overflows"
    slow = reload(clf, tmp_path / "b", use_numpy=False)
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
