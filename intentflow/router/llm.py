"""`LLMClassifier`: ask a model to pick one intent name, or "none", under a constrained output.

The model sees each intent's name, description and a few examples, and must answer with one of
the names or ``none`` through a strict ``json_schema`` response format with an ``enum`` (or, for
endpoints without response formats, a forced tool call whose one argument is that ``enum``).

Confidence comes from the endpoint's log probabilities when it sends them (json_schema mode
asks for them): the probability of the chosen name's tokens, and for the runner-up the
probability of the alternative tokens at the name's first token that begin another intent's
name. Without logprobs (tool mode, or an endpoint that does not send them) the answer is taken
as certain (confidence and margin 1), so a cascade should put the LLM last.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from intentflow.errors import ClassificationError
from intentflow.messages import SystemMessage, UserMessage
from intentflow.models.base import Model, ModelRequest, OutputSchema, TokenLogprob
from intentflow.router.decision import Prediction
from intentflow.router.intent import Intent
from intentflow.toolsets.choice import ForcedTool
from intentflow.toolsets.tool import Tool

__all__ = ["NONE", "LLMClassifier"]

NONE = "none"
"""The answer that means "no intent fits"."""

_VALUE = re.compile(r'"intent"\s*:\s*"')


class LLMClassifier:
    """An intent classifier that asks a chat model.

    Args:
        model: The model to ask (any `Model`; e.g. a small, fast one).
        intents: The intents to choose from (their descriptions and examples go in the prompt).
        name: The name decisions report.
        examples_per_intent: How many examples of each intent the prompt shows.
        mode: ``json_schema`` (a response format with an enum; logprobs give confidence) or
            ``tool`` (a forced tool call; for endpoints without response formats).
        top_logprobs: Alternatives per token to ask for (json_schema mode; 0 disables
            logprobs).
        instructions: Extra instructions placed before the list of intents.
        settings: Extra request settings (``temperature`` defaults to 0).

    Raises:
        ValueError: An intent is named ``none``, or there are no intents.
    """

    def __init__(
        self,
        model: Model,
        intents: Iterable[Intent],
        *,
        name: str = "llm",
        examples_per_intent: int = 3,
        mode: Literal["json_schema", "tool"] = "json_schema",
        top_logprobs: int = 5,
        instructions: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        listed = list(intents)
        if not listed:
            raise ValueError("an LLM classifier needs at least one intent")
        self.labels = tuple(i.name for i in listed)
        if NONE in self.labels:
            raise ValueError(f"no intent may be named {NONE!r}: it is the 'no intent' answer")
        if mode not in ("json_schema", "tool"):
            raise ValueError(f"mode must be 'json_schema' or 'tool', not {mode!r}")
        self.name = name
        self.model = model
        self.mode = mode
        choices = [*self.labels, NONE]
        parameters = {
            "type": "object",
            "properties": {
                "intent": {
                    "type": "string",
                    "enum": choices,
                    "description": "The intent of the message, or none.",
                }
            },
            "required": ["intent"],
            "additionalProperties": False,
        }
        self._system = SystemMessage(
            content=_prompt(listed, examples_per_intent, instructions, mode)
        )
        request_settings: dict[str, Any] = {"temperature": 0}
        if mode == "json_schema" and top_logprobs > 0:
            request_settings.update(logprobs=True, top_logprobs=top_logprobs)
        request_settings.update(settings or {})
        self._settings = request_settings
        self._output = OutputSchema("intent_choice", parameters, strict=True)
        self._tool = Tool.from_json_schema(
            "choose_intent", "Report the intent of the message.", parameters, _never_called
        )

    async def classify(self, text: str) -> Prediction:
        """Ask the model for the intent of ``text``.

        Raises:
            ClassificationError: The answer is not one of the intent names or ``none``.
            ModelError: The model call failed.
        """
        messages = (self._system, UserMessage(content=text))
        if self.mode == "tool":
            request = ModelRequest(
                messages=messages,
                tools=(self._tool,),
                tool_choice=ForcedTool(self._tool.api_name),
                settings=self._settings,
            )
        else:
            request = ModelRequest(messages=messages, output=self._output, settings=self._settings)
        response = await self.model.complete(request)
        message = response.message
        if self.mode == "tool":
            raw = message.tool_calls[0].arguments if message.tool_calls else (message.content or "")
        else:
            raw = message.content or message.refusal or ""
        label = self._label(raw)
        return self._prediction(label, raw, response.logprobs)

    def _label(self, raw: str) -> str:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        value = answer.get("intent") if isinstance(answer, dict) else None
        if not isinstance(value, str):
            raise ClassificationError(
                self.name, raw, f"the answer is not {{'intent': name}}: {raw!r}"
            )
        if value != NONE and value not in self.labels:
            raise ClassificationError(
                self.name, raw, f"the answer names no known intent: {value!r}"
            )
        return value

    def _prediction(
        self, label: str, raw: str, logprobs: tuple[TokenLogprob, ...] | None
    ) -> Prediction:
        found = _value_tokens(raw, logprobs) if logprobs else None
        if found is None:
            chosen = None if label == NONE else label
            return Prediction(chosen, 1.0, 1.0, ((label, 1.0),) if chosen else ())
        tokens, prefix = found
        confidence = math.exp(sum(t.logprob for t in tokens))
        scores: dict[str, float] = {label: confidence}
        first = tokens[0]
        for alternative, logprob in first.top_logprobs:
            if alternative == first.token or not alternative.startswith(prefix):
                continue
            start = alternative[len(prefix) :].split('"', 1)[0]
            if not start:
                continue
            for other in (*self.labels, NONE):
                if other != label and other.startswith(start):
                    scores[other] = max(scores.get(other, 0.0), math.exp(logprob))
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        runner_up = max((s for n, s in scores.items() if n != label), default=0.0)
        in_scope = tuple((n, s) for n, s in ranked if n != NONE)
        return Prediction(
            None if label == NONE else label, confidence, confidence - runner_up, in_scope
        )


def _value_tokens(
    raw: str, logprobs: tuple[TokenLogprob, ...]
) -> tuple[list[TokenLogprob], str] | None:
    """The tokens that spell the intent value, and the text of the first before the value."""
    if "".join(t.token for t in logprobs) != raw:
        return None  # the tokens do not spell the answer: their positions cannot be trusted
    match = _VALUE.search(raw)
    if match is None:
        return None
    start = match.end()
    end = raw.find('"', start)
    if end <= start:
        return None
    tokens: list[TokenLogprob] = []
    prefix = ""
    offset = 0
    for token in logprobs:
        token_start, offset = offset, offset + len(token.token)
        if offset <= start or token_start >= end:
            continue
        if not tokens:
            prefix = raw[token_start:start]
        tokens.append(token)
    return (tokens, prefix) if tokens else None


def _prompt(intents: list[Intent], examples: int, instructions: str | None, mode: str) -> str:
    lines = [instructions.strip(), ""] if instructions else []
    lines += [
        "Classify the user's message into exactly one of these intents, or 'none' if it fits "
        "none of them.",
        "",
    ]
    for intent in intents:
        head = f"- {intent.name}"
        if intent.description:
            head += f": {intent.description}"
        lines.append(head)
        for example in list(intent.examples)[:examples]:
            lines.append(f"    e.g. {example!r}")
    how = (
        "Call the choose_intent tool with the intent."
        if mode == "tool"
        else 'Answer with a JSON object {"intent": <name>}.'
    )
    lines += ["", how]
    return "\n".join(lines)


def _never_called(arguments: dict[str, Any]) -> None:  # pragma: no cover - never executed
    raise AssertionError("the choose_intent tool is read, never run")
