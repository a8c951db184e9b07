"""Serve the support desk over HTTP with uvicorn:

    python -m examples.service [--host 127.0.0.1] [--port 8000] [--log-level info]

Configuration comes from the environment (see `examples.service.app.Settings`):
``INTENTFLOW_SERVICE_DB`` (the SQLite file), ``INTENTFLOW_SERVICE_DSN`` (PostgreSQL instead),
``INTENTFLOW_SERVICE_MODEL=openai`` with ``OPENAI_API_KEY`` (else the offline stand-in),
``INTENTFLOW_SERVICE_APPROVAL_OVER``, ``INTENTFLOW_SERVICE_PAYMENT_LATENCY``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `examples.service` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import structlog
import uvicorn

from examples.service.app import Settings, create_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        parser.exit(2, f"examples.service: {exc}\n")
    level = getattr(logging, args.log_level.upper())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
