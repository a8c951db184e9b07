"""The intent router: intents, classifiers, rules, cascades and the route decision.

* `Intent`: a name, how to recognise it (description, examples), the toolset and tool_choice
  policy it selects, and the agent that handles it;
* `Router`: rules, then a cascade of `Stage` classifiers, stickiness and abstain thresholds,
  to a `RouteDecision`;
* `Classifier`: the protocol every classifier implements (``classify(text) -> Prediction``);
* `LexicalClassifier`: the offline default (word and character n-grams, a linear SVM);
* `LLMClassifier`: asks a model for one intent name or none, constrained by an enum;
* `Rule`: regex/keyword overrides and vetoes;
* evaluation: labelled `Example`s (JSONL/CSV), `evaluate` / `evaluate_router` reports,
  threshold sweeps and fitting, and `assert_routing` for pinning accuracy in tests.
"""

from intentflow.router.data import Example, examples_from, load_examples
from intentflow.router.decision import Classifier, Prediction, RouteDecision
from intentflow.router.evaluation import (
    Confusion,
    EvaluationReport,
    FittedThreshold,
    IntentMetrics,
    SweepPoint,
    assert_routing,
    deciding_prediction,
    evaluate,
    evaluate_router,
    fit_per_intent_thresholds,
    fit_threshold,
    route_examples,
    threshold_sweep,
)
from intentflow.router.intent import Intent
from intentflow.router.lexical import LexicalClassifier
from intentflow.router.llm import LLMClassifier
from intentflow.router.router import Router, Stage
from intentflow.router.rules import Rule, RuleMatch, match_rules

__all__ = [
    "Classifier",
    "Confusion",
    "EvaluationReport",
    "Example",
    "FittedThreshold",
    "Intent",
    "IntentMetrics",
    "LLMClassifier",
    "LexicalClassifier",
    "Prediction",
    "RouteDecision",
    "Router",
    "Rule",
    "RuleMatch",
    "Stage",
    "SweepPoint",
    "assert_routing",
    "deciding_prediction",
    "evaluate",
    "evaluate_router",
    "examples_from",
    "fit_per_intent_thresholds",
    "fit_threshold",
    "load_examples",
    "match_rules",
    "route_examples",
    "threshold_sweep",
]
