"""A deterministic, offline text embedding, and the ``/embeddings`` answer built from it.

`hashed_ngram_embedding` hashes a text's words and character trigrams into a fixed
number of dimensions and L2-normalises the result, so texts that share words or word pieces
get a high cosine similarity and unrelated texts a low one. It is not a semantic model
("car" and "automobile" are unrelated to it), but it is stable across runs, platforms and
Python versions (it uses BLAKE2, not Python's salted ``hash``), and it needs nothing beyond
the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import TYPE_CHECKING, Any

from intentflow.testing.replies import estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "DEFAULT_DIMENSIONS",
    "InvalidEmbeddingRequest",
    "cosine_similarity",
    "embeddings_response",
    "encode_base64",
    "hashed_ngram_embedding",
    "shorten",
]

DEFAULT_DIMENSIONS = 256
"""The length of the vectors `hashed_ngram_embedding` returns by default."""

_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.5


def _features(text: str) -> list[tuple[str, float]]:
    words = text.lower().split()
    features = [(f"w:{word}", _WORD_WEIGHT) for word in words]
    for word in words:
        padded = f" {word} "  # the padding marks word starts and ends as features too
        features += [(f"t:{padded[i : i + 3]}", _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)]
    return features


def hashed_ngram_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Embed a text as hashed word and character-trigram features, L2-normalised.

    Args:
        text: Any text; case and runs of whitespace do not matter.
        dimensions: The vector length.

    Returns:
        A unit vector. A text without any word (empty or blank) maps to the first basis
        vector, so every result can be compared by cosine similarity.

    Examples:
        >>> a = hashed_ngram_embedding("book a flight to Paris")
        >>> b = hashed_ngram_embedding("please book me a flight to Paris")
        >>> c = hashed_ngram_embedding("what is my account balance")
        >>> cosine_similarity(a, b) > cosine_similarity(a, c)
        True
    """
    if dimensions < 1:
        raise ValueError(f"dimensions must be >= 1, not {dimensions}")
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        # One bit of the hash picks a sign, so collisions cancel out on average
        # instead of piling up.
        sign = 1.0 if digest & 1 else -1.0
        vector[(digest >> 1) % dimensions] += sign * weight
    return _normalised(vector)


def shorten(vector: Sequence[float], dimensions: int) -> list[float]:
    """Keep the first ``dimensions`` values and re-normalise, as OpenAI's ``dimensions`` does.

    Raises:
        ValueError: ``dimensions`` is not between 1 and ``len(vector)``.
    """
    if not 1 <= dimensions <= len(vector):
        raise ValueError(f"dimensions must be between 1 and {len(vector)}, not {dimensions}")
    return _normalised(list(vector[:dimensions]))


def encode_base64(vector: Sequence[float]) -> str:
    """A vector as the API's ``encoding_format: "base64"`` sends it: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between two vectors (0.0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return [1.0] + [0.0] * (len(vector) - 1)
    return [x / norm for x in vector]


class InvalidEmbeddingRequest(ValueError):
    """An embeddings request the real API would refuse with HTTP 400; the message says why."""


def embeddings_response(
    request: Any, embed: Callable[[str], list[float]], *, default_model: str
) -> dict[str, Any]:
    """The API's answer to an embeddings request (a ``CreateEmbeddingResponse`` object).

    Honours ``input`` (a string, a list of strings, or token arrays, which are embedded as
    the text of their numbers), ``dimensions`` (see `shorten`) and ``encoding_format``
    (``"float"``, or ``"base64"``, which the ``openai`` SDK asks for by default and decodes).

    Args:
        request: The parsed JSON body of the request.
        embed: Text to vector.
        default_model: The ``model`` to report when the request names none.

    Raises:
        InvalidEmbeddingRequest: The request is malformed.
    """
    if not isinstance(request, dict):
        raise InvalidEmbeddingRequest("The body must be a JSON object.")
    texts = _texts(request.get("input"))
    dimensions = request.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidEmbeddingRequest(
            f"Invalid 'dimensions': {dimensions!r}; expected a positive integer."
        )
    encoding = request.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidEmbeddingRequest(
            f"Invalid 'encoding_format': {encoding!r}; expected 'float' or 'base64'."
        )
    data = []
    for index, text in enumerate(texts):
        vector = embed(text)
        if dimensions is not None:
            if dimensions > len(vector):
                raise InvalidEmbeddingRequest(
                    f"This model has {len(vector)} dimensions; cannot return {dimensions}."
                )
            vector = shorten(vector, dimensions)
        embedding: Any = encode_base64(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(estimate_tokens(text) for text in texts)
    model = request.get("model")
    return {
        "object": "list",
        "data": data,
        "model": model if isinstance(model, str) else default_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        items = [value]  # a single token array
    elif isinstance(value, list) and value:
        items = value
    else:
        raise InvalidEmbeddingRequest("'input' must be a non-empty string or array.")
    texts = []
    for item in items:
        if isinstance(item, list) and item and all(isinstance(v, int) for v in item):
            texts.append(" ".join(map(str, item)))
        elif isinstance(item, str) and item:
            texts.append(item)
        else:
            raise InvalidEmbeddingRequest(
                f"Invalid 'input' item {item!r}: expected a non-empty string."
            )
    return texts
