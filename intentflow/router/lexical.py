"""The router's embedded default intent classifier: lexical features and a multi-class linear SVM.

No network, no model download: :class:`LexicalClassifier` is trained in seconds from the
intents' example utterances and predicts one message in tens of microseconds.

**Features.** Text is lowercased and split into Unicode word tokens (``\\w+``: letters, digits
and underscores of any script; no stemming). Two blocks, each weighted ``1/√2`` so that neither
dominates:

* *words*: unigrams and bigrams, sublinear TF (``1 + ln tf``) times IDF, L2-normalised;
* *characters*: the 2- to 5-grams of each token padded with spaces (``" card "`` gives ``" c"``,
  ``"car"``, ``"ard "``, ...), which share evidence between inflections (``book``, ``booking``)
  and survive typos. Each token contributes its IDF-weighted n-gram counts; the block is divided
  by ``sqrt(Σ ||token||²)``. Unlike a plain L2 norm this makes the block a sum of per-token
  vectors, so a token's whole contribution to the class scores can be computed once and cached:
  prediction then costs one cached vector per token instead of ~20 n-gram lookups.

IDF is the smoothed ``ln((1 + n) / (1 + df)) + 1``. Bigrams and character n-grams seen in fewer
than ``min_df`` training utterances are dropped (a feature seen once cannot generalise beyond its
utterance, and dropping them halves the model); word unigrams are always kept.

**Model.** A Crammer-Singer multi-class linear SVM (one weight vector per class, hinge loss on
the margin between the true class and the best wrong one), trained by the sequential dual
coordinate method of Keerthi et al. (2008), the solver behind LIBLINEAR's ``-s 4``. Each step
solves one utterance's sub-problem exactly, so there is no learning rate to tune. ``C = 1``
(LIBLINEAR's default) and the stopping tolerance ``0.1`` are the usual defaults. The utterance
order is shuffled with ``seed``, so fitting is deterministic.

Training shrinks as LIBLINEAR does: a class whose dual variable sits at its bound and cannot
improve leaves that utterance's working set, and an utterance left with one class leaves the
passes; an utterance whose violation is already ten times below ``tol`` sits them out too. So
later passes only visit the utterances and classes still moving (on CLINC150 that is still 60%
of the utterances, the support vectors, but mostly with two to five classes each).
Whenever a pass's largest violation falls below a shrinking tolerance (1, then halved down to
``tol``), every utterance is checked against every class at the current weights, and training
stops when that check finds no violation above ``tol``: shrinking never stops it early.
``max_epochs`` caps the passes; ``epochs_run`` says how many there were. With numpy, a step
over every class is vectorised and a step over a few classes runs in Python lists.

The fitted weights are rounded to float32 and weights below float32's resolution of the largest
(the residue of dual variables that went back to zero) are dropped: on CLINC150 about a fifth
of the feature-class pairs keep a weight.

A bias feature (value ``bias``, 1 as in LIBLINEAR's ``-B 1``) gives each class a learned
offset: the class's prior, and for the internal out-of-scope class a baseline that ordinary
words must beat.

**Out-of-scope.** Utterances labelled ``None`` train an extra internal class that competes with
the intents; the method works without them. :attr:`Prediction.confidence` is the softmax
probability of the best intent at ``temperature`` (over the intents and the internal
out-of-scope class); the SVM is trained for a margin of 1, so with the default temperature
0.1 a margin of 1 is a probability ratio of ``e¹⁰``. The caller abstains below a threshold,
which `intentflow.router.evaluation.fit_threshold` chooses on labelled held-out data.

**Speed.** numpy, when installed, speeds up fitting (on CLINC150's 15,100 utterances, about
12 s instead of about 5 minutes on a shared 2-core machine) and prediction; without it the same
computation runs in pure Python (``use_numpy=False`` forces that), with the same results up to
floating-point rounding. Pure-Python prediction adds the cached per-token and per-feature
class-score vectors packed into big integers (64-bit fixed-point lanes, one per class), so
summing a vector is one C-level big-int addition instead of a loop over the classes; it falls
back to the plain sparse sum when packing could overflow. ``benchmarks/router_lexical.py``
measures all of this.

**Saving.** :meth:`LexicalClassifier.save` writes a directory: ``lexical.json``, a manifest in
the format ``intentflow.lexical`` version 1 (parameters, intents, the vocabulary, and the
sizes and SHA-256 of the arrays), and ``lexical.bin``, the numbers, little-endian: the IDF and
bias weights (float64), then the weights as sparse rows (uint32 row offsets, one-byte class
indices when there are at most 256 classes, float32 values); 5.7 MB on CLINC150.
:meth:`LexicalClassifier.load` reads it with or without numpy and predicts exactly as the saved
classifier did; anything missing, truncated, corrupt or of another format or version is an
`ArtifactError`. :meth:`LexicalClassifier.to_dict` / :meth:`LexicalClassifier.from_dict`
give the same model as JSON-ready data, to embed in another document.

Prediction caches the class scores of each token and word feature it meets (32 fractional bits:
within about 1e-9 of the numpy path), at most 50,000 entries per cache, cleared when full.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import math
import operator
import os
import random
import re
import struct
import sys
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from intentflow.errors import ArtifactError
from intentflow.router.data import check_training_data
from intentflow.router.decision import Prediction
from intentflow.router.persist import read_manifest, write_manifest

__all__ = ["LexicalClassifier", "Prediction"]


@functools.cache
def _numpy() -> Any:
    """numpy, or None when it is not installed; imported on first use, not with intentflow
    (it is optional, and importing it costs every process tens of milliseconds)."""
    try:
        return importlib.import_module("numpy")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


_struct_unpack = struct.unpack
_TOKEN = re.compile(r"\w+")
_FORMAT = "intentflow.lexical"  # the manifest's format and version (see intentflow.router.persist)
_VERSION = 1
_DICT_FORMAT = "intentflow.lexical/1"  # to_dict / from_dict
_MANIFEST = "lexical.json"
_BINARY = "lexical.bin"
_SQRT_HALF = math.sqrt(0.5)
_CACHE_LIMIT = 50_000  # entries kept by each per-token / per-feature cache before it is reset
_LANE = 64  # bits per class in a packed score vector
_ONE = float(1 << 32)  # fixed-point scale of packed scores: 32 fractional bits
_MAX_ITEM = 1 << 50  # a packed item's lanes span < 2**50 (2**18 in score): 4096 fit 63 bits
_MAX_PACKED_ITEMS = 4096


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _word_features(tokens: Sequence[str], bigrams: bool) -> Counter[str]:
    feats = Counter("w:" + t for t in tokens)
    if bigrams:
        feats.update(f"b:{a} {b}" for a, b in itertools.pairwise(tokens))
    return feats


def _char_ngrams(token: str, lo: int, hi: int) -> Counter[str]:
    padded = f" {token} "
    n = len(padded)
    return Counter("c:" + padded[i : i + k] for k in range(lo, hi + 1) for i in range(n - k + 1))


def _class_code(n_classes: int) -> str:
    """The array type code of the saved class indices: one byte when they fit."""
    return "B" if n_classes <= 1 << 8 else "H" if n_classes <= 1 << 16 else "I"


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LexicalClassifier:
    """A fast lexical intent classifier (TF-IDF words + character n-grams, multi-class SVM).

    Args:
        top_k: how many intents :attr:`Prediction.scores` lists.
        seed: seeds the training order; the same seed and data give the same model.
        c: the SVM's regularisation constant (larger fits the training data more closely).
        max_epochs: passes over the utterances still being optimised, at most.
        tol: stop when no utterance violates its optimality condition by more than this.
        char_ngrams: the ``(min, max)`` length of the character n-grams (``(0, 0)``: none).
        word_bigrams: whether word bigrams are features.
        min_df: bigrams and character n-grams need this many training utterances.
        temperature: the softmax temperature turning SVM scores into probabilities.
        bias: the value of the constant bias feature (0: no bias).
        use_numpy: use numpy when ``None`` (default) and it is installed, never when ``False``.
        name: the name a router's `RouteDecision` reports for this classifier.

    It is a router `Classifier`: ``await clf.classify(text)`` is ``clf.predict(text)``, and a
    `SavableClassifier` (:meth:`save`, :meth:`load`; kind ``"lexical"``).

    Examples:
        >>> clf = LexicalClassifier(top_k=2).fit(
        ...     ["book a flight to paris", "i need a plane ticket", "fly me to rome",
        ...      "what's the weather today", "will it rain tomorrow", "is it sunny outside"],
        ...     ["flight", "flight", "flight", "weather", "weather", "weather"],
        ... )
        >>> clf.labels
        ('flight', 'weather')
        >>> p = clf.predict("is it going to rain in paris")
        >>> p.label, [label for label, _ in p.scores]
        ('weather', ['weather', 'flight'])
        >>> 0.5 < p.confidence <= 1.0
        True
    """

    kind: ClassVar[str] = "lexical"

    def __init__(
        self,
        *,
        top_k: int = 5,
        seed: int = 0,
        c: float = 1.0,
        max_epochs: int = 1000,
        tol: float = 0.1,
        char_ngrams: tuple[int, int] = (2, 5),
        word_bigrams: bool = True,
        min_df: int = 2,
        temperature: float = 0.1,
        bias: float = 1.0,
        use_numpy: bool | None = None,
        name: str = "lexical",
    ) -> None:
        lo, hi = char_ngrams
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if c <= 0 or temperature <= 0 or tol <= 0:
            raise ValueError("c, temperature and tol must be positive")
        if bias < 0:
            raise ValueError("bias must be 0 (none) or positive")
        if max_epochs < 1 or min_df < 1:
            raise ValueError("max_epochs and min_df must be at least 1")
        if (lo, hi) != (0, 0) and not 1 <= lo <= hi:
            raise ValueError("char_ngrams must be (0, 0) or (lo, hi) with 1 <= lo <= hi")
        if use_numpy and _numpy() is None:
            raise ValueError("use_numpy=True but numpy is not installed")
        self.top_k = top_k
        self.seed = seed
        self.c = c
        self.max_epochs = max_epochs
        self.tol = tol
        self.char_ngrams = (lo, hi)
        self.word_bigrams = word_bigrams
        self.min_df = min_df
        self.temperature = temperature
        self.bias = bias
        self.use_numpy = use_numpy
        self.name = name
        # Fitted state.
        self._labels: tuple[str, ...] = ()
        self._has_oos = False
        self._vocab: dict[str, int] = {}
        self._idf: list[float] = []
        self._postings: list[tuple[array[int], array[float]]] = []  # per feature: classes, weights
        self._bias_weights: list[float] = []
        self.epochs_run = 0
        self._reset_caches()

    # -- public API ------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        """The intents the classifier was fitted on, sorted (empty before :meth:`fit`)."""
        return self._labels

    def fit(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:
        """Learn the intents from example utterances; ``None`` labels out-of-scope examples.

        Raises:
            ValueError: when ``texts`` and ``labels`` differ in length, there are no examples,
                or fewer than two intents (out-of-scope examples do not count as an intent).
        """
        intents = check_training_data(texts, labels)
        self._labels = tuple(intents)
        self._has_oos = any(label is None for label in labels)
        index = {label: i for i, label in enumerate(intents)}
        oos = len(intents)
        y = [oos if label is None else index[label] for label in labels]

        tokenized = [_tokens(text) for text in texts]
        words = [_word_features(tokens, self.word_bigrams) for tokens in tokenized]
        self._build_vocabulary(tokenized, words)
        parts: dict[str, tuple[dict[int, float], float]] = {}
        rows = [
            self._vector(tokens, parts, feats)
            for tokens, feats in zip(tokenized, words, strict=True)
        ]
        n_features, n_classes = len(self._vocab), self._n_classes
        if self.bias:  # the bias is one more feature, with the same value in every utterance
            for ids, vals in rows:
                ids.append(n_features)
                vals.append(self.bias)
        train = _train_numpy if self._numpy_enabled() else _train_python
        postings, self.epochs_run = train(
            rows, y, n_features + 1, n_classes, self.c, self.max_epochs, self.tol, self.seed
        )
        cls, w = postings.pop()
        self._bias_weights = [0.0] * n_classes
        for m, x in zip(cls, w, strict=True):
            self._bias_weights[m] = x
        self._postings = postings
        self._reset_caches()
        return self

    def predict(self, text: str) -> Prediction:
        """Classify one message.

        Examples:
            >>> clf = LexicalClassifier().fit(["hi there", "hello", "bye now", "goodbye"],
            ...                               ["greet", "greet", "bye", "bye"])
            >>> clf.predict("hello there").label
            'greet'
        """
        self._check_fitted()
        if self._dense is not None:
            return self._finish(self._scores_numpy(_tokens(text)))
        return self._finish(self._scores_python(_tokens(text)))

    async def classify(self, text: str) -> Prediction:
        """:meth:`predict` as the router's `Classifier` protocol wants it (a coroutine)."""
        return self.predict(text)

    def predict_many(self, texts: Iterable[str]) -> list[Prediction]:
        """Classify several messages (the same as :meth:`predict` on each)."""
        return [self.predict(text) for text in texts]

    def save(self, directory: Path) -> None:
        """Write the fitted classifier into ``directory``: ``lexical.json`` (the manifest:
        parameters, intents, vocabulary) and ``lexical.bin`` (the numbers, little-endian).

        :meth:`load` gives back a classifier with exactly the same predictions.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> clf = LexicalClassifier().fit(["hi", "hello", "bye", "see you"],
            ...                               ["greet", "greet", "bye", "bye"])
            >>> folder = Path(tempfile.mkdtemp())
            >>> clf.save(folder)
            >>> sorted(p.name for p in folder.iterdir())
            ['lexical.bin', 'lexical.json']
            >>> LexicalClassifier.load(folder).predict("hello") == clf.predict("hello")
            True

        Raises:
            ValueError: when the classifier is not fitted.
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n_classes = self._n_classes
        class_code = _class_code(n_classes)
        indptr = array("I", [0])
        classes = array(class_code)
        values = array("f")
        for cls, w in self._postings:
            classes.fromlist(cls.tolist())
            values.fromlist(w.tolist())  # exact: fit rounds the weights to float32
            indptr.append(len(classes))
        parts: list[array[Any]] = [
            array("d", self._idf),
            array("d", self._bias_weights),
            indptr,
            classes,
            values,
        ]
        if sys.byteorder == "big":  # pragma: no cover - depends on the machine
            for part in parts:
                part.byteswap()
        blob = b"".join(part.tobytes() for part in parts)
        _write_bytes(directory / _BINARY, blob)
        write_manifest(
            directory / _MANIFEST,
            _FORMAT,
            _VERSION,
            {
                "params": self._params(),
                "labels": list(self._labels),
                "has_oos": self._has_oos,
                "epochs_run": self.epochs_run,
                "arrays": {
                    "file": _BINARY,
                    "bytes": len(blob),
                    "sha256": hashlib.sha256(blob).hexdigest(),
                    "features": len(self._postings),
                    "classes": n_classes,
                    "weights": len(classes),
                    "class_type": class_code,
                    "layout": "idf f8, bias f8, indptr u4, classes, weights f4; little-endian",
                },
                "features": sorted(self._vocab, key=self._vocab.__getitem__),
            },
        )

    @classmethod
    def load(cls, directory: Path, *, use_numpy: bool | None = None) -> Self:
        """Read a classifier written by :meth:`save` (``use_numpy`` as for the constructor).

        Raises:
            ArtifactError: when a file is missing, corrupt or truncated, or was written in a
                format or version this intentflow does not read.
        """
        directory = Path(directory)
        path = directory / _MANIFEST
        data = read_manifest(path, _FORMAT, (_VERSION,))
        try:
            params = dict(data["params"])
            params["char_ngrams"] = tuple(params["char_ngrams"])
            labels = data["labels"]
            has_oos = data["has_oos"]
            epochs_run = int(data["epochs_run"])
            features = data["features"]
            info = dict(data["arrays"])
            size, digest = int(info["bytes"]), str(info["sha256"])
            n_features, n_weights = int(info["features"]), int(info["weights"])
            saved_classes, class_code = int(info["classes"]), str(info["class_type"])
            binary_name = info["file"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(path, f"is corrupt: {type(exc).__name__}: {exc}") from None
        if not (
            isinstance(labels, list)
            and all(isinstance(label, str) for label in labels)
            and len(labels) >= 2
            and labels == sorted(set(labels))
            and isinstance(has_oos, bool)
            and isinstance(features, list)
            and all(isinstance(feature, str) for feature in features)
            and len(features) == len(set(features)) == n_features
            and saved_classes == len(labels) + has_oos
            and class_code == _class_code(saved_classes)
            and n_weights >= 0
            and binary_name == _BINARY
        ):
            raise ArtifactError(path, "is corrupt: its labels, features and arrays disagree")
        n_classes = saved_classes
        binary = directory / _BINARY
        if use_numpy and _numpy() is None:
            raise ValueError("use_numpy=True but numpy is not installed")
        try:
            self = cls(**params, use_numpy=use_numpy)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(path, f"is corrupt: bad parameters ({exc})") from None
        try:
            blob = binary.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(binary, "no such file (the classifier's weights)") from None
        except OSError as exc:
            raise ArtifactError(binary, f"cannot be read: {exc}") from exc
        if len(blob) != size:
            raise ArtifactError(
                binary, f"has {len(blob)} bytes but should have {size}: it is truncated or corrupt"
            )
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ArtifactError(binary, "does not match its checksum: the file is corrupt")
        width = array(class_code).itemsize
        expected = 8 * (n_features + n_classes) + 4 * (n_features + 1) + (width + 4) * n_weights
        if size != expected:
            raise ArtifactError(path, "is corrupt: the array sizes disagree with the file size")
        arrays: list[array[Any]] = []
        offset = 0
        for code, count in (
            ("d", n_features),
            ("d", n_classes),
            ("I", n_features + 1),
            (class_code, n_weights),
            ("f", n_weights),
        ):
            part = array(code)
            end = offset + part.itemsize * count
            part.frombytes(blob[offset:end])
            if sys.byteorder == "big":  # pragma: no cover - depends on the machine
                part.byteswap()
            arrays.append(part)
            offset = end
        idf, bias_weights, indptr, classes, values = arrays
        if (
            indptr[0] != 0
            or indptr[-1] != n_weights
            or any(a > b for a, b in itertools.pairwise(indptr))
            or (n_weights and max(classes) >= n_classes)
        ):
            raise ArtifactError(binary, "is corrupt: its sparse weights are malformed")
        self._labels = tuple(labels)
        self._has_oos = has_oos
        self.epochs_run = epochs_run
        self._vocab = {feature: i for i, feature in enumerate(features)}
        self._idf = idf.tolist()
        self._bias_weights = bias_weights.tolist()
        doubles = array("d", values)
        ints = array("i", classes)
        self._postings = [
            (ints[start:stop], doubles[start:stop]) for start, stop in itertools.pairwise(indptr)
        ]
        self._reset_caches()
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-ready data; :meth:`from_dict` restores it exactly.

        For embedding in another JSON document; :meth:`save` writes the same model far more
        compactly.

        Examples:
            >>> import json
            >>> clf = LexicalClassifier().fit(["hi", "hello", "bye", "see you"],
            ...                               ["greet", "greet", "bye", "bye"])
            >>> again = LexicalClassifier.from_dict(json.loads(json.dumps(clf.to_dict())))
            >>> again.predict("hello") == clf.predict("hello")
            True
        """
        self._check_fitted()
        features = sorted(self._vocab, key=self._vocab.__getitem__)
        return {
            "format": _DICT_FORMAT,
            "params": self._params(),
            "labels": list(self._labels),
            "has_oos": self._has_oos,
            "epochs_run": self.epochs_run,
            "features": features,
            "idf": list(self._idf),
            "weights": [[list(cls), list(w)] for cls, w in self._postings],
            "bias_weights": list(self._bias_weights),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, use_numpy: bool | None = None) -> Self:
        """Restore a classifier saved by :meth:`to_dict`.

        Raises:
            ValueError: when ``data`` is not a saved :class:`LexicalClassifier`.
        """
        if not isinstance(data, dict) or data.get("format") != _DICT_FORMAT:
            raise ValueError(f"not a saved LexicalClassifier (expected format {_DICT_FORMAT!r})")
        params = dict(data["params"])
        params["char_ngrams"] = tuple(params["char_ngrams"])
        self = cls(**params, use_numpy=use_numpy)
        features = data["features"]
        if not len(features) == len(data["idf"]) == len(data["weights"]):
            raise ValueError("corrupt model: features, idf and weights differ in length")
        self._labels = tuple(data["labels"])
        self._has_oos = bool(data["has_oos"])
        self.epochs_run = int(data["epochs_run"])
        self._vocab = {feature: i for i, feature in enumerate(features)}
        self._idf = [float(v) for v in data["idf"]]
        self._postings = [(array("i", c), array("d", map(float, w))) for c, w in data["weights"]]
        self._bias_weights = [float(w) for w in data["bias_weights"]]
        if len(self._bias_weights) != self._n_classes:
            raise ValueError("corrupt model: bias_weights do not match the labels")
        self._reset_caches()
        return self

    def _params(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "seed": self.seed,
            "c": self.c,
            "max_epochs": self.max_epochs,
            "tol": self.tol,
            "char_ngrams": list(self.char_ngrams),
            "word_bigrams": self.word_bigrams,
            "min_df": self.min_df,
            "temperature": self.temperature,
            "bias": self.bias,
            "name": self.name,
        }

    # -- features --------------------------------------------------------------------------

    @property
    def _n_classes(self) -> int:
        return len(self._labels) + self._has_oos

    def _numpy_enabled(self) -> bool:
        return _numpy() is not None and self.use_numpy is not False

    def _char_counts(self, token: str) -> Counter[str]:
        lo, hi = self.char_ngrams
        return _char_ngrams(token, lo, hi) if hi else Counter()

    def _build_vocabulary(
        self, tokenized: Sequence[Sequence[str]], words: Sequence[Counter[str]]
    ) -> None:
        df: Counter[str] = Counter()
        grams: dict[str, list[str]] = {}
        for tokens, word_feats in zip(tokenized, words, strict=True):
            feats = set(word_feats)
            for token in set(tokens):
                token_grams = grams.get(token)
                if token_grams is None:
                    token_grams = grams[token] = list(self._char_counts(token))
                feats.update(token_grams)
            df.update(feats)
        kept = sorted(f for f, n in df.items() if n >= self.min_df or f.startswith("w:"))
        n = len(tokenized)
        self._vocab = {f: i for i, f in enumerate(kept)}
        self._idf = [math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept]

    def _word_part(
        self, tokens: Sequence[str], feats: Counter[str] | None = None
    ) -> tuple[list[int], list[float]]:
        """The word block: feature ids and their sublinear-TF-IDF values, scaled to norm 1/√2.

        ``feats``: the tokens' word features, when already counted.
        """
        vocab, idf = self._vocab, self._idf
        ids: list[int] = []
        vals: list[float] = []
        if feats is None:
            feats = _word_features(tokens, self.word_bigrams)
        for feature, tf in feats.items():
            i = vocab.get(feature)
            if i is not None:
                ids.append(i)
                vals.append((1.0 + math.log(tf)) * idf[i] if tf > 1 else idf[i])
        norm = math.sqrt(sum(v * v for v in vals))
        if norm:
            scale = _SQRT_HALF / norm
            vals = [v * scale for v in vals]
        return ids, vals

    def _token_part(self, token: str) -> tuple[list[int], list[float], float]:
        """One token's character n-grams: ids, IDF-weighted counts and the squared norm."""
        vocab, idf = self._vocab, self._idf
        ids: list[int] = []
        vals: list[float] = []
        for gram, count in self._char_counts(token).items():
            i = vocab.get(gram)
            if i is not None:
                ids.append(i)
                vals.append(count * idf[i])
        return ids, vals, sum(v * v for v in vals)

    def _vector(
        self,
        tokens: Sequence[str],
        parts: dict[str, tuple[dict[int, float], float]],
        feats: Counter[str] | None = None,
    ) -> tuple[list[int], list[float]]:
        """The full feature vector of an utterance (``parts`` caches the tokens' n-grams)."""
        ids, vals = self._word_part(tokens, feats)
        acc: dict[int, float] = {}
        total = 0.0
        for token in tokens:
            part = parts.get(token)
            if part is None:
                t_ids, t_vals, sq = self._token_part(token)
                part = parts[token] = (dict(zip(t_ids, t_vals, strict=True)), sq)
            grams, sq = part
            total += sq
            if acc.keys().isdisjoint(grams):  # usual: no n-gram shared with earlier tokens
                acc.update(grams)
            else:
                for i, v in grams.items():
                    acc[i] = acc[i] + v if i in acc else v
        if total:
            scale = _SQRT_HALF / math.sqrt(total)
            ids += acc
            vals += [v * scale for v in acc.values()]
        return ids, vals

    # -- prediction ------------------------------------------------------------------------

    def _reset_caches(self) -> None:
        # token -> (its character block's unscaled class scores, its squared norm)
        self._token_cache: dict[str, tuple[Any, float]] = {}
        # token -> (packed scores, their shift, squared norm); feature -> (packed, shift)
        self._packed_tokens: dict[str, tuple[int, int, float]] = {}
        self._packed_features: dict[int, tuple[int, int]] = {}
        n = self._n_classes
        self._lanes_format = f"<{n}Q"
        self._lanes_bytes = n * _LANE // 8
        self._lanes_shift = sum(1 << (_LANE * m) for m in range(n))  # 1 in every lane
        self._bias_scores = [self.bias * w for w in self._bias_weights] or [0.0] * n
        self._inv_t = 1.0 / self.temperature
        self._dense: Any = None
        if self._postings and self._numpy_enabled():
            np = _numpy()
            dense = np.zeros((len(self._postings), self._n_classes))
            counts = [len(cls) for cls, _ in self._postings]
            classes = np.frombuffer(b"".join(cls.tobytes() for cls, _ in self._postings), np.intc)
            weights = np.frombuffer(b"".join(w.tobytes() for _, w in self._postings))
            dense[np.repeat(np.arange(len(counts)), counts), classes] = weights
            self._dense = dense
            self._bias_np = _numpy().asarray(self._bias_scores)

    def _check_fitted(self) -> None:
        if not self._labels:
            raise ValueError("the classifier is not fitted: call fit() first")

    # Pure Python scores many classes at once with big integers used as vectors ("SWAR"): a
    # class-score vector is packed into one int, 64 bits per class in fixed point, so adding
    # two vectors is a single big-int addition in C instead of a loop over the classes. Each
    # token and each word feature gets its packed vector once (cached); a message then costs
    # about one big-int addition per token and word feature, and one unpacking.

    def _pack(self, classes: Sequence[int], values: Sequence[float]) -> tuple[int, int]:
        """``values`` (of ``classes``) in fixed point, shifted to be non-negative, as one int.

        Returns the packed int and the shift that was added to every class (each lane holds
        ``round(value * 2**32) + shift``), so that sums can be unpacked without borrows.
        """
        fixed = [round(v * _ONE) for v in values]
        low = min(fixed, default=0)
        high = max(fixed, default=0)
        if len(fixed) < self._n_classes:
            low, high = min(low, 0), max(high, 0)
        if high - low >= _MAX_ITEM:  # absurd weights: sums could overflow a lane
            raise OverflowError("scores too large to pack")
        shift = -low
        packed = self._lanes_shift * shift
        for c, q in zip(classes, fixed, strict=True):
            packed += q << (_LANE * c)
        return packed, shift

    def _unpack(self, packed: int) -> tuple[int, ...]:
        """The lanes of a sum of packed vectors (each still holding the sum of the shifts)."""
        return _struct_unpack(self._lanes_format, packed.to_bytes(self._lanes_bytes, "little"))

    def _cached_token(self, token: str) -> tuple[int, int, float]:
        entry = self._packed_tokens.get(token)
        if entry is None:
            ids, vals, sq = self._token_part(token)
            scores = [0.0] * self._n_classes
            postings = self._postings
            for i, v in zip(ids, vals, strict=True):
                cls, w = postings[i]
                for c, x in zip(cls, w, strict=True):
                    scores[c] += v * x
            if len(self._packed_tokens) >= _CACHE_LIMIT:
                self._packed_tokens.clear()
            packed, shift = self._pack(range(self._n_classes), scores)
            entry = self._packed_tokens[token] = (packed, shift, sq)
        return entry

    def _cached_feature(self, feature: int) -> tuple[int, int]:
        entry = self._packed_features.get(feature)
        if entry is None:
            cls, w = self._postings[feature]
            idf = self._idf[feature]
            if len(self._packed_features) >= _CACHE_LIMIT:
                self._packed_features.clear()
            entry = self._packed_features[feature] = self._pack(cls, [idf * x for x in w])
        return entry

    def _scores_python(self, tokens: Sequence[str]) -> list[float]:
        if 2 * len(tokens) > _MAX_PACKED_ITEMS:
            # Sums of so many packed vectors could overflow their 64-bit lanes.
            return self._scores_reference(tokens)
        try:
            return self._scores_packed(tokens)
        except OverflowError:
            return self._scores_reference(tokens)

    def _scores_packed(self, tokens: Sequence[str]) -> list[float]:
        vocab, idf, postings = self._vocab, self._idf, self._postings
        word = word_shift = 0
        norm2 = 0.0
        extra: list[tuple[int, float]] = []  # features seen more than once: (id, ln tf)
        for feature, tf in _word_features(tokens, self.word_bigrams).items():
            i = vocab.get(feature)
            if i is not None:
                packed, shift = self._cached_feature(i)
                word += packed
                word_shift += shift
                if tf > 1:
                    extra.append((i, math.log(tf)))
                    norm2 += ((1.0 + math.log(tf)) * idf[i]) ** 2
                else:
                    norm2 += idf[i] * idf[i]
        char = char_shift = 0
        total = 0.0
        for token in tokens:
            packed, shift, sq = self._cached_token(token)
            char += packed
            char_shift += shift
            total += sq
        # Both blocks' lanes, scaled and unshifted in one pass.
        word_scale = _SQRT_HALF / math.sqrt(norm2) if norm2 else 0.0
        char_scale = _SQRT_HALF / math.sqrt(total) if total else 0.0
        ws, cs = word_scale / _ONE, char_scale / _ONE
        offset = word_shift * ws + char_shift * cs
        scores = [
            a * ws + b * cs - offset + bias
            for a, b, bias in zip(
                self._unpack(word), self._unpack(char), self._bias_scores, strict=True
            )
        ]
        for i, log_tf in extra:
            factor = log_tf * idf[i] * word_scale
            cls, w = postings[i]
            for c, x in zip(cls, w, strict=True):
                scores[c] += factor * x
        return scores

    def _scores_reference(self, tokens: Sequence[str]) -> list[float]:
        """The plain sparse computation (for very long messages)."""
        ids, vals = self._vector(tokens, {})
        scores = list(self._bias_scores)
        for i, v in zip(ids, vals, strict=True):
            cls, w = self._postings[i]
            for c, x in zip(cls, w, strict=True):
                scores[c] += v * x
        return scores

    def _token_scores_numpy(self, token: str) -> tuple[Any, float]:
        entry = self._token_cache.get(token)
        if entry is None:
            ids, vals, sq = self._token_part(token)
            np = _numpy()
            scores = np.asarray(vals) @ self._dense[ids] if ids else np.zeros(self._n_classes)
            if len(self._token_cache) >= _CACHE_LIMIT:
                self._token_cache.clear()
            entry = self._token_cache[token] = (scores, sq)
        return entry

    def _scores_numpy(self, tokens: Sequence[str]) -> list[float]:
        np = _numpy()
        ids, vals = self._word_part(tokens)
        dense = self._dense
        scores = np.asarray(vals) @ dense[ids] if ids else np.zeros(self._n_classes)
        if tokens:
            entries = [self._token_scores_numpy(t) for t in tokens]
            total = sum(sq for _, sq in entries)
            if total:
                char = entries[0][0] if len(entries) == 1 else np.sum([s for s, _ in entries], 0)
                scores = scores + (_SQRT_HALF / math.sqrt(total)) * char
        return (scores + self._bias_np).tolist()  # type: ignore[no-any-return]

    def _finish(self, scores: list[float]) -> Prediction:
        """Softmax, the best intent, its margin and the top-k."""
        n_intents = len(self._labels)
        inv_t = self._inv_t
        best = max(scores)
        exps = [math.exp((s - best) * inv_t) for s in scores]
        z = sum(exps)
        order = sorted(range(n_intents), key=scores.__getitem__, reverse=True)[: self.top_k + 1]
        top = order[0]
        confidence = exps[top] / z
        runner_up = max(exps[order[1]], exps[n_intents] if self._has_oos else 0.0) / z
        return Prediction(
            label=self._labels[top],
            confidence=confidence,
            margin=confidence - runner_up,
            scores=tuple((self._labels[i], exps[i] / z) for i in order[: self.top_k]),
        )


# -- training: sequential dual coordinate descent for the Crammer-Singer SVM -----------------
#
# The dual has one variable per (utterance, class): α_i,m ≤ c·[m = y_i], Σ_m α_i,m = 0, and
# the weights are w_m = Σ_i α_i,m x_i. A step takes one utterance and solves its sub-problem
# over its working set of classes exactly, given the gradient g_m = w_m·x_i + [m ≠ y_i].
#
# Shrinking, as LIBLINEAR's Solver_MCSVM_CS does it: a class whose variable sits at its bound
# and whose gradient is below every class that could still move (g_m < min_g) is dropped from
# the utterance's working set; an utterance with at most one class left cannot move and is
# dropped from the passes. One difference: a working set stays "every class" until at most
# _SMALL_SET classes can move, and is then narrowed to those (so a step is either vectorised
# over every class or a few scalars in Python lists). When a pass's largest violation falls
# below the shrinking tolerance (1, halved each time down to ``tol``), every utterance is
# checked against every class at the current weights (a sweep that changes nothing) and gets
# its working set afresh; training stops when that check finds no violation above ``tol``, so
# shrinking never stops it early. Between checks, an utterance found violating its condition
# by less than _SETTLED * tol (an order of magnitude inside the tolerance) also sits out the
# passes: stepping it again would only polish it, and the next check brings it back if the
# other steps have pushed it out. ``max_epochs`` counts the passes. Both paths take the same
# steps in the same order; only the rounding of the sums differs.

_TINY = 1e-12  # a violation this small is none
_SETTLED = 0.1  # see above
_SMALL_SET = 24  # see above
_IDX_BUDGET = 8_000_000  # numpy path: (feature, class) index grids kept, at most (64 MB)


def _beta(b: list[float], ypos: int, a: float, c: float) -> float:
    """The multiplier of one utterance's sub-problem over its working set.

    The sub-problem is min ½a‖α‖² + b·α with Σα fixed and α_m ≤ bound_m; its solution is
    ``α_m = min(bound_m, (β - b_m) / a)`` (Crammer & Singer 2001; Keerthi et al. 2008): with
    ``d = b`` except ``d_y = b_y + a·c`` (when the true class ``ypos`` is in the set), sorted
    in decreasing order, ``β`` is the mean of the leading ``r`` values less ``a·c``, for the
    largest ``r`` that keeps them above ``β``. (A true class outside the set sits at ``c``,
    so the others sum to ``-c``: the same formula without ``d_y``.)
    """
    ac = a * c
    d = b.copy()
    if ypos >= 0:
        d[ypos] += ac
    d.sort(reverse=True)
    total = d[0]
    r = 1
    n = len(d)
    while r < n and total - ac < r * d[r]:
        total += d[r]
        r += 1
    return (total - ac) / r


def _coordinate_descent(
    step: Callable[[int], float],
    check: Callable[[bool], tuple[float, list[int]]],
    max_epochs: int,
    tol: float,
    seed: int,
) -> int:
    """Run the passes and return how many there were.

    ``step(i)`` steps utterance i and returns its violation, or -1 when it is shrunk;
    ``check(first)`` returns the largest violation of all and the utterances that can move
    (``first``: before any step, when the weights are zero and every utterance violates its
    condition by exactly 1, with every class).
    """
    rng = random.Random(seed)
    eps_shrink = max(10.0 * tol, 1.0)
    passes = 0
    worst, active = check(True)
    while worst >= tol and passes < max_epochs:
        while passes < max_epochs:
            passes += 1
            rng.shuffle(active)
            worst = 0.0
            kept = []
            for i in active:
                violation = step(i)
                if violation >= _SETTLED * tol:
                    kept.append(i)
                    if violation > worst:
                        worst = violation
            active = kept
            if worst < eps_shrink:
                break
        eps_shrink = max(eps_shrink / 2.0, tol)
        worst, active = check(False)
    return passes


def _shrink_small(
    gl: list[float], al: list[float], ypos: int, c: float
) -> tuple[float, float, list[int]]:
    """Violation bounds and the positions to keep, for a working set held in lists.

    ``gl`` (gradients) and ``al`` (dual variables) are over the working set; ``ypos`` is the
    true class's position in it (-1: not in it). Returns ``(max_g, min_g, keep)``.
    """
    min_g = math.inf
    for gm, am in zip(gl, al, strict=True):
        if am < 0.0 and gm < min_g:
            min_g = gm
    if ypos >= 0 and al[ypos] < c and gl[ypos] < min_g:
        min_g = gl[ypos]
    keep = [
        p
        for p, (gm, am) in enumerate(zip(gl, al, strict=True))
        if gm >= min_g or am != (c if p == ypos else 0.0)
    ]
    return max(gl), min_g, keep


def _weight_floor(largest: float) -> float:
    """Weights at most this far from zero are dropped: below float32's resolution of the
    largest, they are the residue of dual variables that went back to zero."""
    return largest * 2.0**-24


def _train_python(
    rows: Sequence[tuple[list[int], list[float]]],
    y: Sequence[int],
    n_features: int,
    n_classes: int,
    c: float,
    max_epochs: int,
    tol: float,
    seed: int,
) -> tuple[list[tuple[array[int], array[float]]], int]:
    # One dense array per class: w_m·x is a C-level sum over the utterance's features.
    weights = [array("d", bytes(8 * n_features)) for _ in range(n_classes)]
    norms = [math.fsum(map(operator.mul, vals, vals)) for _, vals in rows]
    alphas: list[dict[int, float]] = [{} for _ in rows]  # non-zero dual variables
    working: list[list[int] | None] = [None] * len(rows)  # None: every class
    every_class = list(range(n_classes))
    mul = operator.mul

    def gradient(i: int, classes: list[int]) -> tuple[list[float], list[float], int]:
        ids, vals = rows[i]
        yi = y[i]
        gl = [sum(map(mul, vals, map(weights[m].__getitem__, ids))) for m in classes]
        ypos = -1
        for p, m in enumerate(classes):
            if m == yi:
                ypos = p
            else:
                gl[p] += 1.0
        alpha = alphas[i]
        return gl, [alpha.get(m, 0.0) for m in classes], ypos

    def check(first: bool) -> tuple[float, list[int]]:
        if first:
            active = [i for i, a in enumerate(norms) if a]
            for i in active:
                working[i] = every_class.copy() if n_classes <= _SMALL_SET else None
            return (1.0 if active else 0.0), active
        worst = 0.0
        active = []
        for i in range(len(rows)):
            if not norms[i]:
                continue
            gl, al, ypos = gradient(i, every_class)
            max_g, min_g, keep = _shrink_small(gl, al, ypos, c)
            if len(keep) > 1:
                working[i] = keep if len(keep) <= _SMALL_SET else None
                active.append(i)
                worst = max(worst, max_g - min_g)
        return worst, active

    def step(i: int) -> float:
        classes = working[i]
        every = classes is None
        if classes is None:
            classes = every_class
        gl, al, ypos = gradient(i, classes)
        max_g, min_g, keep = _shrink_small(gl, al, ypos, c)
        if len(keep) <= 1:
            return -1.0
        # A working set of every class is only narrowed once few classes can move.
        if len(keep) < len(classes) and (not every or len(keep) <= _SMALL_SET):
            classes = working[i] = [classes[p] for p in keep]
            gl = [gl[p] for p in keep]
            al = [al[p] for p in keep]
            ypos = keep.index(ypos) if ypos in keep else -1
        violation = max_g - min_g
        if violation <= _TINY:
            return violation
        ids, vals = rows[i]
        a, alpha = norms[i], alphas[i]
        b = [gm - a * am for gm, am in zip(gl, al, strict=True)]
        beta = _beta(b, ypos, a, c)
        for p, m in enumerate(classes):
            new = (beta - b[p]) / a
            if p == ypos:
                if new > c:
                    new = c
            elif new > 0.0:
                new = 0.0
            delta = new - al[p]
            if delta != 0.0:
                if new == 0.0:
                    alpha.pop(m, None)
                else:
                    alpha[m] = new
                wm = weights[m]
                for f, v in zip(ids, vals, strict=True):
                    wm[f] += v * delta
        return violation

    passes = _coordinate_descent(step, check, max_epochs, tol, seed)
    limit = _weight_floor(max(max(map(abs, wm), default=0.0) for wm in weights))
    cls_lists = [array("i") for _ in range(n_features)]
    val_lists = [array("d") for _ in range(n_features)]
    for m, wm in enumerate(weights):
        for f, x in enumerate(array("f", wm)):  # rounded to float32
            if x > limit or x < -limit:
                cls_lists[f].append(m)
                val_lists[f].append(x)
    return list(zip(cls_lists, val_lists, strict=True)), passes


def _train_numpy(
    rows: Sequence[tuple[list[int], list[float]]],
    y: Sequence[int],
    n_features: int,
    n_classes: int,
    c: float,
    max_epochs: int,
    tol: float,
    seed: int,
) -> tuple[list[tuple[array[int], array[float]]], int]:
    """:func:`_train_python` with the sums over features vectorised: the same steps."""
    np = _numpy()
    n, k_all = len(rows), n_classes
    w2 = np.zeros((n_features, k_all))
    w1 = w2.reshape(-1)
    total = sum(len(ids) for ids, _ in rows)
    flat_ids = np.fromiter(itertools.chain.from_iterable(r[0] for r in rows), np.intp, total)
    flat_vals = np.fromiter(itertools.chain.from_iterable(r[1] for r in rows), float, total)
    flat_offsets = flat_ids * k_all  # each feature's first entry in the flat weights
    row_bounds = list(itertools.accumulate((len(ids) for ids, _ in rows), initial=0))
    spans = list(itertools.pairwise(row_bounds))
    xs = [(flat_ids[a:b], flat_vals[a:b]) for a, b in spans]
    offsets = [flat_offsets[a:b] for a, b in spans]
    columns = [vals[:, None] for _, vals in xs]
    norms = [math.fsum(map(operator.mul, vals, vals)) for _, vals in rows]
    alphas = np.zeros((n, k_all))
    y_arr = np.asarray(y, dtype=np.intp)
    # Per utterance: [classes, as an array, the true class's position (-1: not in the set),
    # the flat weight index grid (features x classes) or None, the classes' dual variables as
    # a list or None (then read from ``alphas``, which always has them too)].
    working: list[list[Any] | None] = [None] * n
    budget = [_IDX_BUDGET]
    base = np.ones((k_all, k_all)) - np.eye(k_all)  # [m != y]
    flatnonzero = np.flatnonzero
    add_outer = np.add.outer
    mul_outer = np.multiply.outer
    inf = math.inf

    def remember(
        i: int, classes: list[int], act: Any, ypos: int, al: list[float] | None = None
    ) -> list[Any]:
        old = working[i]
        if old is not None and old[3] is not None:
            budget[0] += old[3].size
        idx = None
        size = len(classes) * offsets[i].size
        if size <= budget[0]:
            idx = add_outer(offsets[i], act)
            budget[0] -= size
        entry = working[i] = [classes, act, ypos, idx, al]
        return entry

    def check(first: bool) -> tuple[float, list[int]]:
        if first:
            active = [i for i, a in enumerate(norms) if a]
            every = np.arange(k_all)
            for i in active:
                if k_all <= _SMALL_SET:
                    remember(i, list(range(k_all)), every, y[i], [0.0] * k_all)
            return (1.0 if active else 0.0), active
        g = np.empty((n, k_all))
        for i, (ids, vals) in enumerate(xs):
            g[i] = vals @ w2.take(ids, axis=0)
        g += base[y_arr]
        rows_ = np.arange(n)
        negative = np.where(alphas < 0.0, g, inf).min(axis=1)
        gy, ay = g[rows_, y_arr], alphas[rows_, y_arr]
        min_g = np.where((ay < c) & (gy < negative), gy, negative)
        keep = g >= min_g[:, None]
        keep |= alphas != 0.0
        keep[rows_, y_arr] = (ay != c) | (gy >= min_g)
        counts = keep.sum(axis=1)
        movable = (counts > 1) & (np.asarray(norms) > 0.0)
        active = flatnonzero(movable).tolist()
        if not active:
            return 0.0, []
        worst = float((g.max(axis=1) - min_g)[movable].max())
        budget[0] = _IDX_BUDGET
        working[:] = [None] * n
        for i in active:
            if counts[i] > _SMALL_SET:
                working[i] = None
                continue
            act = flatnonzero(keep[i])
            classes = act.tolist()
            yi = y[i]
            remember(i, classes, act, classes.index(yi) if keep[i, yi] else -1)
        return worst, active

    def step(i: int) -> float:
        entry = working[i]
        if entry is None:
            return step_all(i)
        vals = xs[i][1]
        classes, act, ypos, idx, al = entry
        k = len(classes)
        if idx is None:
            idx = add_outer(offsets[i], act)
        gl: list[float] = (vals @ w1[idx]).tolist()
        if al is None:
            al = entry[4] = alphas[i, act].tolist()
        # _shrink_small, inlined.
        min_g = inf
        for p in range(k):
            gm = gl[p]
            if p != ypos:
                gm = gl[p] = gm + 1.0
            if gm < min_g and al[p] < 0.0:
                min_g = gm
        if ypos >= 0 and al[ypos] < c and gl[ypos] < min_g:
            min_g = gl[ypos]
        max_g = max(gl)
        keep = [p for p in range(k) if gl[p] >= min_g or al[p] != (c if p == ypos else 0.0)]
        if len(keep) <= 1:
            return -1.0
        if len(keep) < k:
            classes = [classes[p] for p in keep]
            gl = [gl[p] for p in keep]
            al = [al[p] for p in keep]
            ypos = keep.index(ypos) if ypos in keep else -1
            entry = remember(i, classes, np.asarray(classes, dtype=np.intp), ypos, al)
        violation = max_g - min_g
        if violation > _TINY:
            solve_small(i, gl, al, ypos, entry)
        return violation

    def step_all(i: int) -> float:
        """A step with every class in the working set, vectorised over the classes."""
        ids, vals = xs[i]
        yi = y[i]
        arow = alphas[i]
        g = vals @ w2.take(ids, axis=0)
        g += base[yi]
        negative = g[arow < 0.0]
        min_g = float(negative.min()) if negative.size else inf
        gy, ay = float(g[yi]), float(arow[yi])
        if ay < c and gy < min_g:
            min_g = gy
        keep = g >= min_g
        keep |= arow != 0.0
        keep[yi] = ay != c or gy >= min_g
        count = int(np.count_nonzero(keep))
        if count <= 1:
            return -1.0
        violation = float(g.max()) - min_g
        if count <= _SMALL_SET:  # few classes can move: from now on, only those
            act = flatnonzero(keep)
            classes = act.tolist()
            al = arow[act].tolist()
            ypos = classes.index(yi) if keep[yi] else -1
            entry = remember(i, classes, act, ypos, al)
            if violation > _TINY:
                solve_small(i, g[act].tolist(), al, ypos, entry)
            return violation
        if violation <= _TINY:
            return violation
        # The sub-problem. β is at least the largest d less a·c (see _beta), so only the
        # classes above that can be among the leading ones: _beta's loop runs over those.
        a = norms[i]
        ac = a * c
        b = g - a * arow
        d = b.copy()
        d[yi] += ac
        leading = sorted(d[d > d.max() - ac].tolist(), reverse=True)
        total = leading[0]
        r = 1
        while r < len(leading) and total - ac < r * leading[r]:
            total += leading[r]
            r += 1
        beta = (total - ac) / r
        new = (beta - b) / a
        np.minimum(new, 0.0, out=new)
        new[yi] = min(c, (beta - float(b[yi])) / a)
        delta = new - arow
        alphas[i] = new
        moved = flatnonzero(delta)
        if moved.size <= k_all // 4:  # usually: update just those classes' weights
            w1[add_outer(offsets[i], moved)] += mul_outer(vals, delta[moved])
        else:
            w2[ids] += mul_outer(vals, delta)
        return violation

    def solve_small(i: int, gl: list[float], al: list[float], ypos: int, entry: Any) -> None:
        """The sub-problem over a small working set, in Python as _train_python solves it."""
        a = norms[i]
        arow = alphas[i]
        classes = entry[0]
        b = [gm - a * am for gm, am in zip(gl, al, strict=True)]
        beta = _beta(b, ypos, a, c)
        deltas = [0.0] * len(classes)
        changed = False
        for p, m in enumerate(classes):
            new = (beta - b[p]) / a
            if p == ypos:
                if new > c:
                    new = c
            elif new > 0.0:
                new = 0.0
            delta = new - al[p]
            if delta != 0.0:
                deltas[p] = delta
                arow[m] = al[p] = new  # ``al`` is the working set's list (entry[4])
                changed = True
        if changed:
            idx = entry[3]
            if idx is None:
                idx = add_outer(offsets[i], entry[1])
            w1[idx] += columns[i] * deltas

    passes = _coordinate_descent(step, check, max_epochs, tol, seed)
    rounded = w2.astype(np.float32).astype(np.float64)
    keep_mask = np.abs(rounded) > _weight_floor(float(np.abs(w2).max(initial=0.0)))
    feature_of, class_of = np.nonzero(keep_mask)
    values = rounded[feature_of, class_of]
    bounds = np.concatenate(([0], np.cumsum(np.bincount(feature_of, minlength=n_features))))
    class_bytes = class_of.astype(np.intc).tobytes()
    value_bytes = values.tobytes()
    postings = []
    for start, stop in itertools.pairwise(bounds.tolist()):
        cls = array("i")
        cls.frombytes(class_bytes[4 * start : 4 * stop])
        w = array("d")
        w.frombytes(value_bytes[8 * start : 8 * stop])
        postings.append((cls, w))
    return postings, passes
