"""Embedders: the OpenAI endpoint through the real SDK against the fake server, and the cache.

Nothing here needs numpy: the OpenAI embedder and the cache work on ``array.array``.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import openai
import pytest

import intentflow.router.embedders as module
from intentflow.errors import (
    ArtifactError,
    ConfigurationError,
    ModelAPIError,
    ModelConnectionError,
    ModelResponseError,
)
from intentflow.router.embedders import (
    CachedEmbedder,
    Embedder,
    EmbeddingCache,
    OpenAIEmbedder,
    Vector,
    embedder_from_spec,
    embedder_spec,
)
from intentflow.testing import FakeOpenAIServer
from intentflow.testing.embeddings import encode_base64, hashed_ngram_embedding, shorten
from tests.fakes import client_for

pytestmark = pytest.mark.anyio


def expected(text: str, dimensions: int | None = None) -> list[float]:
    """What the fake server embeds ``text`` as, rounded to float32 as the wire format is."""
    vector = hashed_ngram_embedding(text)
    if dimensions is not None:
        vector = shorten(vector, dimensions)
    return list(array("f", vector))


def embedding_requests(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/embeddings")]


# -- OpenAIEmbedder ------------------------------------------------------------------------


async def test_base64_by_default_decoded_to_float32_arrays(server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server))
    assert embedder.dimensions is None
    vectors = await embedder.embed(["book a flight", "what's the weather"])

    assert [list(v) for v in vectors] == [expected("book a flight"), expected("what's the weather")]
    assert all(isinstance(v, array) and v.typecode == "f" for v in vectors)
    (body,) = embedding_requests(server)
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["book a flight", "what's the weather"],
        "encoding_format": "base64",
    }
    assert embedder.dimensions == 256  # the fake model's, learnt from the answer


async def test_float_encoding_for_servers_without_base64(server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder("nomic-embed-text", client_for(server), encoding_format="float")
    (vector,) = await embedder.embed(["hello there"])
    assert list(vector) == expected("hello there")
    assert embedding_requests(server)[0]["encoding_format"] == "float"


async def test_batches_keep_order_and_send_each_text_once(server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder(
        "text-embedding-3-small", client_for(server), batch_size=2, max_concurrency=2
    )
    texts = ["a b", "c d", "a b", "e f", "g h", "c d", "i j"]
    vectors = await embedder.embed(texts)

    assert [list(v) for v in vectors] == [expected(t) for t in texts]
    sent = [body["input"] for body in embedding_requests(server)]
    assert sorted(len(batch) for batch in sent) == [1, 2, 2]
    assert sorted(t for batch in sent for t in batch) == ["a b", "c d", "e f", "g h", "i j"]
    assert await embedder.embed([]) == []


async def test_shortened_vectors_are_asked_for_and_named(server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server), dimensions=64)
    (vector,) = await embedder.embed(["refund my order"])
    assert list(vector) == pytest.approx(expected("refund my order", 64), abs=1e-6)
    assert embedding_requests(server)[0]["dimensions"] == 64
    assert (embedder.name, embedder.dimensions) == ("text-embedding-3-small@64", 64)


async def test_an_empty_text_is_sent_as_a_space(server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server))
    vectors = await embedder.embed(["", "hi"])
    assert len(vectors) == 2
    assert embedding_requests(server)[0]["input"] == [" ", "hi"]


async def test_an_http_error_is_a_typed_model_error(server: FakeOpenAIServer) -> None:
    # The fake model has 256 dimensions; asking for more is a 400 from the endpoint.
    embedder = OpenAIEmbedder("text-embedding-3-small", client_for(server), dimensions=1000)
    with pytest.raises(ModelAPIError) as info:
        await embedder.embed(["hello"])
    assert info.value.status == 400
    assert "256 dimensions" in info.value.message
    assert info.value.model == "text-embedding-3-small"
    assert not info.value.retryable


async def test_a_server_error_is_a_typed_model_error() -> None:
    def broken(text: str) -> list[float]:
        raise RuntimeError("embedding backend is down")

    async with (
        FakeOpenAIServer(embed=broken) as server,
        openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as client,
    ):
        with pytest.raises(ModelAPIError) as info:
            await OpenAIEmbedder("m", client).embed(["hello"])
    assert info.value.status == 500
    assert info.value.retryable


async def test_no_server_is_a_connection_error() -> None:
    async with FakeOpenAIServer() as server:
        base_url = server.base_url
    async with openai.AsyncOpenAI(base_url=base_url, api_key="t", max_retries=0) as client:
        with pytest.raises(ModelConnectionError):
            await OpenAIEmbedder("m", client).embed(["hello"])


class FakeEmbeddings:
    """A stand-in for ``client.embeddings`` that answers whatever a test gives it."""

    def __init__(self, data: list[Any]) -> None:
        self.data = data

    async def create(self, **params: Any) -> Any:
        return SimpleNamespace(data=self.data)


def fake_client(data: list[Any]) -> Any:
    return SimpleNamespace(embeddings=FakeEmbeddings(data))


def item(index: int, embedding: Any) -> Any:
    return SimpleNamespace(index=index, embedding=embedding)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "0 embeddings for 2 texts"),
        ([item(0, [1.0]), item(0, [1.0])], "2 embeddings for 2 texts"),
        ([item(0, [1.0]), item(1, [1.0, 2.0])], "lengths"),
        ([item(0, "not base64!"), item(1, [1.0])], "unexpected shape"),
        ([item(0, encode_base64([1.0])[:-4] + "AAA="), item(1, [1.0])], "unexpected shape"),
        ([item(0, None), item(1, [1.0])], "unexpected shape"),
    ],
    ids=["none", "duplicate-index", "ragged", "bad-base64", "not-float32", "null"],
)
async def test_an_unusable_answer_is_a_response_error(data: list[Any], match: str) -> None:
    embedder = OpenAIEmbedder("m", fake_client(data))
    with pytest.raises(ModelResponseError, match=match):
        await embedder.embed(["a", "b"])


async def test_a_client_is_built_from_the_environment(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    embedder = OpenAIEmbedder()  # no client: built on first use
    try:
        (vector,) = await embedder.embed(["hello"])
        assert list(vector) == expected("hello")
        assert server.requests[0].headers["authorization"] == "Bearer from-env"
    finally:
        await embedder.aclose()
    assert embedder._client is None


async def test_max_retries_and_timeout_apply_per_request() -> None:
    calls = 0

    def flaky(text: str) -> list[float]:
        nonlocal calls
        calls += 1
        raise RuntimeError("down")

    async with (
        FakeOpenAIServer(embed=flaky) as server,
        openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=5) as client,
    ):
        with pytest.raises(ModelAPIError):
            await OpenAIEmbedder("m", client, max_retries=0, timeout=5).embed(["x"])
    assert calls == 1  # the embedder's max_retries=0 overrode the client's 5


def test_bad_parameters_are_configuration_errors() -> None:
    for kwargs in (
        {"model": ""},
        {"batch_size": 0},
        {"max_concurrency": 0},
        {"dimensions": 0},
        {"encoding_format": "int8"},
    ):
        with pytest.raises(ConfigurationError):
            OpenAIEmbedder(**kwargs)


def test_dimensions_are_not_guessed_from_the_name() -> None:
    assert OpenAIEmbedder("text-embedding-3-large").dimensions is None
    assert OpenAIEmbedder("text-embedding-3-large", dimensions=512).dimensions == 512
    assert isinstance(OpenAIEmbedder(), Embedder)


# -- specs -----------------------------------------------------------------------------------


def test_an_openai_spec_rebuilds_the_embedder() -> None:
    original = OpenAIEmbedder("text-embedding-3-large", dimensions=256, batch_size=64)
    again = embedder_from_spec(embedder_spec(original))
    assert isinstance(again, OpenAIEmbedder)
    assert again.spec() == original.spec()
    assert again.name == "text-embedding-3-large@256"


class Letters:
    """A tiny custom embedder: letter counts of a..e (no numpy, no network)."""

    name = "letters"
    dimensions = 5

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls.append(list(texts))
        return [[float(t.count(ch)) + 0.5 for ch in "abcde"] for t in texts]


def test_a_custom_embedder_has_no_rebuildable_spec() -> None:
    spec = embedder_spec(Letters())
    assert spec == {"type": "custom", "name": "letters", "class": "Letters"}
    with pytest.raises(ConfigurationError, match="pass it in"):
        embedder_from_spec(spec)
    with pytest.raises(ConfigurationError, match="malformed"):
        embedder_from_spec({"type": "openai"})


# -- the cache ---------------------------------------------------------------------------------


async def test_only_misses_reach_the_endpoint(server: FakeOpenAIServer, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "embeddings.sqlite"
    embedder = CachedEmbedder(OpenAIEmbedder("text-embedding-3-small", client_for(server)), path)

    first = await embedder.embed(["alpha", "beta"])
    second = await embedder.embed(["beta", "gamma", "alpha", "gamma"])
    third = await embedder.embed(["gamma", "alpha"])

    assert [body["input"] for body in embedding_requests(server)] == [["alpha", "beta"], ["gamma"]]
    assert [list(v) for v in first] == [expected("alpha"), expected("beta")]
    assert [list(v) for v in second] == [expected(t) for t in ("beta", "gamma", "alpha", "gamma")]
    assert [list(v) for v in third] == [expected("gamma"), expected("alpha")]
    assert (embedder.hits, embedder.misses) == (4, 3)  # texts from the cache; texts embedded
    assert embedder.cache.count() == 3
    embedder.cache.close()

    # Another cache object on the same file (another process, later) sees the vectors.
    again = CachedEmbedder(OpenAIEmbedder("text-embedding-3-small", client_for(server)), path)
    await again.embed(["alpha", "beta", "gamma"])
    assert len(embedding_requests(server)) == 2
    again.cache.close()


async def test_the_key_is_the_embedder_name_and_text(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    letters = Letters()
    await CachedEmbedder(letters, cache).embed(["abc"])
    other = Letters()
    other.name = "letters-v2"
    await CachedEmbedder(other, cache).embed(["abc", "ABC"])
    assert other.calls == [["abc", "ABC"]]  # another name: nothing shared
    assert (cache.count("letters"), cache.count("letters-v2"), cache.count()) == (1, 2, 3)
    cache.close()


async def test_embedder_failure_caches_nothing(server: FakeOpenAIServer, tmp_path: Path) -> None:
    embedder = CachedEmbedder(
        OpenAIEmbedder("m", client_for(server), dimensions=1000), tmp_path / "c.sqlite"
    )
    with pytest.raises(ModelAPIError):
        await embedder.embed(["hello"])
    assert embedder.cache.count() == 0
    embedder.cache.close()


async def test_chunks_embedded_before_a_failure_stay_cached(tmp_path: Path) -> None:
    class FailsOnThirdCall(Letters):
        async def embed(self, texts: Sequence[str]) -> list[Vector]:
            if len(self.calls) == 2:
                self.calls.append(list(texts))
                raise ModelAPIError(429, "slow down")
            return await super().embed(texts)

    flaky = FailsOnThirdCall()
    embedder = CachedEmbedder(flaky, tmp_path / "c.sqlite", chunk_size=2)
    texts = ["a", "b", "c", "d", "e", "f"]
    with pytest.raises(ModelAPIError):
        await embedder.embed(texts)
    assert embedder.cache.count() == 4
    assert embedder.misses == 4
    retry = Letters()
    vectors = await CachedEmbedder(retry, embedder.cache, chunk_size=2).embed(texts)
    assert retry.calls == [["e", "f"]]
    assert [v[0] for v in vectors] == [1.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    embedder.cache.close()
    with pytest.raises(ConfigurationError, match="chunk_size"):
        CachedEmbedder(Letters(), embedder.cache, chunk_size=0)


async def test_concurrent_use_from_tasks_and_two_cache_objects(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    caches = [EmbeddingCache(path), EmbeddingCache(path)]
    embedders = [CachedEmbedder(Letters(), cache) for cache in caches]
    results: dict[int, list[Vector]] = {}

    async def worker(i: int) -> None:
        texts = [f"text {j % 7} {'ab' * (j % 3)}" for j in range(i, i + 20)]
        results[i] = await embedders[i % 2].embed(texts)

    async with anyio.create_task_group() as group:
        for i in range(12):
            group.start_soon(worker, i)
    for i, vectors in results.items():
        texts = [f"text {j % 7} {'ab' * (j % 3)}" for j in range(i, i + 20)]
        assert [list(v) for v in vectors] == [
            [float(t.count(ch)) + 0.5 for ch in "abcde"] for t in texts
        ]
    assert caches[0].count() == 21
    for cache in caches:
        cache.close()


def test_two_caches_created_at_once_on_one_new_file_both_open(tmp_path: Path) -> None:
    # SQLite answers one side of a simultaneous creation (the switch to write-ahead
    # logging) with "database is locked" without waiting; this failed ~1 time in 75.
    failures: list[BaseException] = []
    for n in range(150):
        caches = [EmbeddingCache(tmp_path / f"{n}.sqlite") for _ in range(2)]

        def open_cache(cache: EmbeddingCache) -> None:
            try:
                cache.get_sync("m", ["x"])
            except BaseException as exc:  # collected, asserted below
                failures.append(exc)

        threads = [threading.Thread(target=open_cache, args=(c,)) for c in caches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for cache in caches:
            cache.close()
    assert failures == []


def test_a_lock_conflict_on_open_is_retried_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    real_check = cache._check
    attempts: list[int] = []

    def busy_twice(connection: sqlite3.Connection) -> None:
        attempts.append(1)
        if len(attempts) <= 2:
            raise sqlite3.OperationalError("database is locked")
        real_check(connection)

    monkeypatch.setattr(cache, "_check", busy_twice)
    assert cache.get_sync("m", ["x"]) == [None]
    assert len(attempts) == 3
    cache.close()

    stuck = EmbeddingCache(tmp_path / "d.sqlite")

    def always_busy(connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(stuck, "_check", always_busy)
    monkeypatch.setattr(module, "_OPEN_TIMEOUT", 0.05)
    with pytest.raises(ArtifactError, match="cannot be opened: database is locked"):
        stuck.get_sync("m", ["x"])

    broken = EmbeddingCache(tmp_path / "e.sqlite")

    def not_busy(connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(broken, "_check", not_busy)
    with pytest.raises(ArtifactError, match="disk I/O error"):
        broken.get_sync("m", ["x"])


async def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    letters = Letters()
    embedder = CachedEmbedder(letters, path)
    await embedder.embed(["abc"])
    embedder.cache.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE embeddings SET vector = x'010203'")
    db.close()
    (vector,) = await embedder.embed(["abc"])
    assert list(vector) == [1.5, 1.5, 1.5, 0.5, 0.5]
    assert letters.calls == [["abc"], ["abc"]]
    assert await embedder.cache.get("letters", ["abc"]) != [None]
    embedder.cache.close()


async def test_a_file_that_is_not_a_cache_is_refused_and_kept(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, it is someone's notes" * 100)
    with pytest.raises(ArtifactError, match="not an intentflow embedding cache or is corrupt"):
        await CachedEmbedder(Letters(), garbage).embed(["a"])
    assert garbage.read_bytes().startswith(b"this is not a database")

    foreign = tmp_path / "app.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()
    with pytest.raises(ArtifactError, match="not an intentflow embedding cache; choose another"):
        await EmbeddingCache(foreign).get("m", ["a"])


async def test_a_cache_of_another_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = EmbeddingCache(path)
    await cache.put("m", ["a"], [[1.0, 2.0]])
    cache.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
    db.close()
    with pytest.raises(ArtifactError, match="format version '2'") as info:
        await EmbeddingCache(path).get("m", ["a"])
    assert info.value.supported == (1,)


async def test_put_checks_lengths(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="2 texts but 1 vectors"):
        await cache.put("m", ["a", "b"], [[1.0]])
    cache.close()


def test_cached_embedder_reports_the_wrapped_embedder(tmp_path: Path) -> None:
    inner = OpenAIEmbedder("text-embedding-3-small", dimensions=128)
    cached = CachedEmbedder(inner, tmp_path / "c.sqlite")
    assert (cached.name, cached.dimensions) == ("text-embedding-3-small@128", 128)
    assert cached.spec() == inner.spec()
    assert isinstance(cached, Embedder)
