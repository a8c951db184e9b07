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


def test_quickstart_shows_strict_schema_and_every_outcome() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    script = EXAMPLES[0].parent / "quickstart.py"
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    assert '"required": [' in out
    for kind in ("success", "invalid_arguments", "unknown_tool"):
        assert kind in out
