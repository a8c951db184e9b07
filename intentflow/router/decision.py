"""What a classifier predicts and what the router decides."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Classifier", "Prediction", "RouteDecision"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """A classifier's view of one message.

    Attributes:
        label: The best intent, or ``None`` when the classifier itself says "none of them"
            (an LLM classifier can; a trained one always names its best guess and leaves
            abstaining to the router's thresholds).
        confidence: How sure it is of ``label``, from 0 to 1.
        margin: ``confidence`` minus the runner-up's score (1 when there is no runner-up).
        scores: The top intents with their scores, best first.
    """

    label: str | None
    confidence: float
    margin: float
    scores: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_scores(cls, scores: Sequence[tuple[str, float]], top_k: int = 5) -> Prediction:
        """The prediction for scores (any order): the best label, its score and the margin.

        Examples:
            >>> p = Prediction.from_scores([("a", 0.2), ("b", 0.7), ("c", 0.1)], top_k=2)
            >>> p.label, p.confidence, round(p.margin, 2), p.scores
            ('b', 0.7, 0.5, (('b', 0.7), ('a', 0.2)))
        """
        ranked = sorted(scores, key=lambda item: item[1], reverse=True)
        if not ranked:
            return cls(None, 0.0, 0.0, ())
        best = ranked[0][1]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        return cls(ranked[0][0], best, best - runner_up, tuple(ranked[:top_k]))


@runtime_checkable
class Classifier(Protocol):
    """Anything that scores a message against the intents: one method, async.

    Trained classifiers are fast and synchronous inside; they still present ``classify`` as a
    coroutine so that one router drives lexical, embedding and LLM classifiers alike.

    Attributes:
        name: The name a `RouteDecision` reports for this classifier.
    """

    name: str

    def classify(self, text: str) -> Awaitable[Prediction]:
        """Score ``text``."""
        ...


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a message goes, and why.

    Attributes:
        intent: The chosen intent's name; ``None`` when the router abstained and has no
            fallback intent (the caller handles out-of-scope messages).
        confidence: The deciding classifier's confidence in its best intent.
        margin: Its margin to the runner-up.
        scores: The top intents with their scores, best first.
        classifier: What decided: a classifier's name, ``"rules"``, or ``"sticky"``.
        latency: Seconds spent deciding.
        abstained: Whether the best intent was rejected as not confident enough (the
            decision is then the fallback).
        stages: For a cascade, every stage that ran, in order.
        reason: Why this decision, in a few words (for logs and evaluation reports).
        proposed: The intent the deciding classifier proposed before the abstain thresholds
            (the one rejected when ``abstained``); ``None`` when it proposed no intent.
    """

    intent: str | None
    confidence: float
    margin: float
    scores: tuple[tuple[str, float], ...]
    classifier: str
    latency: float
    abstained: bool = False
    stages: tuple[str, ...] = ()
    reason: str = ""
    proposed: str | None = None
