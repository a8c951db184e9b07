"""What the SQLite users of intentflow (the embedding cache, the checkpoint store) share."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

OPEN_TIMEOUT = 30.0  # seconds: as long as the connections' own busy timeout


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (worth a retry)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def retry_busy(action: Callable[[], T], timeout: float | None = None) -> T:
    """Run ``action`` (in a worker thread), again while SQLite reports a lock conflict.

    The connection's busy timeout does not cover every conflict: of two connections creating
    one new database at once, SQLite answers one's switch to write-ahead logging with
    "database is locked" at once. The last conflict is raised after ``timeout`` seconds.
    """
    deadline = time.monotonic() + (OPEN_TIMEOUT if timeout is None else timeout)
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
