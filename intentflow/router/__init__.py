"""The intent router: intents, classifiers, rules, cascades and the route decision.

* `Intent`: a name, how to recognise it (description, examples), the toolset and tool_choice
  policy it selects, and the agent that handles it;
* `Router`: rules, then a cascade of `Stage` classifiers, stickiness and abstain thresholds,
  to a `RouteDecision`;
* `Classifier`: the protocol every classifier implements (``classify(text) -> Prediction``);
* `LexicalClassifier`: the offline default (word and character n-grams, a linear SVM);
* `EmbeddingClassifier`: sentence embeddings (`OpenAIEmbedder`, or the local
  all-MiniLM-L6-v2 `MiniLMEmbedder` in ``intentflow.router.minilm``) with a fitted head;
* `LLMClassifier`: asks a model for one intent name or none, constrained by an enum;
* `Rule`: regex/keyword overrides and vetoes;
* evaluation: labelled `Example`s (JSONL/CSV), `evaluate` / `evaluate_router` reports,
  threshold sweeps and fitting, and `assert_routing` for pinning accuracy in tests;
* `Router.fit` (`FitReport`), `Router.save` / `Router.load`, and `register_classifier` for
  an application's own savable classifiers.
"""

from intentflow.router.data import Example, examples_from, load_examples
from intentflow.router.decision import Classifier, Prediction, RouteDecision
from intentflow.router.embedders import CachedEmbedder, Embedder, EmbeddingCache, OpenAIEmbedder
from intentflow.router.embedding import HEADS, EmbeddingClassifier
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
from intentflow.router.fitting import FitReport
from intentflow.router.intent import Intent
from intentflow.router.lexical import LexicalClassifier
from intentflow.router.llm import LLMClassifier
from intentflow.router.persist import SavableClassifier, register_classifier
from intentflow.router.router import Router, Stage
from intentflow.router.rules import Rule, RuleMatch, match_rules

__all__ = [
    "HEADS",
    "CachedEmbedder",
    "Classifier",
    "Confusion",
    "Embedder",
    "EmbeddingCache",
    "EmbeddingClassifier",
    "EvaluationReport",
    "Example",
    "FitReport",
    "FittedThreshold",
    "Intent",
    "IntentMetrics",
    "LLMClassifier",
    "LexicalClassifier",
    "OpenAIEmbedder",
    "Prediction",
    "RouteDecision",
    "Router",
    "Rule",
    "RuleMatch",
    "SavableClassifier",
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
    "register_classifier",
    "route_examples",
    "threshold_sweep",
]
