"""Models: the protocol the agent loop talks to, and the OpenAI Chat Completions adapter.

* `Model`: ``complete(request)`` and ``stream(request)`` over provider-neutral
  `ModelRequest` / `ModelResponse`;
* `OpenAIChatModel`: any OpenAI-compatible endpoint through the official ``openai`` SDK;
* `StreamAccumulator`: streamed tool-call deltas into complete calls, tolerant of the
  deviations of compatible providers.
"""

from intentflow.models.base import (
    FinishReason,
    ForcedTool,
    Model,
    ModelRequest,
    ModelResponse,
    OutputSchema,
    RefusalDelta,
    ResponseCompleted,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from intentflow.models.openai_chat import Narrowing, OpenAIChatModel
from intentflow.models.stream import StreamAccumulator, complete_tool_calls

__all__ = [
    "FinishReason",
    "ForcedTool",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Narrowing",
    "OpenAIChatModel",
    "OutputSchema",
    "RefusalDelta",
    "ResponseCompleted",
    "StreamAccumulator",
    "StreamEvent",
    "TextDelta",
    "TokenLogprob",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceMode",
    "complete_tool_calls",
]
