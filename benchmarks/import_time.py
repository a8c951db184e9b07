"""How long ``import intentflow`` takes, what that time is spent on, and what it pulls in.

**Wall time.** Each *run* is a fresh interpreter, ``sys.executable -c STATEMENT``, timed from
the parent with ``time.perf_counter_ns`` around ``subprocess.run`` (so it includes starting
Python and exiting). The statements (`TARGETS`): ``pass`` (the interpreter's own start-up, the
baseline), each of intentflow's five dependencies alone (``import openai``, ``pydantic``,
``networkx``, ``structlog``, ``anyio``), all five in one process, ``import intentflow``, and the
README quickstart's imports (``from intentflow import AgentGraph, Intent, Router, Runner,
Toolset`` and the ``intentflow.agents``, ``intentflow.router`` and ``intentflow.testing``
imports after it). After one warm-up round (which also writes any missing ``.pyc`` files),
``--runs`` rounds run every statement once, in alternating order (reversed every other round)
so machine noise hits all alike. Reported: median, p10 and p90 in ms, and each statement's
cost over the baseline as the median of the per-round paired differences.
``intentflow - dependencies`` (both paired per round) is what importing intentflow costs on
top of loading its five dependencies.

**Bytecode.** The children run with ``PYTHONPYCACHEPREFIX`` set to a temporary directory and
without ``PYTHONDONTWRITEBYTECODE``, so the warm-up compiles every module once into that
directory and all timed runs load compiled bytecode, as an installed wheel does. (A checkout
without ``__pycache__`` under ``PYTHONDONTWRITEBYTECODE=1`` recompiles intentflow's ~50 modules
on every start, which added roughly 250 ms when this script was written; that is not what users
pay.) Nothing is written into the checkout or site-packages.

**Attribution.** ``python -X importtime -c "import intentflow"`` is run ``--profiles`` times;
for every module the median over those runs of its *self* time is taken (the time in its own
body, not in the modules it imports), and the self times are summed per top-level package:
``intentflow`` itself, each third-party distribution (``openai``, ``pydantic_core`` ...), and
the standard library as one group. Also listed: the 10 modules with the largest *cumulative*
time (a module's own body plus everything it imported first), which shows which intentflow
module triggers the expensive imports. ``-X importtime`` slows imports down a little, so its
total is a bit above the wall-clock difference; the shares are what it is for. Modules
imported during interpreter start-up (``encodings``, ``site`` ...) do not appear.

**Heavy optional modules.** One more child imports intentflow (and then the quickstart's
imports) and reports which of `HEAVY` are in ``sys.modules``: optional dependencies
(numpy, psycopg, OpenTelemetry, matplotlib, Starlette/uvicorn, sentence-transformers, torch,
transformers ...) that a plain ``import intentflow`` must not load. Each is listed with
whether it is installed here at all (a module that is not installed cannot show up, so only
installed ones make the check meaningful).

Run it from the repository root (1.5 to 2 minutes with the defaults on a 2-core machine,
more when other processes compete for it)::

    python benchmarks/import_time.py                  # JSON, then Markdown tables, on stdout
    python benchmarks/import_time.py --json out.json  # the JSON also to a file
    python benchmarks/import_time.py --quick          # a smoke run (seconds)
    python benchmarks/import_time.py --runs 50 --profiles 9
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions, paired_differences, summarize

REPO_ROOT = Path(__file__).resolve().parent.parent

QUICKSTART = (
    "from intentflow import AgentGraph, Intent, Router, Runner, Toolset; "
    "from intentflow.agents import Agent, forced, sequence; "
    "from intentflow.router import LexicalClassifier; "
    "from intentflow.testing import Reply, ScriptedModel"
)
"""The imports of the README's quickstart."""

DEPENDENCIES = ("openai", "pydantic", "networkx", "structlog", "anyio")

TARGETS: dict[str, str] = {
    "baseline (pass)": "pass",
    **{f"import {d}": f"import {d}" for d in DEPENDENCIES},
    "dependencies (all five)": "import " + ", ".join(DEPENDENCIES),
    "import intentflow": "import intentflow",
    "quickstart imports": QUICKSTART,
}
BASELINE = "baseline (pass)"

HEAVY = (
    "numpy",
    "psycopg",
    "psycopg_pool",
    "opentelemetry",
    "matplotlib",
    "starlette",
    "uvicorn",
    "jsonschema",
    "trio",
    "hypothesis",
    "pytest",
    "sentence_transformers",
    "torch",
    "transformers",
    "tokenizers",
    "onnxruntime",
    "scipy",
    "sklearn",
    "pandas",
    "tiktoken",
    "quicktok",
)
"""Modules ``import intentflow`` should not load (optional extras, dev tools, ML stacks)."""


def child_env(pycache: str) -> dict[str, str]:
    """The children's environment: bytecode written to and read from ``pycache`` only."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


DROPPED_ENV = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONVERBOSE",
    "PYTHONDEVMODE",
}


# --------------------------------------------------------------------------- wall time


def run_once(statement: str, env: dict[str, str]) -> float:
    """Milliseconds for one fresh interpreter to run ``statement`` (and exit)."""
    start = time.perf_counter_ns()
    subprocess.run(
        [sys.executable, "-c", statement],
        check=True,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return (time.perf_counter_ns() - start) / 1e6


def wall_times(runs: int, env: dict[str, str]) -> dict[str, Any]:
    order = list(TARGETS)
    for statement in TARGETS.values():  # warm-up: .pyc files, the OS's file cache
        run_once(statement, env)
    times: dict[str, list[float]] = {name: [] for name in order}
    for i in range(runs):
        for name in order if i % 2 == 0 else reversed(order):
            times[name].append(run_once(TARGETS[name], env))
    out: dict[str, Any] = {}
    for name in order:
        entry: dict[str, Any] = {"statement": TARGETS[name], **summarize(times[name]).to_dict(1)}
        if name != BASELINE:
            entry["minus_baseline_ms"] = paired_differences(times[name], times[BASELINE]).to_dict(1)
        out[name] = entry
    out["intentflow_minus_dependencies_ms"] = paired_differences(
        times["import intentflow"], times["dependencies (all five)"]
    ).to_dict(1)
    return out


# --------------------------------------------------------------------------- attribution


def parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """``{module: (self µs, cumulative µs)}`` from ``-X importtime`` output."""
    out: dict[str, tuple[int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        out[name.strip()] = (int(self_us), int(cumulative_us))
    return out


def group_of(module: str) -> str:
    top = module.split(".", 1)[0]
    if top == "intentflow":
        return "intentflow"
    if top in sys.stdlib_module_names or top.startswith("_"):
        # _io, _ssl ...: built-in and extension modules of the standard library.
        return "(standard library)"
    return top


def attribution(profiles: int, env: dict[str, str]) -> dict[str, Any]:
    samples: list[dict[str, tuple[int, int]]] = []
    for _ in range(profiles):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import intentflow"],
            check=True,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        samples.append(parse_importtime(done.stderr))
    modules = set().union(*samples)
    self_ms = {
        m: statistics.median(s[m][0] if m in s else 0 for s in samples) / 1000 for m in modules
    }
    cumulative_ms = {
        m: statistics.median(s[m][1] if m in s else 0 for s in samples) / 1000 for m in modules
    }
    groups: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for m, ms in self_ms.items():
        groups[group_of(m)] += ms
        counts[group_of(m)] += 1
    total = sum(groups.values())
    by_group = [
        {
            "group": g,
            "self_ms": round(ms, 1),
            "share": round(ms / total, 4),
            "modules": counts[g],
        }
        for g, ms in sorted(groups.items(), key=lambda kv: -kv[1])
    ]
    top = sorted(cumulative_ms.items(), key=lambda kv: -kv[1])[:10]
    own = sorted(
        ((m, ms) for m, ms in self_ms.items() if group_of(m) == "intentflow"),
        key=lambda kv: -kv[1],
    )[:8]
    return {
        "profiles": profiles,
        "modules_imported": len(modules),
        "total_ms": round(total, 1),
        "intentflow_self_ms": round(groups["intentflow"], 1),
        "intentflow_share": round(groups["intentflow"] / total, 4),
        "by_group": by_group,
        "top_cumulative": [
            {"module": m, "cumulative_ms": round(ms, 1), "self_ms": round(self_ms[m], 1)}
            for m, ms in top
        ],
        "intentflow_top_self": [{"module": m, "self_ms": round(ms, 1)} for m, ms in own],
    }


# --------------------------------------------------------------------------- heavy modules

CHECK = """
import json, sys
before = set(sys.modules)
{statement}
print(json.dumps({{
    "loaded": sorted(h for h in {heavy!r} if h in sys.modules),
    "modules_added": len(set(sys.modules) - before),
    "intentflow_modules": sum(m.split(".")[0] == "intentflow" for m in sys.modules),
}}))
"""


def heavy_modules(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "installed": {h: importlib.util.find_spec(h) is not None for h in HEAVY},
    }
    for name in ("import intentflow", "quickstart imports"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHECK.format(statement=TARGETS[name].replace("; ", "\n"), heavy=HEAVY),
            ],
            check=True,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        out[name] = json.loads(done.stdout)
    return out


# --------------------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    """The Markdown tables for a result of this benchmark."""
    w = result["wall"]
    wall = markdown_table(
        ["statement (fresh interpreter)", "median ms", "p10", "p90", "over baseline (ms)"],
        [
            [
                name,
                e["median"],
                e["p10"],
                e["p90"],
                e["minus_baseline_ms"]["median"] if "minus_baseline_ms" in e else "-",
            ]
            for name, e in w.items()
            if name != "intentflow_minus_dependencies_ms"
        ],
        "lrrrr",
    )
    d = w["intentflow_minus_dependencies_ms"]
    extra = (
        f"`import intentflow` minus its five dependencies imported together: median "
        f"{d['median']} ms (p10 {d['p10']}, p90 {d['p90']}; {d['n']} paired runs)."
    )
    a = result["attribution"]
    groups = markdown_table(
        ["package (self time, -X importtime)", "ms", "share", "modules"],
        [[g["group"], g["self_ms"], f"{g['share']:.1%}", g["modules"]] for g in a["by_group"][:12]],
        "lrrr",
    )
    top = markdown_table(
        ["module (top 10 cumulative)", "cumulative ms", "self ms"],
        [[t["module"], t["cumulative_ms"], t["self_ms"]] for t in a["top_cumulative"]],
        "lrr",
    )
    own = markdown_table(
        ["intentflow module (top self time)", "self ms"],
        [[t["module"], t["self_ms"]] for t in a["intentflow_top_self"]],
        "lr",
    )
    h = result["heavy"]
    heavy = markdown_table(
        ["optional module", "installed here", "loaded by import intentflow", "by quickstart"],
        [
            [
                name,
                "yes" if h["installed"][name] else "no",
                "YES" if name in h["import intentflow"]["loaded"] else "no",
                "YES" if name in h["quickstart imports"]["loaded"] else "no",
            ]
            for name in HEAVY
        ],
        "llll",
    )
    i = h["import intentflow"]
    facts = (
        f"-X importtime: {a['modules_imported']} modules, {a['total_ms']} ms in total "
        f"(median of {a['profiles']} profiles), of which intentflow's own modules "
        f"{a['intentflow_self_ms']} ms ({a['intentflow_share']:.1%}). "
        f"`import intentflow` adds {i['modules_added']} modules to sys.modules, "
        f"{i['intentflow_modules']} of them intentflow's."
    )
    loaded = h["import intentflow"]["loaded"]
    verdict = (
        f"Optional modules loaded by `import intentflow`: {', '.join(loaded)} (should be none)."
        if loaded
        else "No optional module is loaded by `import intentflow`."
    )
    return "\n\n".join([wall, extra, groups, top, own, facts, heavy, verdict])


def headline(result: dict[str, Any]) -> str:
    """One line: the median import time, the dependencies' share, optional modules loaded."""
    w, a = result["wall"], result["attribution"]
    loaded = result["heavy"]["import intentflow"]["loaded"]
    return (
        f"import intentflow: {w['import intentflow']['median']:.0f} ms median "
        f"(interpreter alone {w[BASELINE]['median']:.0f} ms, its five dependencies together "
        f"{w['dependencies (all five)']['median']:.0f} ms); intentflow's own modules "
        f"{a['intentflow_share']:.0%} of -X importtime; optional modules loaded: "
        + (", ".join(loaded) if loaded else "none")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25, help="rounds of every statement")
    parser.add_argument("--profiles", type=int, default=5, help="-X importtime runs")
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.profiles = 3, 1
    with tempfile.TemporaryDirectory(prefix="import-time-pycache-") as pycache:
        env = child_env(pycache)
        result: dict[str, Any] = {
            "benchmark": "import_time",
            "machine": machine_info(),
            "packages": package_versions(["intentflow", *DEPENDENCIES]),
            "method": {
                "runs": args.runs,
                "profiles": args.profiles,
                "timing": "wall time of `sys.executable -c STATEMENT` from the parent, ms",
                "order": "every statement once per round, order reversed every other round",
                "bytecode": "compiled once by the warm-up into a private PYTHONPYCACHEPREFIX",
            },
            "wall": wall_times(args.runs, env),
            "attribution": attribution(args.profiles, env),
            "heavy": heavy_modules(env),
        }
    result["headline"] = headline(result)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
