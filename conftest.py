"""Repository-wide pytest set-up (applies to tests/ and to the doctests in intentflow/)."""

from __future__ import annotations

import sys

import structlog


def pytest_configure() -> None:
    # Log events go to stderr in tests, so doctests (which compare stdout) are not disturbed
    # and pytest still shows the events of a failing test.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
