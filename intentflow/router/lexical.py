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
solves one utterance's sub-problem exactly, so there is no learning rate to tune; the weights
are sparse (a feature only gets weight for the classes whose utterances it occurs in, or that
they were confused with). ``C = 1`` (LIBLINEAR's default) and the stopping tolerance ``0.1`` are
the usual defaults. The utterance order is shuffled with ``seed``, so fitting is deterministic.

A bias feature (value ``bias``, 1 as in LIBLINEAR's ``-B 1``) gives each class a learned
offset: the class's prior, and for the internal out-of-scope class a baseline that ordinary
words must beat.

**Out-of-scope.** Utterances labelled ``None`` train an extra internal class that competes with
the intents; the method works without them. :attr:`Prediction.confidence` is the softmax
probability of the best intent at ``temperature`` (over the intents and the internal
out-of-scope class); the SVM is trained for a margin of 1, so with the default temperature
0.1 a margin of 1 is a probability ratio of ``e¹⁰``. The caller abstains below a threshold,
which `intentflow.router.evaluation.fit_threshold` chooses on labelled held-out data.

**Speed.** numpy, when installed, speeds up fitting (about 20x: ~15 s instead of ~5 min on
CLINC150's 15,100 utterances) and prediction; without it the same computation runs in pure
Python (``use_numpy=False`` forces that), with the same results up to floating-point rounding.
Pure-Python prediction adds the cached per-token and per-feature class-score vectors packed
into big integers (64-bit fixed-point lanes, one per class), so summing a vector is one C-level
big-int addition instead of a loop over the classes; it falls back to the plain sparse sum
when packing could overflow. ``benchmarks/router_lexical.py`` measures all of this.

Prediction caches the class scores of each token and word feature it meets (32 fractional bits:
within about 1e-9 of the numpy path), at most 50,000 entries per cache, cleared when full.
"""

from __future__ import annotations

import importlib
import itertools
import math
import random
import re
import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

from intentflow.router.decision import Prediction

__all__ = ["LexicalClassifier", "Prediction"]

try:
    _np: Any = importlib.import_module("numpy")
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

_struct_unpack = struct.unpack
_TOKEN = re.compile(r"\w+")
_FORMAT = "intentflow.lexical/1"
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


class LexicalClassifier:
    """A fast lexical intent classifier (TF-IDF words + character n-grams, multi-class SVM).

    Args:
        top_k: how many intents :attr:`Prediction.scores` lists.
        seed: seeds the training order; the same seed and data give the same model.
        c: the SVM's regularisation constant (larger fits the training data more closely).
        max_epochs: passes over the training data at most.
        tol: stop when no utterance violates its optimality condition by more than this.
        char_ngrams: the ``(min, max)`` length of the character n-grams (``(0, 0)``: none).
        word_bigrams: whether word bigrams are features.
        min_df: bigrams and character n-grams need this many training utterances.
        temperature: the softmax temperature turning SVM scores into probabilities.
        bias: the value of the constant bias feature (0: no bias).
        use_numpy: use numpy when ``None`` (default) and it is installed, never when ``False``.
        name: the name a router's `RouteDecision` reports for this classifier.

    It is a router `Classifier`: ``await clf.classify(text)`` is ``clf.predict(text)``.

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

    def __init__(
        self,
        *,
        top_k: int = 5,
        seed: int = 0,
        c: float = 1.0,
        max_epochs: int = 20,
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
        if use_numpy and _np is None:
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
        if isinstance(texts, str) or isinstance(labels, str):
            raise ValueError("texts and labels must be sequences, not a single string")
        if len(texts) != len(labels):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
        if not texts:
            raise ValueError("cannot fit on an empty training set")
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"texts must be strings, got {type(text).__name__}")
        intents = sorted({label for label in labels if label is not None})
        if len(intents) < 2:
            raise ValueError(f"need at least two intents to tell apart, got {intents}")
        self._labels = tuple(intents)
        self._has_oos = any(label is None for label in labels)
        index = {label: i for i, label in enumerate(intents)}
        oos = len(intents)
        y = [oos if label is None else index[label] for label in labels]

        tokenized = [_tokens(text) for text in texts]
        self._build_vocabulary(tokenized)
        parts: dict[str, tuple[list[int], list[float], float]] = {}
        rows = [self._vector(tokens, parts) for tokens in tokenized]
        n_features, n_classes = len(self._vocab), self._n_classes
        if self.bias:  # the bias is one more feature, with the same value in every utterance
            rows = [([*ids, n_features], [*vals, self.bias]) for ids, vals in rows]
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

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-ready data; :meth:`from_dict` restores it exactly.

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
            "format": _FORMAT,
            "params": {
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
            },
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
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a saved LexicalClassifier (expected format {_FORMAT!r})")
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

    # -- features --------------------------------------------------------------------------

    @property
    def _n_classes(self) -> int:
        return len(self._labels) + self._has_oos

    def _numpy_enabled(self) -> bool:
        return _np is not None and self.use_numpy is not False

    def _char_counts(self, token: str) -> Counter[str]:
        lo, hi = self.char_ngrams
        return _char_ngrams(token, lo, hi) if hi else Counter()

    def _build_vocabulary(self, tokenized: Sequence[Sequence[str]]) -> None:
        df: Counter[str] = Counter()
        grams: dict[str, list[str]] = {}
        for tokens in tokenized:
            feats = set(_word_features(tokens, self.word_bigrams))
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

    def _word_part(self, tokens: Sequence[str]) -> tuple[list[int], list[float]]:
        """The word block: feature ids and their sublinear-TF-IDF values, scaled to norm 1/√2."""
        vocab, idf = self._vocab, self._idf
        ids: list[int] = []
        vals: list[float] = []
        for feature, tf in _word_features(tokens, self.word_bigrams).items():
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
        self, tokens: Sequence[str], parts: dict[str, tuple[list[int], list[float], float]]
    ) -> tuple[list[int], list[float]]:
        """The full feature vector of an utterance (for training; ``parts`` caches tokens)."""
        ids, vals = self._word_part(tokens)
        acc: dict[int, float] = {}
        total = 0.0
        for token in tokens:
            part = parts.get(token)
            if part is None:
                part = parts[token] = self._token_part(token)
            t_ids, t_vals, sq = part
            total += sq
            for i, v in zip(t_ids, t_vals, strict=True):
                acc[i] = acc.get(i, 0.0) + v
        if total:
            scale = _SQRT_HALF / math.sqrt(total)
            ids.extend(acc)
            vals.extend(v * scale for v in acc.values())
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
        self._dense: Any = None
        if self._postings and self._numpy_enabled():
            dense = _np.zeros((len(self._postings), self._n_classes))
            for f, (cls, w) in enumerate(self._postings):
                if len(cls):
                    dense[f, _np.frombuffer(cls, dtype=_np.intc)] = _np.frombuffer(w)
            self._dense = dense
            self._bias_np = _np.asarray(self._bias_scores)

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
            scores = _np.asarray(vals) @ self._dense[ids] if ids else _np.zeros(self._n_classes)
            if len(self._token_cache) >= _CACHE_LIMIT:
                self._token_cache.clear()
            entry = self._token_cache[token] = (scores, sq)
        return entry

    def _scores_numpy(self, tokens: Sequence[str]) -> list[float]:
        ids, vals = self._word_part(tokens)
        dense = self._dense
        scores = _np.asarray(vals) @ dense[ids] if ids else _np.zeros(self._n_classes)
        if tokens:
            entries = [self._token_scores_numpy(t) for t in tokens]
            total = sum(sq for _, sq in entries)
            if total:
                char = entries[0][0] if len(entries) == 1 else _np.sum([s for s, _ in entries], 0)
                scores = scores + (_SQRT_HALF / math.sqrt(total)) * char
        return (scores + self._bias_np).tolist()  # type: ignore[no-any-return]

    def _finish(self, scores: list[float]) -> Prediction:
        """Softmax, the best intent, its margin and the top-k."""
        n_intents = len(self._labels)
        inv_t = 1.0 / self.temperature
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


def _beta(b: list[float], y: int, a: float, c: float) -> float:
    """The multiplier of one utterance's sub-problem.

    The sub-problem is min ½a‖α‖² + b·α s.t. Σα = 0, α_m ≤ c·[m = y]; its solution is
    ``α_m = min(c·[m = y], (β - b_m) / a)`` (Crammer & Singer 2001; Keerthi et al. 2008):
    with ``d = b`` except ``d_y = b_y + a·c``, sorted in decreasing order, ``β`` is the mean of
    the leading ``r`` values less ``a·c``, for the largest ``r`` that keeps them above ``β``.
    """
    d = b.copy()
    d[y] += a * c
    d.sort(reverse=True)
    beta = d[0] - a * c
    r = 1
    n = len(d)
    while r < n and beta < r * d[r]:
        beta += d[r]
        r += 1
    return beta / r


def _step(
    g: list[float], alpha_i: dict[int, float], y: int, a: float, c: float
) -> tuple[float, dict[int, float]]:
    """The violation of utterance ``i``'s optimality condition and its dual variables' change.

    ``g`` holds the gradient ``w_m·x_i + [m ≠ y]``; ``alpha_i`` the non-zero dual variables.
    """
    max_g = max(g)
    min_g = g[y] if alpha_i.get(y, 0.0) < c else math.inf
    for m, v in alpha_i.items():
        if v < 0.0 and g[m] < min_g:
            min_g = g[m]
    violation = max_g - min_g
    if violation <= 1e-12:
        return violation, {}
    b = g.copy()
    for m, v in alpha_i.items():
        b[m] -= a * v
    beta = _beta(b, y, a, c)
    # Only classes scoring above beta get a (negative) dual variable; the others go to zero.
    touched = {m for m, bm in enumerate(b) if bm > beta}
    touched.update(alpha_i)
    touched.add(y)
    changes: dict[int, float] = {}
    for m in sorted(touched):
        v = min(c if m == y else 0.0, (beta - b[m]) / a)
        old = alpha_i.get(m, 0.0)
        if abs(v - old) >= 1e-12:
            changes[m] = v - old
            if v == 0.0:
                alpha_i.pop(m, None)
            else:
                alpha_i[m] = v
    return violation, changes


def _orders(n: int, seed: int, epochs: int) -> Iterator[list[int]]:
    """A fresh random order of the ``n`` utterances for each pass."""
    rng = random.Random(seed)
    for _ in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        yield order


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
    # Sparse rows: a feature only gets weights for the classes it is seen with or confused
    # with, so summing a row costs its non-zero entries, not all the classes.
    weights: list[dict[int, float]] = [{} for _ in range(n_features)]
    norms = [sum(v * v for v in vals) for _, vals in rows]
    alphas: list[dict[int, float]] = [{} for _ in rows]
    base = [[0.0 if m == yi else 1.0 for m in range(n_classes)] for yi in range(n_classes)]
    epochs = 0
    for order in _orders(len(rows), seed, max_epochs):
        epochs += 1
        worst = 0.0
        for i in order:
            ids, vals = rows[i]
            if not norms[i]:
                continue
            g = base[y[i]].copy()
            for f, v in zip(ids, vals, strict=True):
                for m, w in weights[f].items():
                    g[m] += v * w
            violation, changes = _step(g, alphas[i], y[i], norms[i], c)
            worst = max(worst, violation)
            for f, v in zip(ids, vals, strict=True):
                row = weights[f]
                for m, dm in changes.items():
                    row[m] = row.get(m, 0.0) + dm * v
        if worst < tol:
            break
    postings = []
    for row in weights:
        nz = sorted(m for m, w in row.items() if w != 0.0)
        postings.append((array("i", nz), array("d", [row[m] for m in nz])))
    return postings, epochs


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
    """:func:`_train_python` with each step vectorised over the classes."""
    np = _np
    weights = np.zeros((n_features, n_classes))
    xs = [(np.asarray(ids, dtype=np.intp), np.asarray(vals)) for ids, vals in rows]
    norms = [sum(v * v for v in vals) for _, vals in rows]
    alphas = np.zeros((len(rows), n_classes))
    steps = np.arange(1, n_classes)
    base = np.ones((n_classes, n_classes)) - np.eye(n_classes)  # [m != y]
    take = np.take
    epochs = 0
    for order in _orders(len(rows), seed, max_epochs):
        epochs += 1
        worst = 0.0
        for i in order:
            ids, vals = xs[i]
            a = norms[i]
            if not a:
                continue
            yi = y[i]
            alpha = alphas[i]
            g = vals @ take(weights, ids, axis=0)
            g += base[yi]
            min_g = g[yi] if alpha[yi] < c else math.inf
            negative = g[alpha < 0.0]
            if negative.size:
                min_g = min(min_g, negative.min())
            violation = float(g.max() - min_g)
            worst = max(worst, violation)
            if violation <= 1e-12:
                continue
            b = g - a * alpha
            d = b.copy()
            d[yi] += a * c
            d[::-1].sort()
            sums = np.cumsum(d)
            sums -= a * c
            keep = sums[:-1] < steps * d[1:]
            r = n_classes if keep.all() else int(keep.argmin()) + 1
            beta = sums[r - 1] / r
            new = np.minimum((beta - b) / a, 0.0)
            new[yi] = min(c, (beta - b[yi]) / a)
            delta = new - alpha
            ms = np.flatnonzero(np.abs(delta) >= 1e-12)
            if ms.size:
                alpha[ms] = new[ms]
                weights[ids[:, None], ms] += vals[:, None] * delta[ms]
        if worst < tol:
            break
    postings = []
    for row in weights:
        nz = np.flatnonzero(row)
        postings.append((array("i", nz.tolist()), array("d", row[nz].tolist())))
    return postings, epochs
