"""Measuring a router on labelled examples, and fitting its abstain thresholds.

Everything here except `route_examples` and `evaluate_router` is a pure function over what was
already decided: no I/O, no classifier calls. Two kinds of input:

* to *evaluate*, the examples and the `RouteDecision` the router made for each
  (`evaluate`; `evaluate_router` routes the examples first);
* to *fit thresholds*, each example's gold intent and the *deciding* `Prediction` (the
  classifier's best intent, confidence and margin, before any threshold): `threshold_sweep`,
  `fit_threshold` and `fit_per_intent_thresholds` replay the router's abstain rule on them for
  every candidate threshold, so a sweep costs no classifier call. A `RouteDecision` is accepted
  in place of a prediction (see `deciding_prediction`).

Abstaining. A message is *abstained on* when the decision names no intent or names the
``fallback`` intent: with a fallback such as ``small_talk``, routing there *is* the router's way
of saying "none of my intents". An out-of-scope example (gold ``None``) is handled correctly
exactly when the router abstains. A gold label equal to the fallback is treated as out of scope
too, since routing there and abstaining are then the same outcome.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from intentflow.router.data import Example
from intentflow.router.decision import Prediction, RouteDecision
from intentflow.router.router import Router

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Confusion",
    "EvaluationReport",
    "FittedThreshold",
    "IntentMetrics",
    "Objective",
    "SweepPoint",
    "assert_routing",
    "deciding_prediction",
    "evaluate",
    "evaluate_router",
    "fit_per_intent_thresholds",
    "fit_threshold",
    "route_examples",
    "threshold_sweep",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(i / 100 for i in range(101))
"""The candidate confidence thresholds of a sweep: 0.00 to 1.00 in steps of 0.01.

A coarse, round grid on purpose: the exact confidences of an evaluation set are an overfit
waiting to happen, and a router configured with ``threshold=0.42`` reads better than 0.4187.
"""

Objective = Literal["balanced", "accuracy"]
"""What threshold fitting maximises.

* ``"balanced"``: the mean of in-scope accuracy and out-of-scope recall, so that a small set
  of out-of-scope examples weighs as much as a large in-scope one;
* ``"accuracy"``: the share of all examples handled correctly.
"""

_OOS = "(out of scope)"


class _RouterDefault(enum.Enum):
    FALLBACK = "the router's fallback"


@dataclass(frozen=True, slots=True)
class IntentMetrics:
    """How well one intent is recognised.

    Examples:
        >>> examples = [Example("refund me", "refund"), Example("where is it", "status")]
        >>> routed = [RouteDecision("refund", 0.9, 0.8, (), "t", 0.0)] * 2
        >>> evaluate(examples, routed).per_intent["refund"]
        IntentMetrics(precision=0.5, recall=1.0, f1=0.6666666666666666, support=1)

    Attributes:
        precision: Of the messages routed to the intent, the share that belong there.
        recall: Of the messages that belong to the intent, the share routed there.
        f1: The harmonic mean of precision and recall.
        support: How many examples belong to the intent.
    """

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Confusion:
    """Examples of one intent routed to one other intent (``None``: out of scope / abstained).

    Examples:
        >>> examples = [Example("hello", None), Example("hi", None)]
        >>> routed = [RouteDecision("refund", 0.9, 0.8, (), "t", 0.0)] * 2
        >>> evaluate(examples, routed).confusions
        (Confusion(gold=None, predicted='refund', count=2, examples=('hello', 'hi')),)

    Attributes:
        gold: The intent the examples belong to.
        predicted: Where they went.
        count: How many did.
        examples: Up to three of their texts, in data order.
    """

    gold: str | None
    predicted: str | None
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """A router's quality and speed on a set of labelled examples.

    Ratios with nothing to divide (no out-of-scope example for ``oos_recall``, no abstention for
    ``oos_precision``) are 0.0. `to_dict` gives the stable, machine-readable form.

    Attributes:
        n: The number of examples.
        n_in_scope: Examples with an intent.
        n_oos: Out-of-scope examples (gold ``None``, or the fallback intent).
        accuracy: The share of examples handled correctly: routed to their intent, or
            abstained on when out of scope.
        in_scope_accuracy: The share of in-scope examples routed to their intent.
        oos_precision: Of the abstentions, the share on out-of-scope examples.
        oos_recall: Of the out-of-scope examples, the share abstained on.
        macro_f1: The unweighted mean F1 over every intent that is a gold label or a routing
            target, plus the out-of-scope class when some example is out of scope or abstained
            on (an intent routed to but absent from the data counts, with F1 0).
        per_intent: `IntentMetrics` per intent (not the out-of-scope class), by name.
        confusions: The most frequent mistakes, most frequent first (at most 10 by default).
        p50_us: The median decision latency, in microseconds.
        p99_us: The 99th-percentile decision latency, in microseconds.
        fallback: The intent that counted as abstaining, if any.
    """

    n: int
    n_in_scope: int
    n_oos: int
    accuracy: float
    in_scope_accuracy: float
    oos_precision: float
    oos_recall: float
    macro_f1: float
    per_intent: dict[str, IntentMetrics]
    confusions: tuple[Confusion, ...]
    p50_us: float
    p99_us: float
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, for files and other tools; the keys are stable.

        Keys: ``n``, ``n_in_scope``, ``n_oos`` (ints); ``accuracy``, ``in_scope_accuracy``,
        ``oos_precision``, ``oos_recall``, ``macro_f1`` (0 to 1); ``p50_us``, ``p99_us``
        (microseconds); ``fallback`` (a string or null); ``per_intent``: intent name to
        ``{"precision", "recall", "f1", "support"}``; ``confusions``: a list of
        ``{"gold", "predicted", "count", "examples"}`` (``null`` is out of scope). Numbers are
        not rounded. Keys may be added in later versions; none will be renamed or removed.

        Examples:
            >>> def decided(intent):
            ...     return RouteDecision(intent, 1.0, 1.0, (), "test", 1e-5)
            >>> report = evaluate([Example("hi", None)], [decided(None)])
            >>> sorted(report.to_dict())[:5]
            ['accuracy', 'confusions', 'fallback', 'in_scope_accuracy', 'macro_f1']
        """
        return {
            "n": self.n,
            "n_in_scope": self.n_in_scope,
            "n_oos": self.n_oos,
            "accuracy": self.accuracy,
            "in_scope_accuracy": self.in_scope_accuracy,
            "oos_precision": self.oos_precision,
            "oos_recall": self.oos_recall,
            "macro_f1": self.macro_f1,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "fallback": self.fallback,
            "per_intent": {
                name: {
                    "precision": m.precision,
                    "recall": m.recall,
                    "f1": m.f1,
                    "support": m.support,
                }
                for name, m in self.per_intent.items()
            },
            "confusions": [
                {
                    "gold": c.gold,
                    "predicted": c.predicted,
                    "count": c.count,
                    "examples": list(c.examples),
                }
                for c in self.confusions
            ],
        }

    def summary(self) -> str:
        """The headline numbers on one line.

        Examples:
            >>> def decided(intent):
            ...     return RouteDecision(intent, 1.0, 1.0, (), "test", 1e-5)
            >>> evaluate([Example("hi", None)], [decided(None)]).summary()
            'n=1 accuracy=1.000 in-scope=0.000 oos-recall=1.000 oos-precision=1.000 macro-F1=1.000 p50=10.0µs p99=10.0µs'
        """  # noqa: E501
        return (
            f"n={self.n} accuracy={self.accuracy:.3f} in-scope={self.in_scope_accuracy:.3f} "
            f"oos-recall={self.oos_recall:.3f} oos-precision={self.oos_precision:.3f} "
            f"macro-F1={self.macro_f1:.3f} p50={self.p50_us:.1f}µs p99={self.p99_us:.1f}µs"
        )

    def to_markdown(self) -> str:
        """The report for people: headline metrics, then per-intent metrics and confusions.

        Examples:
            >>> def decided(intent):
            ...     return RouteDecision(intent, 1.0, 1.0, (), "test", 1e-5)
            >>> report = evaluate([Example("hi", None)], [decided("refund")])
            >>> print(report.to_markdown().splitlines()[0])
            ## Routing evaluation: 1 examples (0 in scope, 1 out of scope)
        """
        lines = [
            f"## Routing evaluation: {self.n} examples ({self.n_in_scope} in scope, "
            f"{self.n_oos} out of scope)",
            "",
            "| metric | value |",
            "|---|---:|",
            f"| accuracy | {self.accuracy:.3f} |",
            f"| in-scope accuracy | {self.in_scope_accuracy:.3f} |",
            f"| out-of-scope recall | {self.oos_recall:.3f} |",
            f"| out-of-scope precision | {self.oos_precision:.3f} |",
            f"| macro F1 | {self.macro_f1:.3f} |",
            f"| latency p50 | {self.p50_us:.1f} µs |",
            f"| latency p99 | {self.p99_us:.1f} µs |",
        ]
        if self.fallback is not None:
            lines += ["", f"Routing to `{self.fallback}` counts as abstaining."]
        if self.per_intent:
            lines += [
                "",
                "### Per intent",
                "",
                "| intent | precision | recall | F1 | support |",
                "|---|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {_cell(name)} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} |"
                for name, m in self.per_intent.items()
            ]
        if self.confusions:
            lines += [
                "",
                "### Worst confusions",
                "",
                "| gold | routed to | count | examples |",
                "|---|---|---:|---|",
            ]
            lines += [
                f"| {_cell(_name(c.gold))} | {_cell(_name(c.predicted))} | {c.count} | "
                + "; ".join(_cell(repr(text)) for text in c.examples)
                + " |"
                for c in self.confusions
            ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """The router's quality at one confidence threshold (and margin).

    Examples:
        >>> [point] = threshold_sweep(["a", None], [Prediction("a", 0.8, 0.8)] * 2, (0.5,))
        >>> point.threshold, point.in_scope_accuracy, point.oos_recall, point.accuracy
        (0.5, 1.0, 0.0, 0.5)

    Attributes:
        threshold: The confidence threshold.
        in_scope_accuracy: The share of in-scope examples routed to their intent.
        oos_recall: The share of out-of-scope examples abstained on.
        oos_precision: The share of abstentions that are on out-of-scope examples.
        accuracy: The share of all examples handled correctly.
        margin: The margin threshold the point was computed with.
    """

    threshold: float
    in_scope_accuracy: float
    oos_recall: float
    oos_precision: float
    accuracy: float
    margin: float = 0.0


@dataclass(frozen=True, slots=True)
class FittedThreshold:
    """The threshold (and margin) `fit_threshold` chose, and what they achieve on the data.

    Examples:
        >>> predictions = [Prediction("a", 0.8, 0.8), Prediction("a", 0.3, 0.3)]
        >>> fitted = fit_threshold(["a", None], predictions)
        >>> fitted.threshold, fitted.margin, fitted.objective
        (0.31, 0.0, 1.0)

    Attributes:
        threshold: The confidence threshold, for ``Router(threshold=...)``.
        margin: The margin, for ``Router(margin=...)``.
        in_scope_accuracy: In-scope accuracy at that threshold.
        oos_recall: Out-of-scope recall at that threshold.
        oos_precision: Out-of-scope precision at that threshold.
        accuracy: Overall accuracy at that threshold.
        objective: The value of the objective there.
    """

    threshold: float
    margin: float
    in_scope_accuracy: float
    oos_recall: float
    oos_precision: float = 0.0
    accuracy: float = 0.0
    objective: float = 0.0


@dataclass(frozen=True, slots=True)
class _Item:
    """One example as the threshold fitting sees it (labels already folded for the fallback)."""

    gold: str | None
    label: str | None
    confidence: float
    margin: float


def deciding_prediction(decision: RouteDecision) -> Prediction:
    """The prediction a decision was made from, before the router's abstain thresholds.

    A decision that was not abstained on names its label; an abstained one made by a `Router`
    records the rejected label in ``proposed``. For abstained decisions built elsewhere without
    ``proposed``, the label is inferred from the scores: when the best score *is* the
    confidence, that intent is the label the thresholds rejected; otherwise the classifier
    answered "no intent" (an LLM classifier reports the confidence of its "none" answer, with
    the intents' scores beside it), and no threshold would route it. The inference relies on
    the convention of `Prediction.from_scores`, that ``confidence`` is the best label's score.

    Examples:
        >>> scores = (("refund", 0.4), ("chat", 0.3))
        >>> rejected = RouteDecision("chat", 0.4, 0.1, scores, "t", 0.0, abstained=True)
        >>> deciding_prediction(rejected).label
        'refund'
        >>> said_none = RouteDecision("chat", 0.7, 0.3, scores, "llm", 0.0, abstained=True)
        >>> deciding_prediction(said_none).label is None
        True
    """
    label = decision.intent
    if decision.abstained:
        best = decision.scores[0] if decision.scores else None
        if decision.proposed is not None:
            label = decision.proposed
        elif best is not None and math.isclose(best[1], decision.confidence):
            label = best[0]
        else:
            label = None
    return Prediction(label, decision.confidence, decision.margin, decision.scores)


def evaluate(
    examples: Sequence[Example],
    decisions: Sequence[RouteDecision],
    *,
    fallback: str | None = None,
    max_confusions: int = 10,
) -> EvaluationReport:
    """Score the decisions a router made for labelled examples.

    Examples:
        >>> examples = [
        ...     Example("refund please", "refund"),
        ...     Example("where is it", "status"),
        ...     Example("tell me a joke", None),
        ...     Example("hello", None),
        ... ]
        >>> def decided(intent):
        ...     return RouteDecision(intent, 1.0, 1.0, (), "test", 1e-5)
        >>> decisions = [decided(i) for i in ("refund", "refund", "chat", None)]
        >>> report = evaluate(examples, decisions, fallback="chat")
        >>> report.accuracy, report.in_scope_accuracy, report.oos_recall, report.oos_precision
        (0.75, 0.5, 1.0, 1.0)
        >>> report.confusions
        (Confusion(gold='status', predicted='refund', count=1, examples=('where is it',)),)

    Args:
        examples: The labelled examples.
        decisions: The decision for each example, in the same order.
        fallback: The intent whose routing counts as abstaining (see the module's notes).
        max_confusions: How many gold→predicted pairs to keep in ``confusions``.

    Raises:
        ValueError: When there are not as many decisions as examples.
    """
    if len(examples) != len(decisions):
        raise ValueError(f"{len(examples)} examples but {len(decisions)} decisions")
    golds = [_fold(e.intent, fallback) for e in examples]
    routed = [_fold(d.intent, fallback) for d in decisions]
    n = len(golds)
    n_oos = sum(g is None for g in golds)
    n_in = n - n_oos
    correct = sum(g == p for g, p in zip(golds, routed, strict=True))
    in_correct = sum(g == p for g, p in zip(golds, routed, strict=True) if g is not None)
    abstained = sum(p is None for p in routed)
    oos_abstained = sum(g is None and p is None for g, p in zip(golds, routed, strict=True))

    classes = {c for c in (*golds, *routed) if c is not None}
    per_intent = {name: _class_metrics(name, golds, routed) for name in sorted(classes)}
    f1s = [m.f1 for m in per_intent.values()]
    if n_oos or abstained:
        f1s.append(_class_metrics(None, golds, routed).f1)

    latencies = [d.latency * 1e6 for d in decisions]
    return EvaluationReport(
        n=n,
        n_in_scope=n_in,
        n_oos=n_oos,
        accuracy=_ratio(correct, n),
        in_scope_accuracy=_ratio(in_correct, n_in),
        oos_precision=_ratio(oos_abstained, abstained),
        oos_recall=_ratio(oos_abstained, n_oos),
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        per_intent=per_intent,
        confusions=_confusions(examples, golds, routed, max_confusions),
        p50_us=_percentile(latencies, 50),
        p99_us=_percentile(latencies, 99),
        fallback=fallback,
    )


async def route_examples(router: Router, examples: Sequence[Example]) -> list[RouteDecision]:
    """Route every example's text, one at a time, and return the decisions in order.

    Sequential on purpose: each decision's latency is then its own, not shared with others
    waiting on the same event loop. Keep the decisions to both `evaluate` and fit thresholds
    (`fit_threshold` accepts decisions) from a single routing pass.

    Examples:
        >>> import anyio
        >>> from intentflow.router.intent import Intent
        >>> class Keyword:
        ...     name = "keyword"
        ...     async def classify(self, text):
        ...         score = 0.8 if "refund" in text else 0.55
        ...         return Prediction.from_scores([("refund", score), ("chat", 1 - score)])
        >>> intents = [Intent("refund", examples=["refund"]), Intent("chat", description="Chat.")]
        >>> router = Router(intents, Keyword(), fallback="chat", threshold=0.9)
        >>> data = [Example("refund me", "refund"), Example("hi", None)]
        >>> decisions = anyio.run(route_examples, router, data)
        >>> [d.intent for d in decisions]
        ['chat', 'chat']
        >>> fit_threshold([e.intent for e in data], decisions, fallback="chat").threshold
        0.56
    """
    return [await router.route(example.text) for example in examples]


async def evaluate_router(
    router: Router,
    examples: Sequence[Example],
    *,
    fallback: str | _RouterDefault | None = _RouterDefault.FALLBACK,
) -> EvaluationReport:
    """Route the examples with ``router`` and `evaluate` its decisions.

    Examples:
        >>> import anyio
        >>> from intentflow.router.intent import Intent
        >>> class Keyword:
        ...     name = "keyword"
        ...     async def classify(self, text):
        ...         score = 0.9 if "refund" in text else 0.3
        ...         return Prediction.from_scores([("refund", score), ("chat", 1 - score)])
        >>> router = Router(
        ...     [Intent("refund", examples=["refund"]), Intent("chat", description="Chit-chat.")],
        ...     Keyword(),
        ...     fallback="chat",
        ...     threshold=0.8,
        ... )
        >>> data = [Example("a refund please", "refund"), Example("hi there", None)]
        >>> report = anyio.run(evaluate_router, router, data)
        >>> report.accuracy, report.oos_recall
        (1.0, 1.0)

    Args:
        router: The router.
        examples: The labelled examples.
        fallback: The intent whose routing counts as abstaining; by default the router's own
            fallback. Pass ``None`` to count every routed intent as a real decision.
    """
    decisions = await route_examples(router, examples)
    chosen = router.fallback if isinstance(fallback, _RouterDefault) else fallback
    return evaluate(examples, decisions, fallback=chosen)


def threshold_sweep(
    golds: Sequence[str | None],
    predictions: Sequence[Prediction | RouteDecision],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    margin: float = 0.0,
    fallback: str | None = None,
) -> list[SweepPoint]:
    """What the router would achieve at each confidence threshold, without re-classifying.

    The router's rule is replayed: a prediction is routed when it names an intent, its
    confidence is at least the threshold and its margin at least ``margin``; otherwise the
    router abstains. Raising the threshold can only add abstentions, so in-scope accuracy never
    rises and out-of-scope recall never falls along a sweep.

    Examples:
        >>> golds = ["refund", "refund", None]
        >>> preds = [Prediction("refund", c, c) for c in (0.9, 0.6, 0.5)]
        >>> for p in threshold_sweep(golds, preds, thresholds=(0.0, 0.55, 0.7)):
        ...     print(p.threshold, p.in_scope_accuracy, p.oos_recall, round(p.accuracy, 3))
        0.0 1.0 0.0 0.667
        0.55 1.0 1.0 1.0
        0.7 0.5 1.0 0.667

    Args:
        golds: Each example's intent (``None``: out of scope).
        predictions: The deciding prediction for each (a decision is converted with
            `deciding_prediction`).
        thresholds: The confidence thresholds to try, reported in this order.
        margin: The margin threshold (the router's ``margin``).
        fallback: The intent whose routing counts as abstaining.

    Raises:
        ValueError: When the lengths differ, or a threshold or the margin is outside [0, 1].
    """
    items = _items(golds, predictions, fallback)
    _check_unit("thresholds", thresholds)
    _check_unit("margin", (margin,))
    return _sweep(items, thresholds, margin)


def fit_threshold(
    golds: Sequence[str | None],
    predictions: Sequence[Prediction | RouteDecision],
    *,
    objective: Objective = "balanced",
    thresholds: Sequence[float] | None = None,
    margins: Sequence[float] = (0.0,),
    fallback: str | None = None,
    tolerance: float = 0.005,
) -> FittedThreshold:
    """Choose the confidence threshold (and margin) that maximise ``objective`` on the data.

    Every pair of a threshold and a margin is tried (pass several ``margins``, for example
    ``(0.0, 0.05, 0.1, 0.2)``, to fit a margin too); ties go to the lower threshold, then the
    lower margin, so the router abstains no more than the data justifies.

    Without any out-of-scope example no objective can reward abstaining, and the best
    threshold would always be the lowest. Instead, the largest threshold (then margin) whose
    in-scope accuracy is within ``tolerance`` (0.005: half a point) of the best is chosen: the
    threshold that costs almost nothing on the data, and rejects what real traffic will bring.

    Examples:
        >>> golds = ["refund", "refund", None, None]
        >>> preds = [Prediction("refund", c, c) for c in (0.9, 0.7, 0.6, 0.3)]
        >>> fitted = fit_threshold(golds, preds)
        >>> fitted.threshold, fitted.in_scope_accuracy, fitted.oos_recall
        (0.61, 1.0, 1.0)

    Args:
        golds: Each example's intent (``None``: out of scope).
        predictions: The deciding prediction for each (or a decision).
        objective: What to maximise (see `Objective`).
        thresholds: The candidate confidence thresholds; by default the 0.01 grid plus the
            midpoints between the data's distinct confidences (so classifiers whose
            confidences crowd near 1 are still separable).
        margins: The candidate margins.
        fallback: The intent whose routing counts as abstaining.
        tolerance: Without out-of-scope examples, how much in-scope accuracy may be given up.

    Raises:
        ValueError: With no examples, mismatched lengths, an unknown objective, or candidates
            outside [0, 1].
    """
    items = _items(golds, predictions, fallback)
    _check_objective(objective)
    thresholds = _candidates(items, thresholds)
    _check_unit("thresholds", thresholds)
    _check_unit("margins", margins)
    if not items:
        raise ValueError("no examples to fit a threshold on")
    points = sorted(
        (p for m in margins for p in _sweep(items, thresholds, m)),
        key=lambda p: (p.threshold, p.margin),
    )
    if not any(item.gold is None for item in items):
        best_in_scope = max(p.in_scope_accuracy for p in points)
        # The epsilon keeps "exactly half a point lower" inside despite float rounding.
        near = [p for p in points if p.in_scope_accuracy >= best_in_scope - tolerance - 1e-12]
        chosen = near[-1]
    else:
        chosen = points[0]
        for point in points[1:]:
            if _score(point, objective) > _score(chosen, objective):
                chosen = point
    return FittedThreshold(
        threshold=chosen.threshold,
        margin=chosen.margin,
        in_scope_accuracy=chosen.in_scope_accuracy,
        oos_recall=chosen.oos_recall,
        oos_precision=chosen.oos_precision,
        accuracy=chosen.accuracy,
        objective=_score(chosen, objective),
    )


def fit_per_intent_thresholds(
    golds: Sequence[str | None],
    predictions: Sequence[Prediction | RouteDecision],
    *,
    threshold: float | None = None,
    margin: float = 0.0,
    objective: Objective = "balanced",
    thresholds: Sequence[float] | None = None,
    fallback: str | None = None,
    min_gain: int = 3,
) -> dict[str, float]:
    """Per-intent thresholds that beat the global one where the data clearly says so.

    An intent's threshold only affects the examples *predicted* as that intent, so each intent
    is fitted on its own, starting from the global ``threshold``. A candidate threshold for an
    intent is kept only when, on those examples, it both improves ``objective`` (weighted as
    the global objective weighs them, so the result is never worse globally) and turns at least
    ``min_gain`` more examples from wrong to right than from right to wrong. The count rule is
    what keeps a handful of lucky examples from setting a threshold: with the default, moving an
    intent's threshold takes a net three examples of evidence. Among the candidates that pass,
    the best objective wins; ties go to the candidate nearest the global threshold (the
    smallest move the evidence supports), then to the lower one.

    Examples:
        >>> golds = ["refund"] * 4 + [None] * 3 + ["status"]
        >>> confidences = (0.9, 0.9, 0.95, 0.9, 0.7, 0.75, 0.8, 0.6)
        >>> labels = ["refund"] * 7 + ["status"]
        >>> preds = [Prediction(lab, c, c) for lab, c in zip(labels, confidences)]
        >>> fit_per_intent_thresholds(golds, preds, threshold=0.5)
        {'refund': 0.81}

    Args:
        golds: Each example's intent (``None``: out of scope).
        predictions: The deciding prediction for each (or a decision).
        threshold: The global threshold; fitted with `fit_threshold` when ``None``.
        margin: The router's margin (global; examples below it abstain whatever the threshold).
        objective: What to maximise (see `Objective`).
        thresholds: The candidate thresholds for each intent.
        fallback: The intent whose routing counts as abstaining (it gets no threshold).
        min_gain: The net number of examples a new threshold must turn from wrong to right.

    Returns:
        Intent name to threshold, only for the intents whose threshold moved, sorted by name:
        ready for ``Router(thresholds=...)``.

    Raises:
        ValueError: As `fit_threshold`, or when ``min_gain`` is below 1.
    """
    items = _items(golds, predictions, fallback)
    _check_objective(objective)
    thresholds = _candidates(items, thresholds)
    _check_unit("thresholds", thresholds)
    _check_unit("margin", (margin,))
    if min_gain < 1:
        raise ValueError(f"min_gain must be at least 1, not {min_gain}")
    if threshold is None:
        threshold = fit_threshold(
            golds,
            predictions,
            objective=objective,
            thresholds=thresholds,
            margins=(margin,),
            fallback=fallback,
        ).threshold
    n = len(items)
    n_oos = sum(item.gold is None for item in items)
    n_in = n - n_oos
    if objective == "balanced":
        weight_in = 1 / (2 * n_in) if n_in else 0.0
        weight_oos = 1 / (2 * n_oos) if n_oos else 0.0
    else:
        weight_in = weight_oos = 1 / n if n else 0.0

    by_label: dict[str, list[_Item]] = {}
    for item in items:
        # Below the margin, or with no label, the router abstains whatever the threshold.
        if item.label is not None and item.margin >= margin:
            by_label.setdefault(item.label, []).append(item)

    fitted: dict[str, float] = {}
    for label in sorted(by_label):
        group = by_label[label]
        before = [_correct_at(item, threshold) for item in group]
        best: float | None = None
        best_gain = 0.0
        # Nearest the global threshold first, so a tie keeps the smallest move: with ties going
        # to the lowest threshold, a lowered intent would jump to 0 on a plateau of evidence.
        for candidate in sorted(set(thresholds), key=lambda t: (abs(t - threshold), t)):
            net = 0
            gain = 0.0
            for item, was in zip(group, before, strict=True):
                now = _correct_at(item, candidate)
                if now != was:
                    step = 1 if now else -1
                    net += step
                    gain += step * (weight_in if item.gold is not None else weight_oos)
            if net >= min_gain and gain > best_gain:
                best, best_gain = candidate, gain
        if best is not None and best != threshold:
            fitted[label] = best
    return fitted


def assert_routing(
    report: EvaluationReport,
    *,
    min_in_scope_accuracy: float = 0.0,
    min_oos_recall: float = 0.0,
    max_p99_us: float | None = None,
    min_accuracy: float | None = None,
    min_macro_f1: float | None = None,
) -> None:
    """Fail a test when a router's evaluation misses its targets.

    Examples:
        >>> hi = RouteDecision("refund", 0.9, 0.8, (), "test", 1e-5)
        >>> report = evaluate([Example("hi", None)], [hi])
        >>> assert_routing(report, min_oos_recall=0.9)
        Traceback (most recent call last):
        ...
        AssertionError: routing below target: out-of-scope recall 0.000 < 0.900 (1 out-of-scope examples)
        n=1 accuracy=0.000 in-scope=0.000 oos-recall=0.000 oos-precision=0.000 macro-F1=0.000 p50=10.0µs p99=10.0µs
        worst confusions:
          (out of scope) -> refund x1: 'hi'

    Args:
        report: The evaluation.
        min_in_scope_accuracy: The lowest acceptable in-scope accuracy.
        min_oos_recall: The lowest acceptable out-of-scope recall.
        max_p99_us: The highest acceptable 99th-percentile latency, in microseconds.
        min_accuracy: The lowest acceptable overall accuracy.
        min_macro_f1: The lowest acceptable macro F1.

    Raises:
        AssertionError: Listing every target missed, the headline numbers and the worst
            confusions.
    """  # noqa: E501
    failures: list[str] = []
    if report.in_scope_accuracy < min_in_scope_accuracy:
        failures.append(
            f"in-scope accuracy {report.in_scope_accuracy:.3f} < {min_in_scope_accuracy:.3f} "
            f"({report.n_in_scope} in-scope examples)"
        )
    if report.oos_recall < min_oos_recall:
        failures.append(
            f"out-of-scope recall {report.oos_recall:.3f} < {min_oos_recall:.3f} "
            f"({report.n_oos} out-of-scope examples)"
        )
    if min_accuracy is not None and report.accuracy < min_accuracy:
        failures.append(f"accuracy {report.accuracy:.3f} < {min_accuracy:.3f}")
    if min_macro_f1 is not None and report.macro_f1 < min_macro_f1:
        failures.append(f"macro F1 {report.macro_f1:.3f} < {min_macro_f1:.3f}")
    if max_p99_us is not None and report.p99_us > max_p99_us:
        failures.append(f"p99 latency {report.p99_us:.1f}µs > {max_p99_us:.1f}µs")
    if not failures:
        return
    lines = ["routing below target: " + "; ".join(failures), report.summary()]
    if report.confusions:
        lines.append("worst confusions:")
        lines += [
            f"  {_name(c.gold)} -> {_name(c.predicted)} x{c.count}: "
            + ", ".join(repr(text) for text in c.examples)
            for c in report.confusions
        ]
    raise AssertionError("\n".join(lines))


def _fold(label: str | None, fallback: str | None) -> str | None:
    return None if label is None or label == fallback else label


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _class_metrics(
    name: str | None, golds: Sequence[str | None], routed: Sequence[str | None]
) -> IntentMetrics:
    pairs = list(zip(golds, routed, strict=True))
    hits = sum(g == name and p == name for g, p in pairs)
    support = sum(g == name for g in golds)
    precision = _ratio(hits, sum(p == name for p in routed))
    recall = _ratio(hits, support)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return IntentMetrics(precision, recall, f1, support)


def _confusions(
    examples: Sequence[Example],
    golds: Sequence[str | None],
    routed: Sequence[str | None],
    limit: int,
) -> tuple[Confusion, ...]:
    counts: Counter[tuple[str | None, str | None]] = Counter()
    texts: dict[tuple[str | None, str | None], list[str]] = {}
    for example, gold, predicted in zip(examples, golds, routed, strict=True):
        if gold != predicted:
            key = (gold, predicted)
            counts[key] += 1
            shown = texts.setdefault(key, [])
            if len(shown) < 3:
                shown.append(example.text)
    # Counter.most_common keeps first-seen order among equal counts: deterministic for a given
    # data order.
    return tuple(
        Confusion(gold, predicted, count, tuple(texts[gold, predicted]))
        for (gold, predicted), count in counts.most_common(max(limit, 0))
    )


def _percentile(values: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks, the "inclusive" method of
    # statistics.quantiles (as the benchmarks use): the result never leaves the observed range,
    # which matters for the p99 of a few hundred decisions.
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_MAX_MIDPOINTS = 2000


def _candidates(items: Sequence[_Item], thresholds: Sequence[float] | None) -> Sequence[float]:
    """The given thresholds, or the grid plus midpoints between the data's confidences."""
    if thresholds is not None:
        return thresholds
    values = sorted({min(max(item.confidence, 0.0), 1.0) for item in items})
    midpoints = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    if len(midpoints) > _MAX_MIDPOINTS:  # each sweep point is cheap, but keep it bounded
        step = len(midpoints) / _MAX_MIDPOINTS
        midpoints = [midpoints[int(i * step)] for i in range(_MAX_MIDPOINTS)]
    return sorted({*DEFAULT_THRESHOLDS, *midpoints})


def _items(
    golds: Sequence[str | None],
    predictions: Sequence[Prediction | RouteDecision],
    fallback: str | None,
) -> list[_Item]:
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} gold labels but {len(predictions)} predictions")
    items = []
    for gold, prediction in zip(golds, predictions, strict=True):
        p = deciding_prediction(prediction) if isinstance(prediction, RouteDecision) else prediction
        items.append(_Item(_fold(gold, fallback), _fold(p.label, fallback), p.confidence, p.margin))
    return items


def _sweep(items: Sequence[_Item], thresholds: Sequence[float], margin: float) -> list[SweepPoint]:
    n = len(items)
    n_oos = sum(item.gold is None for item in items)
    n_in = n - n_oos
    # Sorted confidences per outcome, so each threshold is two bisections, not a pass over the
    # data: a 101-point sweep of a large evaluation set stays instant.
    routable = sorted(i.confidence for i in items if i.label is not None and i.margin >= margin)
    right = sorted(
        i.confidence
        for i in items
        if i.label is not None and i.margin >= margin and i.gold == i.label
    )
    oos = sorted(
        i.confidence for i in items if i.label is not None and i.margin >= margin and i.gold is None
    )
    points = []
    for threshold in thresholds:
        in_correct = len(right) - bisect.bisect_left(right, threshold)
        oos_abstained = n_oos - (len(oos) - bisect.bisect_left(oos, threshold))
        abstained = n - (len(routable) - bisect.bisect_left(routable, threshold))
        points.append(
            SweepPoint(
                threshold=threshold,
                in_scope_accuracy=_ratio(in_correct, n_in),
                oos_recall=_ratio(oos_abstained, n_oos),
                oos_precision=_ratio(oos_abstained, abstained),
                accuracy=_ratio(in_correct + oos_abstained, n),
                margin=margin,
            )
        )
    return points


def _score(point: SweepPoint, objective: Objective) -> float:
    if objective == "balanced":
        return (point.in_scope_accuracy + point.oos_recall) / 2
    return point.accuracy


def _correct_at(item: _Item, threshold: float) -> bool:
    if item.confidence >= threshold:
        return item.gold == item.label
    return item.gold is None


def _check_objective(objective: str) -> None:
    if objective not in ("balanced", "accuracy"):
        raise ValueError(f"the objective is 'balanced' or 'accuracy', not {objective!r}")


def _check_unit(name: str, values: Sequence[float]) -> None:
    if not values:
        raise ValueError(f"{name}: no candidates")
    outside = [v for v in values if not 0.0 <= v <= 1.0]
    if outside:
        raise ValueError(f"{name} must be between 0 and 1, not {outside}")


def _name(label: str | None) -> str:
    return _OOS if label is None else label


def _cell(text: str) -> str:
    # A "|" would end the Markdown cell and a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")
