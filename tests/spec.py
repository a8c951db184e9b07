"""Validate JSON against the official OpenAI API specification, when it is at hand.

The spec and its validator live beside the checkout, in ``../shared/openai-spec/``
(``validate_openai.py`` next to ``openapi.json``); set ``INTENTFLOW_OPENAI_SPEC_DIR`` to use
another directory. On a fresh clone without it (or without the ``jsonschema`` and
``referencing`` dev extras), :func:`assert_valid` checks nothing, so behavioural tests still
run, and tests marked :data:`requires_spec` are skipped with :data:`SKIP_REASON`.

Example:
    >>> from tests.spec import assert_valid
    >>> assert_valid("CreateEmbeddingResponse", {"object": "list", "model": "m", "data": [],
    ...                                          "usage": {"prompt_tokens": 0, "total_tokens": 0}})
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["AVAILABLE", "SKIP_REASON", "SPEC_DIR", "assert_valid", "requires_spec", "spec_errors"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = Path(
    os.environ.get("INTENTFLOW_OPENAI_SPEC_DIR", REPO_ROOT.parent / "shared" / "openai-spec")
)
"""Where the spec and its validator are looked for."""


def _load_validator() -> tuple[ModuleType | None, str]:
    script = SPEC_DIR / "validate_openai.py"
    if not script.is_file():
        return (
            None,
            f"the OpenAI spec validator is not at {script} (a fresh clone has no ../shared)",
        )
    missing = [
        name for name in ("jsonschema", "referencing") if importlib.util.find_spec(name) is None
    ]
    if missing:
        return None, f"{' and '.join(missing)} not installed (pip install -e '.[dev]')"
    module_spec = importlib.util.spec_from_file_location("validate_openai", script)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, ""


_validator, SKIP_REASON = _load_validator()

AVAILABLE = _validator is not None
"""Whether validation against the spec is possible here."""

requires_spec = pytest.mark.skipif(not AVAILABLE, reason=SKIP_REASON or "spec available")
"""Mark a test whose point is the spec check itself; it is skipped without the spec."""


def spec_errors(schema_name: str, obj: Any) -> list[str]:
    """The spec's complaints about ``obj`` as a ``schema_name`` (empty when it is valid).

    Skips the calling test when the spec is not available (use it under :data:`requires_spec`).
    """
    if _validator is None:
        pytest.skip(SKIP_REASON)
    errors: list[str] = _validator.validate(schema_name, obj)
    return errors


def assert_valid(schema_name: str, obj: Any) -> None:
    """Fail unless ``obj`` is a valid ``schema_name``; does nothing without the spec.

    Args:
        schema_name: A schema under ``components/schemas``, e.g.
            ``"CreateChatCompletionResponse"`` or ``"CreateChatCompletionStreamResponse"``.
        obj: The decoded JSON document.
    """
    if _validator is None:
        return
    errors = _validator.validate(schema_name, obj)
    assert not errors, f"not a valid {schema_name}:\n  " + "\n  ".join(errors)
