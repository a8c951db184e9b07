"""Structured output: the schema a final answer must follow, and its validation.

The output type is a Pydantic model. Its schema is compiled by the same strict compiler as tool
arguments (optional fields become required-and-nullable, ``null`` restores the default), and
the answer is validated by the same code, so a failure lists every failing field in the words
the model already gets for bad tool arguments.
"""

from __future__ import annotations

import re
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from intentflow.errors import FieldError, InvalidToolArguments, InvalidToolJSON
from intentflow.models.base import OutputSchema
from intentflow.toolsets.tool import Tool

__all__ = ["OutputMode", "OutputSpec"]

OutputT = TypeVar("OutputT", bound=BaseModel)

OutputMode = Literal["response_format", "tool"]
"""How structured output is asked for: ``response_format`` (a json_schema response format,
for endpoints that support it) or ``tool`` (a final-output tool the model calls, for endpoints
that only do function calling)."""


class OutputSpec(Generic[OutputT]):
    """The output type of an agent, compiled once.

    Examples:
        >>> class Weather(BaseModel):
        ...     city: str
        ...     celsius: float | None = None
        >>> spec = OutputSpec(Weather)
        >>> spec.parse('{"city": "Paris", "celsius": null}')
        Weather(city='Paris', celsius=None)
        >>> spec.schema.schema["required"]
        ['city', 'celsius']
    """

    def __init__(self, output_type: type[OutputT], *, tool_name: str = "final_output") -> None:
        self.output_type = output_type
        name = re.sub(r"[^A-Za-z0-9_-]", "_", output_type.__name__)[:64]

        def final_output(args: BaseModel) -> Any:
            return args

        self.tool = Tool.from_model(
            output_type,
            final_output,
            name=tool_name,
            description=(
                "Give your final answer by calling this tool with it; the run ends with the "
                f"call. {(output_type.__doc__ or '').strip()}"
            ).strip(),
        )
        openai_entry = self.tool.to_openai(strict=True)["function"]
        self.schema = OutputSchema(
            name=name,
            schema=openai_entry["parameters"],
            strict=self.tool.strict,
            description=(output_type.__doc__ or "").strip() or None,
        )

    def parse(self, raw: str | bytes) -> OutputT:
        """Validate a final answer given as JSON text.

        Raises:
            InvalidToolJSON: The text is not a JSON object.
            InvalidToolArguments: It fails validation; ``errors`` lists every failing field.
        """
        return self.output_type.model_validate(self.tool.validate(_strip_fences(raw)))

    def describe_failure(
        self, exc: InvalidToolJSON | InvalidToolArguments
    ) -> tuple[str, tuple[FieldError, ...]]:
        """A correction for the model, and the failing fields."""
        if isinstance(exc, InvalidToolArguments):
            listing = "; ".join(f"{e.location}: {e.message}" for e in exc.errors)
            return (
                f"Your answer does not match the required {self.output_type.__name__} schema: "
                f"{listing}. Answer again with only a JSON object that follows the schema.",
                exc.errors,
            )
        return (
            f"Your answer is not a JSON object ({exc.detail}). Answer again with only a JSON "
            f"object that follows the {self.output_type.__name__} schema.",
            (),
        )


def _strip_fences(raw: str | bytes) -> str | bytes:
    # Models asked for JSON without response_format support often wrap it in a Markdown fence.
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("```") and text.endswith("```"):
            text = text[3:-3]
            first_newline = text.find("\n")
            if first_newline != -1 and not text[:first_newline].strip().startswith("{"):
                text = text[first_newline + 1 :]
        return text
    return raw
