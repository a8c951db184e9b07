"""The crash test: a run killed with SIGKILL between its tool batch and the next model call
resumes in a new process; the tools ran once and the transcript is the uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from intentflow.stores import MemoryStore
from tests.durable.app import Effects, build

ROOT = Path(__file__).resolve().parents[2]


def child(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.durable.crash_child", *args]


def kill_after_tools_then_resume(spec: str, tmp_path: Path) -> list[dict[str, object]]:
    effects, marker = tmp_path / "effects.txt", tmp_path / "marker"
    args = (spec, "run-1", str(effects), str(marker))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(child("run", *args), cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, "the child ended before reaching the model call"
            assert time.monotonic() < deadline, "the child never reached the model call"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert Effects(effects).read() == {"lookup_order": 1, "issue_refund": 1}
    resumed = subprocess.run(
        child("resume", *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert Effects(effects).read() == {"lookup_order": 1, "issue_refund": 1}  # not again
    transcript: list[dict[str, object]] = json.loads(resumed.stdout.strip().splitlines()[-1])
    return transcript


def uninterrupted() -> list[dict[str, object]]:
    async def run() -> list[dict[str, object]]:
        result = await build(MemoryStore(), Effects()).run("I want a refund")
        return [m.model_dump(mode="json") for m in result.transcript]

    return anyio.run(run)


def test_sqlite_run_killed_after_its_tools_resumes_in_a_new_process(tmp_path: Path) -> None:
    transcript = kill_after_tools_then_resume(f"sqlite:{tmp_path / 'runs.sqlite'}", tmp_path)
    assert transcript == uninterrupted()


def test_postgres_run_killed_after_its_tools_resumes_in_a_new_process(
    postgres_dsn: str, tmp_path: Path
) -> None:
    transcript = kill_after_tools_then_resume(postgres_dsn, tmp_path)
    assert transcript == uninterrupted()
