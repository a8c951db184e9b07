"""Rules: regular expressions and keywords that override or veto a classifier.

Some decisions must not be left to a statistical model: "refund" must never be small talk; a
message with an order number is about an order. A `Rule` either *overrides* (the message goes
to its intent, whatever the classifier says) or *vetoes* (the message must not go to its
intent; the router takes the best remaining one).

A veto removes the intent from the classifier's scores without renormalising the others: the
best remaining intent keeps the confidence the classifier gave it, and must still pass the
router's threshold. A message the classifier was sure belonged to a vetoed intent is
therefore usually abstained on (sent to the fallback) rather than forced into the runner-up,
which is the safe outcome when the classifier and a rule disagree. To route such messages
somewhere definite, add an override rule for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from intentflow.errors import ConfigurationError

__all__ = ["Rule", "RuleMatch", "match_rules"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A hard routing rule.

    Examples:
        >>> never_chat = Rule.keywords("small_talk", ["refund", "chargeback"], action="veto")
        >>> never_chat.matches("I want a REFUND now")
        True
        >>> Rule.pattern("order_status", r"\\b[A-Z]-\\d{3,}\\b").matches("where is A-1234?")
        True

    Attributes:
        intent: The intent the rule sends a message to (override) or keeps it from (veto).
        regex: The compiled pattern; it matches anywhere in the message (``search``).
        action: ``"override"`` or ``"veto"``.
        name: A label for reports (defaults to the action and the intent).
    """

    intent: str
    regex: re.Pattern[str]
    action: Literal["override", "veto"] = "override"
    name: str = field(default="")

    def __post_init__(self) -> None:
        if self.action not in ("override", "veto"):
            raise ConfigurationError(
                f"a rule's action is 'override' or 'veto', not {self.action!r}"
            )
        if not self.name:
            object.__setattr__(self, "name", f"{self.action}:{self.intent}")

    @classmethod
    def pattern(
        cls,
        intent: str,
        pattern: str,
        *,
        action: Literal["override", "veto"] = "override",
        flags: int = re.IGNORECASE,
        name: str = "",
    ) -> Rule:
        """A rule from a regular expression (case-insensitive unless ``flags`` say otherwise)."""
        try:
            regex = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigurationError(
                f"rule for {intent!r}: bad pattern {pattern!r}: {exc}"
            ) from exc
        return cls(intent, regex, action, name)

    @classmethod
    def keywords(
        cls,
        intent: str,
        words: Iterable[str],
        *,
        action: Literal["override", "veto"] = "override",
        name: str = "",
    ) -> Rule:
        """A rule that matches any of ``words`` as a whole word or phrase, ignoring case."""
        listed = [w.strip() for w in words if w.strip()]
        if not listed:
            raise ConfigurationError(f"keyword rule for {intent!r} has no keywords")
        alternatives = "|".join(re.escape(w) for w in sorted(listed, key=len, reverse=True))
        regex = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return cls(intent, regex, action, name)

    def matches(self, text: str) -> bool:
        """Whether the rule applies to ``text``."""
        return self.regex.search(text) is not None


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """What the rules say about one message.

    Attributes:
        override: The first matching override rule, if any.
        vetoed: The intents that matching veto rules forbid.
        fired: The names of every rule that matched, in order.
    """

    override: Rule | None
    vetoed: frozenset[str]
    fired: tuple[str, ...]


def match_rules(rules: Sequence[Rule], text: str) -> RuleMatch:
    """Apply ``rules`` to ``text``: the first override wins; vetoes accumulate.

    A veto beats an override of the same intent, so a rule set cannot send a message where it
    also forbids it.
    """
    override: Rule | None = None
    vetoed: set[str] = set()
    fired = []
    for rule in rules:
        if not rule.matches(text):
            continue
        fired.append(rule.name)
        if rule.action == "veto":
            vetoed.add(rule.intent)
        elif override is None:
            override = rule
    if override is not None and override.intent in vetoed:
        override = None
    return RuleMatch(override, frozenset(vetoed), tuple(fired))
