"""Every async test runs on both anyio backends: asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from intentflow.testing import FakeOpenAIServer
from tests.fakes import serve


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    """A fake OpenAI server; clients from `tests.fakes.client_for` are closed with it."""
    async for running in serve():
        yield running
