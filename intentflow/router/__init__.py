"""The intent router: intents, classifiers, rules, cascades and the route decision.

* `Intent`: a name, how to recognise it (description, examples), the toolset and tool_choice
  policy it selects, and the agent that handles it;
* `Router`: rules, then a cascade of `Stage` classifiers, stickiness and abstain thresholds,
  to a `RouteDecision`;
* `Classifier`: the protocol every classifier implements (``classify(text) -> Prediction``);
* `LLMClassifier`: asks a model for one intent name or none, constrained by an enum;
* `Rule`: regex/keyword overrides and vetoes.
"""

from intentflow.router.decision import Classifier, Prediction, RouteDecision
from intentflow.router.intent import Intent
from intentflow.router.llm import LLMClassifier
from intentflow.router.router import Router, Stage
from intentflow.router.rules import Rule, RuleMatch, match_rules

__all__ = [
    "Classifier",
    "Intent",
    "LLMClassifier",
    "Prediction",
    "RouteDecision",
    "Router",
    "Rule",
    "RuleMatch",
    "Stage",
    "match_rules",
]
