"""A loopback fake server with SDK clients that are closed on the test's own event loop.

A client left to the garbage collector closes its connections later, in some other test, on
an event loop that is already closed; anyio then fails that unrelated test. Tests that point
clients at the ``server`` fixture get them from `client_for`, and the fixture closes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai

from intentflow.testing import FakeOpenAIServer

_OPEN: list[openai.AsyncOpenAI] = []


def client_for(server: FakeOpenAIServer, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    """An SDK client on ``server``, closed when the ``server`` fixture ends."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=max_retries)
    _OPEN.append(client)
    return client


async def serve() -> AsyncIterator[FakeOpenAIServer]:
    """The body of the ``server`` fixture (see tests/conftest.py)."""
    async with FakeOpenAIServer() as server:
        yield server
        while _OPEN:
            await _OPEN.pop().close()
