"""Logging helpers shared by the layers (private)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["debug_enabled"]


def debug_enabled(log: Any) -> bool:
    """Whether ``log`` emits debug events; ``True`` when it cannot tell (then it decides).

    Hot paths build the fields of a debug event only when this says it will be emitted.
    """
    is_enabled_for = getattr(type(log), "is_enabled_for", None)
    return is_enabled_for is None or bool(is_enabled_for(log, logging.DEBUG))
