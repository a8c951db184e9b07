"""The process the crash test kills: ``python -m tests.durable.crash_child MODE STORE ...``.

MODE ``run`` starts the app's refund run and, at the model call that follows the tool batch
(its checkpoint saved), writes MARKER and hangs until killed. MODE ``resume`` resumes the run
and prints its transcript as JSON. STORE is ``sqlite:PATH`` or a PostgreSQL DSN.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from intentflow.messages import AssistantMessage
from intentflow.models import ModelRequest
from intentflow.stores import CheckpointStore, PostgresStore, SQLiteStore
from intentflow.testing import Reply, ScriptedModel
from tests.durable.app import Effects, build, script


def open_store(spec: str) -> CheckpointStore:
    if spec.startswith("sqlite:"):
        return SQLiteStore(spec.removeprefix("sqlite:"))
    return PostgresStore(spec)


async def main(mode: str, spec: str, run_id: str, effects_path: str, marker: str) -> None:
    store = open_store(spec)
    if isinstance(store, PostgresStore):
        await store.migrate()
    effects = Effects(Path(effects_path))
    if mode == "run":
        answer = script()

        async def hang_after_tools(request: ModelRequest) -> Reply:
            if sum(isinstance(m, AssistantMessage) for m in request.messages) == 2:
                await anyio.Path(marker).write_text("tools done")
                await anyio.sleep(3600)  # killed here
            return answer(request)

        model: Any = ScriptedModel(hang_after_tools)
        await build(store, effects, model=model).run("I want a refund", run_id=run_id)
        raise SystemExit("the run was not killed")
    result = await build(store, effects).resume(run_id)
    print(json.dumps([m.model_dump(mode="json") for m in result.transcript]))
    await store.aclose()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:6])
