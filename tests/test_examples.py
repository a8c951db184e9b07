"""Every example runs end to end, offline and without an API key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_without_an_api_key(script: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def run_example(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    script = EXAMPLES[0].parent / name
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart_runs_the_agent_loop_against_the_fake_server() -> None:
    out = run_example("quickstart.py")
    assert "using the loopback fake server" in out
    assert 'model asked:  get_weather({"city":"Paris","unit":null})' in out
    assert 'tool success: {"city":"Paris","temp":18.0,"unit":"c"}' in out
    # The answer is built from what the tools returned, streamed through the real client.
    assert "It is 18°C in Paris. Under 30 we have: Travel umbrella (19)." in out
    assert "2 turns, 2 requests" in out


def test_executor_by_hand_shows_strict_schema_and_every_outcome() -> None:
    out = run_example("executor_by_hand.py")
    assert '"required": [' in out
    for kind in ("success", "invalid_arguments", "unknown_tool"):
        assert kind in out
