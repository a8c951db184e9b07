"""Fitting a router: train its classifiers, then choose its abstain thresholds on held-out data.

`fit_router` (what `Router.fit` calls) does, in order:

1. Gathers the training examples: the intents' own ``examples`` plus ``train`` (out-of-scope
   examples, ``intent=None``, train the classifiers' notion of "none of these" where they
   have one, and are required to fit an abstain threshold that means something).
2. Chooses where thresholds are fitted: on ``val`` when given. Without ``val``, a stratified
   ``holdout`` share of the training data is set aside, the classifiers are fitted on the
   rest, thresholds are fitted on the held-out part, and the classifiers are fitted again on
   everything (the thresholds then come from a slightly smaller model, a conservative error).
3. Fits every stage whose classifier has a ``fit(texts, labels)`` method (sync or async);
   other stages (an `LLMClassifier`) are used as they are.
4. Routes the threshold data with the router's thresholds off, and fits the global threshold
   and margin (`fit_threshold`) and, where the evidence is clear, per-intent thresholds
   (`fit_per_intent_thresholds`). The router is updated in place.

The returned `FitReport` holds the trade-off: the sweep of in-scope accuracy against
out-of-scope recall over thresholds, and the scores at the chosen point.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread

from intentflow.router.data import Example
from intentflow.router.evaluation import (
    FittedThreshold,
    Objective,
    SweepPoint,
    deciding_prediction,
    fit_per_intent_thresholds,
    fit_threshold,
    route_examples,
    threshold_sweep,
)

if TYPE_CHECKING:
    from intentflow.router.router import Router

__all__ = ["DEFAULT_MARGINS", "FitReport", "fit_router"]

DEFAULT_MARGINS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2)
"""The margins `fit_router` tries by default, with every threshold."""

_SWEEP = tuple(round(0.05 * i, 2) for i in range(21))

ThresholdSource = Literal["val", "holdout", "none"]


@dataclass(frozen=True, slots=True)
class FitReport:
    """What `Router.fit` did and what the chosen thresholds achieve on the threshold data.

    Attributes:
        threshold: The global confidence threshold chosen.
        margin: The ambiguity margin chosen.
        thresholds: Per-intent thresholds, only for the intents that moved from the global one.
        fitted: The global fit's scores on the threshold data (in-scope accuracy, out-of-scope
            recall and precision, accuracy) before per-intent thresholds.
        sweep: In-scope accuracy against out-of-scope recall over thresholds (0 to 1 by 0.05)
            at the chosen margin: the trade-off the threshold moves along.
        source: Where thresholds were fitted: ``"val"``, ``"holdout"`` (part of the training
            data), or ``"none"`` (no data to fit on; thresholds left as they were).
        n_train: Training examples (the intents' own examples included).
        n_threshold: Examples the thresholds were fitted on.
        n_threshold_oos: Of those, the out-of-scope ones.
        fitted_stages: The names of the classifiers that were trained.
        seconds: Wall time of the whole fit.
        classifier_seconds: Wall time spent in classifiers' ``fit``.
    """

    threshold: float
    margin: float
    thresholds: dict[str, float]
    fitted: FittedThreshold | None
    sweep: tuple[SweepPoint, ...]
    source: ThresholdSource
    n_train: int
    n_threshold: int
    n_threshold_oos: int
    fitted_stages: tuple[str, ...]
    seconds: float
    classifier_seconds: float
    objective: Objective = "accuracy"
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (saved with the router, printed by the CLI)."""
        fitted = self.fitted
        return {
            "threshold": self.threshold,
            "margin": self.margin,
            "thresholds": dict(self.thresholds),
            "objective": self.objective,
            "source": self.source,
            "n_train": self.n_train,
            "n_threshold": self.n_threshold,
            "n_threshold_oos": self.n_threshold_oos,
            "fitted": None
            if fitted is None
            else {
                "in_scope_accuracy": fitted.in_scope_accuracy,
                "oos_recall": fitted.oos_recall,
                "oos_precision": fitted.oos_precision,
                "accuracy": fitted.accuracy,
            },
            "sweep": [
                {
                    "threshold": p.threshold,
                    "in_scope_accuracy": p.in_scope_accuracy,
                    "oos_recall": p.oos_recall,
                    "oos_precision": p.oos_precision,
                    "accuracy": p.accuracy,
                }
                for p in self.sweep
            ],
            "fitted_stages": list(self.fitted_stages),
            "seconds": self.seconds,
            "classifier_seconds": self.classifier_seconds,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """A few lines for people: the chosen thresholds and what they trade."""
        lines = [
            f"fitted {', '.join(self.fitted_stages) or 'no classifier'} on {self.n_train} "
            f"examples in {self.classifier_seconds:.1f} s",
        ]
        if self.fitted is None:
            lines.append("thresholds: not fitted (no threshold data)")
        else:
            f = self.fitted
            lines.append(
                f"thresholds on {self.source} ({self.n_threshold} examples, "
                f"{self.n_threshold_oos} out of scope): threshold {self.threshold:.3f}, "
                f"margin {self.margin:.3f}, {len(self.thresholds)} per-intent"
            )
            lines.append(
                f"  in-scope accuracy {f.in_scope_accuracy:.2%}, out-of-scope recall "
                f"{f.oos_recall:.2%}, precision {f.oos_precision:.2%}, accuracy {f.accuracy:.2%}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


async def fit_router(
    router: Router,
    train: Sequence[Example] = (),
    val: Sequence[Example] | None = None,
    *,
    objective: Objective = "accuracy",
    margins: Sequence[float] = DEFAULT_MARGINS,
    per_intent: bool = True,
    holdout: float = 0.2,
    seed: int = 0,
) -> FitReport:
    """Fit ``router``'s classifiers and abstain thresholds in place (see the module notes).

    Args:
        router: The router; its trainable stages are refitted and its ``threshold``,
            ``margin`` and ``thresholds`` replaced.
        train: Labelled training examples, added to the intents' own examples.
        val: Where thresholds are fitted; ``None`` holds out part of the training data.
        objective: What the thresholds maximise (see `intentflow.router.evaluation.Objective`).
        margins: The candidate ambiguity margins.
        per_intent: Also fit per-intent thresholds where the data clearly supports them.
        holdout: Without ``val``, the share of training data held out for thresholds
            (0 disables; thresholds are then left as they were).
        seed: Seeds the holdout split.

    Raises:
        ValueError: When an example names an intent the router does not have, there is
            nothing to train on, or ``holdout`` is not in ``[0, 1)``.
    """
    start = time.perf_counter()
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), not {holdout}")
    own = [
        Example(text, intent.name) for intent in router.intents.values() for text in intent.examples
    ]
    train_all = [*own, *train]
    _check_labels(router, train_all, "train")
    if val is not None:
        _check_labels(router, val, "val")
    if not train_all:
        raise ValueError("nothing to train on: the intents have no examples and train is empty")
    notes: list[str] = []

    source: ThresholdSource
    fit_first: list[Example]
    if val is not None:
        source, fit_first, threshold_data = "val", train_all, list(val)
    elif holdout > 0.0 and len(train_all) >= 10:
        fit_first, threshold_data = _split(train, holdout, seed)
        fit_first = [*own, *fit_first]
        source = "holdout"
    else:
        source, fit_first, threshold_data = "none", train_all, []
        notes.append("no validation data: thresholds were left as they were")

    classifier_seconds, fitted_stages = await _fit_stages(router, fit_first)

    fitted: FittedThreshold | None = None
    sweep: tuple[SweepPoint, ...] = ()
    n_oos = sum(e.intent is None for e in threshold_data)
    if threshold_data:
        if not n_oos:
            notes.append(
                "the threshold data has no out-of-scope example: the threshold keeps in-scope "
                "accuracy within half a point of its best instead of trading it for recall"
            )
        saved = router.threshold, router.margin, router.thresholds
        router.threshold, router.margin, router.thresholds = 0.0, 0.0, {}
        try:
            decisions = await route_examples(router, threshold_data)
        finally:
            router.threshold, router.margin, router.thresholds = saved
        golds = [e.intent for e in threshold_data]
        predictions = [deciding_prediction(d) for d in decisions]
        fallback = router.fallback
        fitted = fit_threshold(
            golds, predictions, objective=objective, margins=margins, fallback=fallback
        )
        per: dict[str, float] = {}
        if per_intent:
            per = fit_per_intent_thresholds(
                golds,
                predictions,
                threshold=fitted.threshold,
                margin=fitted.margin,
                objective=objective,
                fallback=fallback,
            )
        sweep = tuple(
            threshold_sweep(golds, predictions, _SWEEP, margin=fitted.margin, fallback=fallback)
        )
        router.threshold, router.margin, router.thresholds = fitted.threshold, fitted.margin, per

    if source == "holdout":
        # Thresholds are fitted; now give the classifiers every example.
        more_seconds, _ = await _fit_stages(router, train_all)
        classifier_seconds += more_seconds

    return FitReport(
        threshold=router.threshold,
        margin=router.margin,
        thresholds=dict(router.thresholds),
        fitted=fitted,
        sweep=sweep,
        source=source,
        n_train=len(train_all),
        n_threshold=len(threshold_data),
        n_threshold_oos=n_oos,
        fitted_stages=fitted_stages,
        seconds=time.perf_counter() - start,
        classifier_seconds=classifier_seconds,
        objective=objective,
        notes=tuple(notes),
    )


async def _fit_stages(router: Router, examples: Sequence[Example]) -> tuple[float, tuple[str, ...]]:
    texts = [e.text for e in examples]
    labels = [e.intent for e in examples]
    seconds = 0.0
    names = []
    for stage in router.stages:
        fit = getattr(stage.classifier, "fit", None)
        if not callable(fit):
            continue
        start = time.perf_counter()
        if inspect.iscoroutinefunction(fit):
            await fit(texts, labels)
        else:
            # A CPU-bound fit must not stall the event loop a service's other requests run on.
            await anyio.to_thread.run_sync(fit, texts, labels)
        seconds += time.perf_counter() - start
        names.append(stage.classifier.name)
    return seconds, tuple(names)


def _check_labels(router: Router, examples: Sequence[Example], what: str) -> None:
    unknown = sorted({e.intent for e in examples if e.intent is not None} - set(router.intents))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ValueError(
            f"{what} names intents the router does not have: {shown}{more}; add them as "
            "intents or relabel those examples"
        )


def _split(
    examples: Sequence[Example], share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A stratified split: about ``share`` of each label's examples go to the second part."""
    groups: dict[str | None, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.intent].append(example)
    rng = random.Random(seed)
    kept: list[Example] = []
    held: list[Example] = []
    for label in sorted(groups, key=lambda x: (x is None, x or "")):
        group = groups[label][:]
        rng.shuffle(group)
        # Every intent keeps at least one training example.
        n_held = min(len(group) - (label is not None), math.floor(len(group) * share + 0.5))
        held.extend(group[:n_held])
        kept.extend(group[n_held:])
    return kept, held
