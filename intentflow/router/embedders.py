"""Embedders for the embedding classifier: the protocol, the OpenAI endpoint, a disk cache.

An `Embedder` turns texts into vectors: ``await embedder.embed(texts)`` returns one vector
per text, in order. A vector is any sequence of floats (``Sequence[float]``):

* `OpenAIEmbedder` returns ``array.array("f")`` (float32, the precision the API's base64
  encoding carries): compact, numpy-free, and readable by numpy without a copy;
* `intentflow.router.minilm.MiniLMEmbedder` (the local model) returns float32 numpy arrays.

Numpy is therefore not needed to *embed* through the OpenAI endpoint or to cache; the
`intentflow.router.embedding.EmbeddingClassifier` that consumes the vectors needs it.

**Caching.** `EmbeddingCache` is a SQLite file (standard library ``sqlite3``) of vectors keyed
by the embedder's ``name`` and the SHA-256 of the text; texts themselves are not stored.
`CachedEmbedder` puts it in front of any embedder, so only texts it has not seen reach the
endpoint. The embedding classifier uses it for its *training examples* only (refitting is then
free), never for the messages it classifies, which would otherwise pile up on disk.

A cache file that is not an intentflow embedding cache (not SQLite, corrupt, another
application's database, another cache format version) raises `ArtifactError` naming the file:
the cache never deletes a file it cannot prove is its own; delete it to start afresh. A single
damaged entry inside a valid cache (a vector of the wrong size) is treated as a miss and
written again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
import threading
from array import array
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import openai

from intentflow import _sqlite
from intentflow.errors import ArtifactError, ConfigurationError, ModelResponseError
from intentflow.models.openai_chat import SDKClientOwner

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "EmbeddingCache",
    "OpenAIEmbedder",
    "Vector",
    "embedder_from_spec",
    "embedder_spec",
]

Vector = Sequence[float]
"""One embedding: a list, an ``array.array("f")`` or a 1-D numpy array of floats."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that embeds texts, asynchronously and in batches.

    Attributes:
        name: What the vectors come from (a model id); the embedding cache keys on it, and a
            saved classifier checks it, so two embedders whose vectors differ must have
            different names.
        dimensions: The length of the vectors, when known before the first call.
    """

    name: str

    @property
    def dimensions(self) -> int | None:
        """The length of the vectors, when known (before the first call or after it)."""
        ...

    def embed(self, texts: Sequence[str]) -> Awaitable[list[Vector]]:
        """One vector per text, in the order of ``texts``."""
        ...


class OpenAIEmbedder(SDKClientOwner):
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint, through the ``openai`` SDK.

    Texts are deduplicated, sent in batches of ``batch_size`` (several batches at once, up to
    ``max_concurrency``), and the vectors come back in the order of the texts. The SDK does
    the retrying (429, 5xx, connection errors, with backoff); what is left is raised as
    intentflow's model errors, as for chat models.

    Empty texts are sent as a single space: the API refuses empty input, and one bad message
    must not fail a whole batch.

    Args:
        model: The embedding model (``"text-embedding-3-small"``, ``"nomic-embed-text"``, ...).
        client: The SDK client. Without one, ``openai.AsyncOpenAI()`` is built from the
            environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) on the first request.
        dimensions: Ask for shortened vectors (``text-embedding-3`` models and later).
        batch_size: Texts per request (the API takes up to 2,048 and 300,000 tokens).
        max_concurrency: Requests in flight at once.
        encoding_format: ``"base64"`` (the default, as the SDK's: a quarter of the JSON) or
            ``"float"`` for servers that do not support base64. A server that ignores the
            setting and answers with floats works either way.
        max_retries: Retries the SDK makes; ``None`` keeps the client's setting.
        timeout: Seconds per request; ``None`` keeps the client's setting.

    Attributes:
        name: The model, with ``@dimensions`` when shortened vectors are asked for (they
            differ from the full ones, so the cache must not mix them).
        dimensions: The vector length: the requested one, else the one the last answer had
            (``None`` before the first).

    Raises:
        ConfigurationError: An empty model name, or a batch size, concurrency or dimension
            count below 1.

    Examples:
        >>> embedder = OpenAIEmbedder("text-embedding-3-small", dimensions=256)
        >>> embedder.name, embedder.dimensions
        ('text-embedding-3-small@256', 256)
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        client: openai.AsyncOpenAI | None = None,
        *,
        dimensions: int | None = None,
        batch_size: int = 256,
        max_concurrency: int = 4,
        encoding_format: Literal["base64", "float"] = "base64",
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> None:
        if not model:
            raise ConfigurationError("OpenAIEmbedder needs a model name")
        for what, value in (("batch_size", batch_size), ("max_concurrency", max_concurrency)):
            if value < 1:
                raise ConfigurationError(f"{what} must be at least 1, not {value}")
        if dimensions is not None and dimensions < 1:
            raise ConfigurationError(f"dimensions must be at least 1, not {dimensions}")
        if encoding_format not in ("base64", "float"):
            raise ConfigurationError(
                f"encoding_format must be 'base64' or 'float', not {encoding_format!r}"
            )
        self.model = model
        self.name = f"{model}@{dimensions}" if dimensions else model
        self.requested_dimensions = dimensions
        # Not guessed from the model's name: a compatible server may serve another model
        # under a familiar name, and a wrong length would fail a saved classifier's check.
        self.dimensions: int | None = dimensions
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.encoding_format: Literal["base64", "float"] = encoding_format
        super().__init__(client)
        self._options: dict[str, Any] = {}
        if max_retries is not None or timeout is not None:
            self._options = {
                k: v
                for k, v in (("max_retries", max_retries), ("timeout", timeout))
                if v is not None
            }

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.name!r})"

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed ``texts``: one float32 ``array.array`` per text, in order.

        Raises:
            ModelAPIError: The endpoint answered with an HTTP error (after the SDK's retries);
                `ModelRateLimited` for 429.
            ModelConnectionError: No answer arrived (`ModelTimeout` when the timeout expired).
            ModelResponseError: The answer does not have one vector per text.
        """
        unique = list(dict.fromkeys(texts))
        if not unique:
            return []
        found: dict[str, Vector] = {}
        batches = [unique[i : i + self.batch_size] for i in range(0, len(unique), self.batch_size)]
        limiter = anyio.CapacityLimiter(self.max_concurrency)

        async def run(batch: list[str]) -> None:
            async with limiter:
                vectors = await self._request(batch)
            found.update(zip(batch, vectors, strict=True))

        if len(batches) == 1:
            await run(batches[0])
        else:
            async with anyio.create_task_group() as group:
                for batch in batches:
                    group.start_soon(run, batch)
        return [found[text] for text in texts]

    async def _request(self, batch: list[str]) -> list[Vector]:
        params: dict[str, Any] = {
            "model": self.model,
            "input": [text or " " for text in batch],
            "encoding_format": self.encoding_format,
        }
        if self.requested_dimensions is not None:
            params["dimensions"] = self.requested_dimensions
        client = self.client.with_options(**self._options) if self._options else self.client
        try:
            response = await client.embeddings.create(**params)
        except openai.OpenAIError as exc:
            self._raise_model_error(exc, self.model)
        try:
            items = sorted(response.data, key=lambda item: item.index)
            vectors = [_vector(item.embedding) for item in items]
        except (AttributeError, TypeError, ValueError, binascii.Error) as exc:
            raise ModelResponseError(
                f"the embeddings from {self.model!r} have an unexpected shape: {exc}",
                model=self.model,
            ) from exc
        if len(vectors) != len(batch) or [item.index for item in items] != list(range(len(batch))):
            raise ModelResponseError(
                f"{self.model!r} returned {len(vectors)} embeddings for {len(batch)} texts",
                model=self.model,
            )
        sizes = {len(v) for v in vectors}
        if len(sizes) != 1 or 0 in sizes:
            raise ModelResponseError(
                f"{self.model!r} returned vectors of lengths {sorted(sizes)}", model=self.model
            )
        self.dimensions = sizes.pop()
        return vectors

    def spec(self) -> dict[str, Any]:
        """What `embedder_from_spec` rebuilds this embedder from (the client is not saved)."""
        return {
            "type": "openai",
            "name": self.name,
            "model": self.model,
            "dimensions": self.requested_dimensions,
            "batch_size": self.batch_size,
            "max_concurrency": self.max_concurrency,
            "encoding_format": self.encoding_format,
        }


def _vector(embedding: Any) -> Vector:
    # The SDK leaves the base64 string alone when a format is asked for explicitly; a server
    # that ignores encoding_format sends a list of floats instead.
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if len(raw) % 4:
            raise ValueError(f"a base64 embedding of {len(raw)} bytes is not float32 data")
        vector = array("f")
        vector.frombytes(raw)
        if vector.itemsize != 4:  # pragma: no cover - every mainstream platform has 4-byte float
            raise ValueError("this platform's C float is not 4 bytes")
        return vector
    if isinstance(embedding, list):
        return array("f", (float(x) for x in embedding))
    raise TypeError(
        f"an embedding is a list of floats or base64 text, not {type(embedding).__name__}"
    )


# --------------------------------------------------------------------------- the disk cache

_CACHE_FORMAT = "intentflow.embedding-cache"
_CACHE_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS embeddings ("
    " model TEXT NOT NULL, digest BLOB NOT NULL, vector BLOB NOT NULL,"
    " PRIMARY KEY (model, digest)) WITHOUT ROWID",
)
_LOOKUP_CHUNK = 500  # digests per SELECT: below SQLite's limit on bound parameters


_OPEN_TIMEOUT = _sqlite.OPEN_TIMEOUT


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """Vectors on disk, keyed by embedder name and text (a SQLite file).

    Safe to share: between tasks and threads of one process (one connection behind a lock;
    the SQLite calls run in worker threads, so the event loop is never blocked on disk) and
    between processes (SQLite's own locking; write-ahead logging lets readers go on while
    one process writes). Vectors are stored as little-endian float32.

    Args:
        path: The cache file; created (with its directory) on first use.

    Examples:
        >>> import tempfile, anyio
        >>> cache = EmbeddingCache(Path(tempfile.mkdtemp()) / "embeddings.sqlite")
        >>> async def main():
        ...     await cache.put("my-model", ["hello"], [[0.5, 0.25]])
        ...     return await cache.get("my-model", ["hello", "unseen"])
        >>> [list(v) if v is not None else None for v in anyio.run(main)]
        [[0.5, 0.25], None]
        >>> cache.close()
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode (isolation_level=None): every transaction is explicit.
        connection = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        try:
            _sqlite.retry_busy(lambda: self._check(connection), _OPEN_TIMEOUT)
        except sqlite3.OperationalError as exc:  # still locked after the deadline
            connection.close()
            raise ArtifactError(
                self.path, f"cannot be opened: {exc}; another process may hold it locked"
            ) from None
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _check(self, connection: sqlite3.Connection) -> None:
        """Create the schema in a new file; refuse a file that is not this cache."""

        def tables() -> set[str]:
            query = "SELECT name FROM sqlite_master WHERE type='table'"
            return {row[0] for row in connection.execute(query)}

        try:
            found = tables()
            if not found:
                connection.execute("PRAGMA journal_mode=WAL")
                # The write lock first, then look again: of two processes creating the cache
                # at once, the second must see the first's complete schema, never half of it.
                connection.execute("BEGIN IMMEDIATE")
                try:
                    if not tables():
                        for statement in _SCHEMA:
                            connection.execute(statement)
                        connection.executemany(
                            "INSERT INTO meta VALUES (?, ?)",
                            [("format", _CACHE_FORMAT), ("version", str(_CACHE_VERSION))],
                        )
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                found = tables()
            meta = (
                dict(connection.execute("SELECT key, value FROM meta").fetchall())
                if "meta" in found
                else {}
            )
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _sqlite.is_busy(exc):
                raise  # retried by _connect
            raise ArtifactError(
                self.path,
                f"is not an intentflow embedding cache or is corrupt ({exc}); "
                "delete it (or choose another path) to start a new cache",
            ) from None
        if meta.get("format") != _CACHE_FORMAT or "embeddings" not in found:
            raise ArtifactError(
                self.path,
                "is a SQLite database but not an intentflow embedding cache; "
                "choose another path (the cache never overwrites a file it did not create)",
            )
        if meta.get("version") != str(_CACHE_VERSION):
            raise ArtifactError(
                self.path,
                f"is an embedding cache of format version {meta.get('version')!r}, but this "
                f"intentflow reads version {_CACHE_VERSION}; delete it to start a new cache",
                found=meta.get("version"),
                supported=[_CACHE_VERSION],
            )

    def _failed(self, exc: sqlite3.Error) -> ArtifactError:
        return ArtifactError(
            self.path, f"cannot be used: {exc}; if it is corrupt, delete it to start a new cache"
        )

    def get_sync(self, name: str, texts: Sequence[str]) -> list[Vector | None]:
        """`get`, in this thread."""
        digests = [_digest(text) for text in texts]
        found: dict[bytes, bytes] = {}
        with self._lock:
            connection = self._connect()
            try:
                for start in range(0, len(digests), _LOOKUP_CHUNK):
                    chunk = list(dict.fromkeys(digests[start : start + _LOOKUP_CHUNK]))
                    # Only "?" placeholders are formatted into the statement.
                    marks = ",".join("?" * len(chunk))
                    rows = connection.execute(
                        "SELECT digest, vector FROM embeddings "
                        f"WHERE model = ? AND digest IN ({marks})",
                        [name, *chunk],
                    )
                    found.update(rows.fetchall())
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
        out: list[Vector | None] = []
        for digest in digests:
            blob = found.get(digest)
            if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                vector = array("f")
                vector.frombytes(blob)
                out.append(vector)
            else:  # absent, or damaged: a miss, written again after the embedder answers
                out.append(None)
        return out

    def put_sync(self, name: str, texts: Sequence[str], vectors: Sequence[Vector]) -> None:
        """`put`, in this thread."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        rows = [
            (name, _digest(text), array("f", vector).tobytes())
            for text, vector in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    connection.executemany(
                        "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows
                    )
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._failed(exc) from None

    async def get(self, name: str, texts: Sequence[str]) -> list[Vector | None]:
        """The cached vector of each text under embedder ``name``, or ``None`` where missing.

        Raises:
            ArtifactError: The file is not an intentflow embedding cache, or is corrupt.
        """
        return await anyio.to_thread.run_sync(self.get_sync, name, list(texts))

    async def put(self, name: str, texts: Sequence[str], vectors: Sequence[Vector]) -> None:
        """Store each text's vector under embedder ``name`` (replacing what was there).

        Raises:
            ArtifactError: The file is not an intentflow embedding cache, or is corrupt.
            ValueError: ``texts`` and ``vectors`` differ in length.
        """
        await anyio.to_thread.run_sync(self.put_sync, name, list(texts), list(vectors))

    def count(self, name: str | None = None) -> int:
        """How many vectors the cache holds (for embedder ``name``, or in all)."""
        with self._lock:
            connection = self._connect()
            if name is None:
                row = connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()
            else:
                row = connection.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE model = ?", (name,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection (the cache reopens it if used again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class CachedEmbedder:
    """An embedder behind an `EmbeddingCache`: only texts not in the cache are embedded.

    Missing texts are embedded ``chunk_size`` at a time and each chunk is stored as soon as
    it arrives, so a long first fit that fails half-way (a rate limit, a lost connection)
    keeps what it paid for, and the retry embeds only the rest.

    Args:
        embedder: The embedder that computes missing vectors.
        cache: The cache, or the path of its file.
        chunk_size: Missing texts per call to ``embedder`` (each call batches as it likes).

    Attributes:
        hits: How many texts were answered from the cache.
        misses: How many distinct texts had to be embedded.

    Raises:
        ConfigurationError: ``chunk_size`` is below 1.

    Examples:
        >>> embedder = CachedEmbedder(OpenAIEmbedder("text-embedding-3-small"), "cache.sqlite")
        >>> embedder.name
        'text-embedding-3-small'
    """

    def __init__(
        self, embedder: Embedder, cache: EmbeddingCache | str | Path, *, chunk_size: int = 1024
    ) -> None:
        if chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be at least 1, not {chunk_size}")
        self.embedder = embedder
        self.cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
        self.name = embedder.name
        self.chunk_size = chunk_size
        self.hits = 0
        self.misses = 0

    @property
    def dimensions(self) -> int | None:
        """The wrapped embedder's vector length."""
        return self.embedder.dimensions

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.embedder!r}, {self.cache!r})"

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """The cached vectors, and the embedder's for the texts the cache does not hold.

        Raises:
            ArtifactError: The cache file is unusable (see `EmbeddingCache`).
            ModelError: The embedder failed (the chunks embedded before stay cached).
        """
        texts = list(texts)
        cached = await self.cache.get(self.name, texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, cached, strict=True) if v is None))
        self.hits += len(texts) - sum(v is None for v in cached)
        new: dict[str, Vector] = {}
        for start in range(0, len(missing), self.chunk_size):
            chunk = missing[start : start + self.chunk_size]
            fresh = await self.embedder.embed(chunk)
            if len(fresh) != len(chunk):
                raise ModelResponseError(
                    f"{self.name!r} returned {len(fresh)} vectors for {len(chunk)} texts"
                )
            await self.cache.put(self.name, chunk, fresh)
            self.misses += len(chunk)
            new.update(zip(chunk, fresh, strict=True))
        return [v if v is not None else new[t] for t, v in zip(texts, cached, strict=True)]

    def spec(self) -> dict[str, Any]:
        """The wrapped embedder's spec (the cache is a fitting aid, not part of a model)."""
        return embedder_spec(self.embedder)


def embedder_spec(embedder: Embedder) -> dict[str, Any]:
    """What a saved classifier records of its embedder, to rebuild it with `embedder_from_spec`.

    Embedders with a ``spec()`` method describe themselves; any other is recorded by name
    only (``{"type": "custom", ...}``), and must be passed in again when loading.
    """
    spec = getattr(embedder, "spec", None)
    if callable(spec):
        data = spec()
        if isinstance(data, dict):
            return data
    return {"type": "custom", "name": embedder.name, "class": type(embedder).__qualname__}


def embedder_from_spec(spec: dict[str, Any]) -> Embedder:
    """The embedder a spec from `embedder_spec` describes.

    OpenAI embedders get a client from the environment (``OPENAI_API_KEY``,
    ``OPENAI_BASE_URL``) on first use; the local model is read from its package or directory.

    Raises:
        ConfigurationError: The spec is of a custom embedder (pass the embedder instead), is
            malformed, or the local model is not installed.
    """
    kind = spec.get("type")
    try:
        if kind == "openai":
            return OpenAIEmbedder(
                spec["model"],
                dimensions=spec.get("dimensions"),
                batch_size=int(spec.get("batch_size", 256)),
                max_concurrency=int(spec.get("max_concurrency", 4)),
                encoding_format=spec.get("encoding_format", "base64"),
            )
        if kind == "minilm":
            from intentflow.router.minilm import MiniLMEmbedder

            return MiniLMEmbedder(
                spec.get("model_dir"),
                name=spec.get("name"),
                batch_size=int(spec.get("batch_size", 32)),
                max_length=spec.get("max_length"),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"a malformed embedder spec {spec!r}: {exc}") from exc
    raise ConfigurationError(
        f"the embedder {spec.get('name')!r} ({spec.get('class', kind)}) cannot be rebuilt from "
        "its description; pass it in: load(directory, embedder=...)"
    )
