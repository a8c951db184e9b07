"""Logging: intentflow's structlog events, a default configuration, and secret redaction.

intentflow logs with structlog and never configures it on import (a library must not). Every
event is bound with what identifies it: ``run_id`` on everything a run does, ``intent`` once
the router decided, ``agent`` (the graph node) inside a node's loop, ``node`` on the graph's
own events, and ``turn`` on per-turn events. The main events:

========================  =====  =============================================================
event                     level  when
========================  =====  =============================================================
``graph.run.started``     info   a routed run enters its entry node
``graph.handoff``         info   the model transferred the conversation
``graph.transition``      info   the code moved to another node
``graph.guard``           info   a guard acted (loop note or restriction, refused transfer...)
``graph.run.finished``    info   the run ended (path, stop reason, tokens, seconds)
``graph.run.failed``      warn   the run raised a typed error (the error and the path)
``agent.run.finished``    info   one agent's loop ended
``agent.turn``            debug  one model call and its tool calls
``tool.call``             debug  one tool call: outcome, attempts, duration, arguments
``router.decision``       debug  where a message was routed and why
========================  =====  =============================================================

`configure_logging` sets up what a service usually wants: readable console lines in
development, one JSON object per line in production, and `redact_secrets` on every event.
Tool arguments are logged only as each tool allows (``sensitive=`` on the tool), and the loop
detector never sees sensitive values in clear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["SECRET_KEYS", "configure_logging", "redact_secrets", "redact_text"]

SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "cookie",
        "set-cookie",
    }
)
"""Keys (compared case-insensitively, ``-`` and ``_`` alike) whose values are never logged."""

_SECRET_VALUE = re.compile(
    r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's value
    r"|\bsk-[A-Za-z0-9_-]{8,}"  # an OpenAI-style API key
)
_KEYS = frozenset(k.replace("-", "_") for k in SECRET_KEYS)
_REDACTED = "[redacted]"


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: hide secret values anywhere in an event.

    Values under a key of `SECRET_KEYS` (at any depth) are replaced; so are, inside any
    string, bearer/basic credentials and OpenAI-style keys (``sk-...``).

    Examples:
        >>> redact_secrets(None, "info", {"event": "call", "api_key": "sk-abc123456789",
        ...     "headers": {"Authorization": "Bearer abcdefgh12345"},
        ...     "message": "failed with key sk-abcdefgh12345678"})
        {'event': 'call', 'api_key': '[redacted]', 'headers': {'Authorization': '[redacted]'}, 'message': 'failed with key [redacted]'}
    """  # noqa: E501
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact(key, value, 0)
    return event_dict


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with credentials replaced by ``[redacted]``.

    Replaced: every occurrence of a ``known`` secret (an API key the caller holds, at least 8
    characters), then bearer/basic credentials and OpenAI-style keys (``sk-...``).

    Examples:
        >>> redact_text("Incorrect API key provided: abcd1234efgh.", known=["abcd1234efgh"])
        'Incorrect API key provided: [redacted].'
        >>> redact_text("sent Authorization: Bearer sk-abcdefgh12345678")
        'sent Authorization: [redacted]'
    """
    for secret in known:
        # A short "secret" (a placeholder like "test") would blank out ordinary words.
        if secret and len(secret) >= 8:
            text = text.replace(secret, _REDACTED)
    return _SECRET_VALUE.sub(_REDACTED, text) if len(text) >= 8 else text


def _redact(key: object, value: Any, depth: int) -> Any:
    if isinstance(key, str) and key.lower().replace("-", "_") in _KEYS:
        return _REDACTED
    if depth > 8:  # deeper structures are not logged by intentflow; do not recurse forever
        return value
    if isinstance(value, str):
        return _SECRET_VALUE.sub(_REDACTED, value) if len(value) >= 8 else value
    if isinstance(value, Mapping):
        return {k: _redact(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(None, v, depth + 1) for v in value)
    return value


def configure_logging(
    mode: Literal["console", "json"] = "console",
    *,
    level: int | str = "INFO",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for an application that embeds intentflow.

    Args:
        mode: ``"console"`` for people (development), ``"json"`` for log collectors
            (production): one JSON object per line with an ISO-8601 UTC ``timestamp``.
        level: The lowest level logged (``"DEBUG"`` shows every turn and tool call).
        stream: Where to write (default: standard error).

    Examples:
        >>> import io, json, structlog
        >>> before = structlog.get_config()
        >>> out = io.StringIO()
        >>> configure_logging("json", stream=out)
        >>> structlog.get_logger("demo").info("ready", api_key="sk-secret-value-123")
        >>> record = json.loads(out.getvalue())
        >>> record["event"], record["api_key"], record["level"]
        ('ready', '[redacted]', 'info')
        >>> structlog.configure(**before)  # as it was
    """
    if mode not in ("console", "json"):
        raise ValueError(f"mode must be 'console' or 'json', not {mode!r}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if mode == "json"
        else structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if mode == "json":
        processors += [structlog.processors.dict_tracebacks]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
