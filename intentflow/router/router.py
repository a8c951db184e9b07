"""`Router`: from a message to a `RouteDecision`, with rules, a cascade, stickiness and abstain.

One decision, in order:

1. Rules: an override rule that matches decides at once; veto rules remove intents.
2. Classifiers, as a cascade of stages from cheap to expensive: a stage decides when its best
   intent is confident enough and far enough ahead of the runner-up; otherwise the next stage
   runs. A stage that fails (an endpoint error, an answer that names no intent) is recorded and
   skipped; the last stage that answered decides.
3. Stickiness: in a conversation, the current intent is kept unless another is clearly better.
4. Abstain: below the confidence threshold (global or per intent) or the margin, the message
   goes to the fallback intent, or to no intent.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import anyio
import anyio.to_thread
import structlog

from intentflow._logging import debug_enabled
from intentflow.errors import ConfigurationError
from intentflow.router.decision import Classifier, Prediction, RouteDecision
from intentflow.router.intent import Intent
from intentflow.router.rules import Rule, RuleMatch, match_rules

if TYPE_CHECKING:
    from intentflow.router.data import Example
    from intentflow.router.evaluation import Objective
    from intentflow.router.fitting import FitReport

__all__ = ["Router", "Stage"]

_log = structlog.get_logger("intentflow.router")
_perf = time.perf_counter


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a cascade: a classifier and when its answer is good enough to stop.

    Attributes:
        classifier: The classifier.
        min_confidence: Escalate when the best intent's confidence is below this.
        min_margin: Escalate when the best intent leads the runner-up by less than this.
    """

    classifier: Classifier
    min_confidence: float = 0.0
    min_margin: float = 0.0

    def accepts(self, prediction: Prediction) -> bool:
        """Whether this stage's prediction ends the cascade."""
        return (
            prediction.label is not None
            and prediction.confidence >= self.min_confidence
            and prediction.margin >= self.min_margin
        )


class Router:
    """Routes messages to intents.

    Args:
        intents: The intents (unique names).
        classifier: One classifier, or cascade stages from cheapest to most expensive (a
            bare classifier in the sequence is a stage with no escalation limits).
        fallback: The intent for messages no intent is confident about (typically one with
            tool_choice ``none``); ``None`` returns "no intent" for the caller to handle.
        threshold: The minimum confidence to route to an intent.
        margin: The minimum lead over the runner-up to route to an intent.
        thresholds: Per-intent confidence thresholds, replacing ``threshold`` for them.
        rules: Override and veto rules, applied before any classifier.
        sticky_margin: In a conversation, keep the current intent while its score is within
            this of the best one; ``None`` disables stickiness.

    Raises:
        ConfigurationError: Listing every problem: duplicate names, an intent nothing can
            recognise, unknown intents in the fallback, rules or thresholds, bad numbers.
    """

    def __init__(
        self,
        intents: Iterable[Intent],
        classifier: Classifier | Sequence[Stage | Classifier],
        *,
        fallback: str | None = None,
        threshold: float = 0.0,
        margin: float = 0.0,
        thresholds: Mapping[str, float] | None = None,
        rules: Sequence[Rule] = (),
        sticky_margin: float | None = None,
    ) -> None:
        self.intents: dict[str, Intent] = {}
        problems: list[str] = []
        for intent in intents:
            if intent.name in self.intents:
                problems.append(f"two intents are named {intent.name!r}")
            self.intents[intent.name] = intent
        if not self.intents:
            problems.append("a router needs at least one intent")
        overridden = {r.intent for r in rules if r.action == "override"}
        for name, intent in self.intents.items():
            if not (intent.examples or intent.description or name in overridden):
                problems.append(
                    f"intent {name!r} cannot be recognised: give it examples, a description "
                    "or an override rule"
                )
        for rule in rules:
            if rule.intent not in self.intents:
                problems.append(f"rule {rule.name!r} names an unknown intent {rule.intent!r}")
        if fallback is not None and fallback not in self.intents:
            problems.append(f"the fallback {fallback!r} is not an intent")
        self.thresholds: dict[str, float] = dict(thresholds or {})
        for name, value in (("threshold", threshold), ("margin", margin)):
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1, not {value}")
        for name, value in self.thresholds.items():
            if name not in self.intents:
                problems.append(f"a threshold is set for an unknown intent {name!r}")
            elif not 0.0 <= value <= 1.0:
                problems.append(f"the threshold of {name!r} must be between 0 and 1, not {value}")
        if sticky_margin is not None and sticky_margin < 0:
            problems.append(f"sticky_margin must be >= 0, not {sticky_margin}")
        self.stages: tuple[Stage, ...] = ()
        if isinstance(classifier, Classifier):
            self.stages = (Stage(classifier),)
        else:
            # A bare classifier in a cascade is a stage that accepts any answer it gives.
            entries: list[object] = list(classifier)  # checked: callers are often untyped
            for i, entry in enumerate(entries):
                if isinstance(entry, Stage):
                    self.stages += (entry,)
                elif isinstance(entry, Classifier):
                    self.stages += (Stage(entry),)
                else:
                    problems.append(
                        f"stage {i} is a {type(entry).__name__}, not a Stage or a classifier "
                        "(an object with a name and an async classify(text) method)"
                    )
            if not self.stages and not problems:
                problems.append("a router needs a classifier")
        if problems:
            raise ConfigurationError(
                "the router cannot be built:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        self.fallback = fallback
        self.threshold = threshold
        self.margin = margin
        self.rules = tuple(rules)
        self.sticky_margin = sticky_margin
        self.fit_report: FitReport | None = None
        # Trainable classifiers given unfitted learn the intents' examples on the first route.
        self._unfitted = [s.classifier for s in self.stages if _unfitted(s.classifier)]
        self._fitting = anyio.Lock()

    async def fit(
        self,
        train: Sequence[Example] = (),
        val: Sequence[Example] | None = None,
        *,
        objective: Objective = "accuracy",
        margins: Sequence[float] | None = None,
        per_intent: bool = True,
        holdout: float = 0.2,
        seed: int = 0,
    ) -> FitReport:
        """Train the classifiers and fit the abstain thresholds; the router changes in place.

        The trainable stages learn from the intents' examples plus ``train``; the threshold,
        the margin and (where the evidence is clear) per-intent thresholds are then chosen on
        ``val``, or on a held-out share of ``train`` when there is no ``val``.
        `intentflow.router.fitting` describes each step.

        Examples:
            >>> import anyio
            >>> from intentflow.router import Example, LexicalClassifier
            >>> router = Router(
            ...     [Intent("refund", examples=["refund my order", "I want my money back"]),
            ...      Intent("status", examples=["where is my parcel", "track my order"])],
            ...     LexicalClassifier(),
            ... )
            >>> val = [Example("money back please", "refund"), Example("track parcel", "status"),
            ...        Example("what is the capital of peru", None)]
            >>> report = anyio.run(router.fit, [], val)
            >>> report.source, report.n_threshold, router.threshold == report.threshold
            ('val', 3, True)

        Args:
            train: Labelled training examples (``intent=None``: out of scope).
            val: Labelled examples for the thresholds, including out-of-scope ones.
            objective: What the thresholds maximise. ``"accuracy"`` (the default): every
                example of ``val`` counts once, so the trade-off follows the mix of in-scope
                and out-of-scope messages in it; make that mix look like your traffic.
                ``"balanced"``: the mean of in-scope accuracy and out-of-scope recall, which
                weighs abstaining as much as routing whatever their counts (on CLINC150 it
                buys out-of-scope recall with several points of in-scope accuracy).
            margins: Candidate ambiguity margins (default `fitting.DEFAULT_MARGINS`).
            per_intent: Also fit per-intent thresholds.
            holdout: Without ``val``, the share of ``train`` held out for thresholds.
            seed: Seeds the holdout split.

        Returns:
            A `FitReport`: the chosen thresholds, what they achieve, and the trade-off sweep.
        """
        from intentflow.router.fitting import DEFAULT_MARGINS, fit_router

        report = await fit_router(
            self,
            train,
            val,
            objective=objective,
            margins=DEFAULT_MARGINS if margins is None else margins,
            per_intent=per_intent,
            holdout=holdout,
            seed=seed,
        )
        self.fit_report = report
        return report

    def save(self, directory: str | Path) -> Path:
        """Write the router to ``directory`` (see `intentflow.router.artifact`).

        The directory is replaced as a whole, so concurrent readers never see a mixture.

        Raises:
            ArtifactError: When ``directory`` exists and is not a saved router.
        """
        from intentflow.router.artifact import save_router

        report = self.fit_report.to_dict() if self.fit_report is not None else None
        return save_router(self, directory, fit=report)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        intents: Iterable[Intent] | None = None,
        classifiers: Mapping[str, Classifier] | None = None,
    ) -> Self:
        """Read a router written by :meth:`save`; it makes the same decisions.

        Args:
            directory: The saved router.
            intents: The application's intents (with their toolsets and entries), whose names
                must be exactly the saved ones; by default plain intents with those names.
            classifiers: Classifiers for stages that could not be saved (an `LLMClassifier`),
                by stage name.

        Raises:
            ArtifactError: When the directory is not a saved router, comes from an
                incompatible format version, is corrupt, or does not match ``intents``.
        """
        from intentflow.router.artifact import load_router

        router = load_router(directory, intents=intents, classifiers=classifiers)
        if not isinstance(router, cls):  # a subclass asked: rebuild it as one
            return cls(
                router.intents.values(),
                router.stages,
                fallback=router.fallback,
                threshold=router.threshold,
                margin=router.margin,
                thresholds=router.thresholds,
                rules=router.rules,
                sticky_margin=router.sticky_margin,
            )
        return router

    async def route(
        self, text: str, *, current: str | None = None, exclude: Collection[str] = ()
    ) -> RouteDecision:
        """Decide the intent of ``text``.

        Args:
            text: The user's message.
            current: The conversation's current intent, for sticky routing.
            exclude: Intents this decision must not choose (as if vetoed by a rule): an
                agent asked to re-route away from them.
        """
        if self._unfitted:
            await self._fit_from_intents()
        start = _perf()
        matched = match_rules(self.rules, text) if self.rules else None
        if (
            matched is not None
            and matched.override is not None
            and matched.override.intent in exclude
        ):
            matched = RuleMatch(None, matched.vetoed, matched.fired)
        if matched is not None and matched.override is not None:
            rule = matched.override
            return self._log(
                RouteDecision(
                    rule.intent,
                    1.0,
                    1.0,
                    ((rule.intent, 1.0),),
                    "rules",
                    _perf() - start,
                    reason=f"rule {rule.name}",
                    proposed=rule.intent,
                )
            )
        vetoed = matched.vetoed if matched is not None else frozenset()
        fallback = self.fallback
        if exclude:
            vetoed = vetoed | frozenset(exclude)
            if fallback in vetoed:
                fallback = None  # abstaining must not land on an excluded intent either

        stages_run: list[str] = []
        decided: Prediction | None = None
        decider = ""
        failures: list[str] = []
        for stage in self.stages:
            name = stage.classifier.name
            try:
                prediction = self._clean(await stage.classifier.classify(text), vetoed)
            except Exception as exc:  # a stage's failure must not lose the message
                failures.append(f"{name} failed: {type(exc).__name__}: {exc}")
                stages_run.append(f"{name}!")
                _log.warning("router.stage_failed", classifier=name, error=str(exc))
                continue
            stages_run.append(name)
            if prediction.label is None and decided is not None:
                failures.append(f"{name} named no intent")
                continue
            decided, decider = prediction, name
            if stage.accepts(prediction):
                break
        if decided is None:
            return self._log(
                RouteDecision(
                    fallback,
                    0.0,
                    0.0,
                    (),
                    stages_run[-1] if stages_run else "",
                    _perf() - start,
                    abstained=True,
                    stages=tuple(stages_run),
                    reason="; ".join(failures) or "no classifier answered",
                )
            )

        label = decided.label
        if (
            current is not None
            and self.sticky_margin is not None
            and current in self.intents
            and current not in vetoed
            and label != current
        ):
            current_score = dict(decided.scores).get(current)
            if (
                current_score is not None
                and decided.confidence - current_score <= self.sticky_margin
            ):
                return self._log(
                    RouteDecision(
                        current,
                        current_score,
                        decided.confidence - current_score,
                        decided.scores,
                        "sticky",
                        _perf() - start,
                        stages=tuple(stages_run),
                        reason=f"kept {current!r}: within {self.sticky_margin} of {label!r}",
                        proposed=label,
                    )
                )

        threshold = self.thresholds.get(label, self.threshold) if label is not None else 1.0
        confident = (
            label is not None and decided.confidence >= threshold and decided.margin >= self.margin
        )
        if confident:
            reason = "confident"
        elif label is None:
            reason = f"{decider} named no intent"
        else:
            reason = (
                f"{label!r} at {decided.confidence:.3f} (threshold {threshold:.3f}), "
                f"margin {decided.margin:.3f} (minimum {self.margin:.3f})"
            )
        return self._log(
            RouteDecision(
                label if confident else fallback,
                decided.confidence,
                decided.margin,
                decided.scores,
                decider,
                _perf() - start,
                abstained=not confident,
                stages=tuple(stages_run),
                reason="; ".join([*failures, reason]),
                proposed=label,
            )
        )

    async def _fit_from_intents(self) -> None:
        async with self._fitting:
            texts = [t for i in self.intents.values() for t in i.examples]
            labels: list[str | None] = [i.name for i in self.intents.values() for _ in i.examples]
            while self._unfitted:
                classifier = self._unfitted[0]
                if _unfitted(classifier) and len(set(labels)) < 2:
                    raise ConfigurationError(
                        f"classifier {classifier.name!r} is not fitted and the intents give "
                        f"examples for {len(set(labels))} intent(s); give at least two intents "
                        "examples, or fit the router first: await router.fit(train)"
                    )
                if _unfitted(classifier):
                    fit = classifier.fit  # type: ignore[attr-defined]
                    if inspect.iscoroutinefunction(fit):
                        await fit(texts, labels)
                    else:
                        await anyio.to_thread.run_sync(fit, texts, labels)
                    _log.info(
                        "router.fitted_from_intents", classifier=classifier.name, n=len(texts)
                    )
                self._unfitted.pop(0)

    def _clean(self, prediction: Prediction, vetoed: frozenset[str]) -> Prediction:
        """Drop vetoed and unknown intents from a prediction, and re-rank what is left."""
        label = prediction.label
        if (
            (label is None or label in self.intents)
            and label not in vetoed
            and all(name in self.intents and name not in vetoed for name, _ in prediction.scores)
        ):
            return prediction
        kept = [(n, s) for n, s in prediction.scores if n in self.intents and n not in vetoed]
        if not kept:
            return Prediction(None, 0.0, 0.0, ())
        return Prediction.from_scores(kept, top_k=len(prediction.scores))

    def _log(self, decision: RouteDecision) -> RouteDecision:
        if debug_enabled(_log):
            _log.debug(
                "router.decision",
                intent=decision.intent,
                confidence=round(decision.confidence, 4),
                margin=round(decision.margin, 4),
                classifier=decision.classifier,
                abstained=decision.abstained,
                reason=decision.reason,
                latency_us=round(decision.latency * 1e6, 1),
            )
        return decision


def _unfitted(classifier: object) -> bool:
    """A classifier with a ``fit`` method that has learnt no labels yet."""
    return callable(getattr(classifier, "fit", None)) and getattr(classifier, "labels", None) == ()
