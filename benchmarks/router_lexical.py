"""Accuracy, out-of-scope detection, fit time and latency of the router's lexical classifier.

Data: CLINC150 (``train.jsonl`` and ``val.jsonl``, JSON lines ``{"text": ..., "intent": ...}``
with ``intent: null`` for out-of-scope). The classifier is fitted on train (in-scope and
out-of-scope examples); the abstention threshold is chosen on val with
:func:`~intentflow.router.evaluation.fit_threshold` (objective ``accuracy`` and, for context,
``balanced``); everything is reported on val.

Metrics, with a message answered ``label`` when ``confidence >= threshold`` and ``None``
(out-of-scope) otherwise:

* in-scope accuracy: in-scope messages answered with the right intent / in-scope messages
  (abstaining on one counts as an error), the CLINC150 paper's definition;
* OOS recall: out-of-scope messages answered ``None`` / out-of-scope messages;
* OOS precision: out-of-scope messages answered ``None`` / messages answered ``None``;
* accuracy: messages answered right (``None`` is right for out-of-scope) / all messages.

Latency: one ``predict`` call on one string, warm (every val message classified once before),
timed call by call with ``time.perf_counter_ns`` over ``--rounds`` passes through val; p50 and
p99 over all calls, and the median over rounds of each round's p50 with its p10/p90. Measured
with numpy (when installed) and in pure Python (the same model, saved and loaded with
``use_numpy=False``). Fit time is wall time of ``fit``, the median of ``--fit-runs`` fits (each
run listed too: the machine may be shared); the pure-Python fit is measured once unless
``--skip-python-fit``. The saved model: the size of the directory :meth:`LexicalClassifier.save`
writes, and the median wall time of ``LexicalClassifier.load`` over ``--load-runs`` loads, with
numpy and without; the model loaded with numpy is checked to predict exactly as the fitted one.

Run it from the repository root::

    python benchmarks/router_lexical.py                     # JSON, then a Markdown table
    python benchmarks/router_lexical.py --json              # JSON only
    python benchmarks/router_lexical.py --skip-python-fit   # a quicker look
    python benchmarks/router_lexical.py --skip-python-fit --fit-runs 5   # fit time, median of 5
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import machine_info, markdown_table, package_versions, summarize

from intentflow.router import lexical
from intentflow.router.data import load_examples
from intentflow.router.evaluation import fit_threshold
from intentflow.router.lexical import LexicalClassifier, Prediction

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "clinc150"
TARGETS = {"in_scope_accuracy": 0.935, "oos_recall": 0.50, "p50_us": 100.0, "fit_s": 15.0}


def load(path: Path) -> tuple[list[str], list[str | None]]:
    examples = load_examples(path)
    return [e.text for e in examples], [e.intent for e in examples]


def evaluate(
    predictions: list[Prediction], gold: list[str | None], threshold: float
) -> dict[str, float]:
    # The router's abstain rule with its default margin of 0: below the threshold, or behind
    # the runner-up (the internal out-of-scope class), the message is out of scope.
    answered = [
        p.label if p.confidence >= threshold and p.margin >= 0.0 else None for p in predictions
    ]
    in_scope = [(a, g) for a, g in zip(answered, gold, strict=True) if g is not None]
    oos = [a for a, g in zip(answered, gold, strict=True) if g is None]
    abstained = sum(a is None for a in answered)
    return {
        "threshold": round(threshold, 6),
        "in_scope_accuracy": sum(a == g for a, g in in_scope) / len(in_scope),
        "in_scope_accuracy_no_threshold": sum(
            p.label == g for p, g in zip(predictions, gold, strict=True) if g is not None
        )
        / len(in_scope),
        "oos_recall": sum(a is None for a in oos) / len(oos) if oos else float("nan"),
        "oos_precision": sum(a is None for a in oos) / abstained if abstained else float("nan"),
        "accuracy": sum(a == g for a, g in zip(answered, gold, strict=True)) / len(gold),
    }


def latency(clf: LexicalClassifier, texts: list[str], rounds: int) -> dict[str, Any]:
    clf.predict_many(texts)  # warm: caches filled, code paths hot
    calls: list[float] = []
    round_p50: list[float] = []
    predict = clf.predict
    clock = time.perf_counter_ns
    for _ in range(rounds):
        this_round: list[float] = []
        for text in texts:
            t0 = clock()
            predict(text)
            this_round.append((clock() - t0) / 1000)
        round_p50.append(statistics.median(this_round))
        calls.extend(this_round)
    calls.sort()
    return {
        "p50_us": round(calls[len(calls) // 2], 2),
        "p99_us": round(calls[min(len(calls) - 1, int(len(calls) * 0.99))], 2),
        "mean_us": round(statistics.fmean(calls), 2),
        "round_p50_us": summarize(round_p50).to_dict(2),
        "calls": len(calls),
    }


def fit_timed(
    texts: list[str], labels: list[str | None], use_numpy: bool
) -> tuple[LexicalClassifier, float]:
    gc.collect()
    t0 = time.perf_counter()
    clf = LexicalClassifier(use_numpy=use_numpy).fit(texts, labels)
    return clf, time.perf_counter() - t0


def load_timed(directory: Path, use_numpy: bool, runs: int) -> tuple[LexicalClassifier, float]:
    seconds = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        clf = LexicalClassifier.load(directory, use_numpy=use_numpy)
        seconds.append(time.perf_counter() - t0)
    return clf, statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CLINC150 directory")
    parser.add_argument("--rounds", type=int, default=5, help="latency passes through val")
    parser.add_argument("--fit-runs", type=int, default=1, help="numpy fits (median reported)")
    parser.add_argument("--load-runs", type=int, default=5, help="loads (median reported)")
    parser.add_argument("--skip-python-fit", action="store_true", help="no pure-Python fit")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    train_texts, train_labels = load(args.data / "train.jsonl")
    val_texts, val_labels = load(args.data / "val.jsonl")
    has_numpy = lexical._np is not None

    fits: dict[str, dict[str, Any]] = {}
    runs = []
    for _ in range(max(1, args.fit_runs)):
        clf, seconds = fit_timed(train_texts, train_labels, use_numpy=has_numpy)
        runs.append(round(seconds, 2))
    fits["numpy" if has_numpy else "python"] = {
        "fit_s": statistics.median(runs),
        "fit_runs_s": runs,
        "model": clf,
    }
    if has_numpy and not args.skip_python_fit:
        py_clf, seconds = fit_timed(train_texts, train_labels, use_numpy=False)
        fits["python"] = {
            "fit_s": round(seconds, 2),
            "fit_runs_s": [round(seconds, 2)],
            "model": py_clf,
        }

    # The saved model: size, load time, and predictions identical to the fitted model's.
    scorers: dict[str, LexicalClassifier] = {}
    load_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="router_lexical_") as tmp:
        folder = Path(tmp)
        clf.save(folder)
        sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
        manifest = json.loads((folder / "lexical.json").read_text(encoding="utf-8"))
        for name, flag in ([("numpy", True)] if has_numpy else []) + [("python", False)]:
            scorers[name], seconds = load_timed(folder, flag, args.load_runs)
            load_s[name] = round(seconds, 3)
    if has_numpy:  # the loaded model predicts exactly as the fitted one
        assert scorers["numpy"].predict_many(val_texts) == clf.predict_many(val_texts)

    results: dict[str, Any] = {
        "data": {
            "train": len(train_texts),
            "train_oos": sum(label is None for label in train_labels),
            "val": len(val_texts),
            "val_oos": sum(label is None for label in val_labels),
            "intents": len(clf.labels),
        },
        "model": {
            "params": manifest["params"],
            "features": manifest["arrays"]["features"],
            "weights": manifest["arrays"]["weights"],
            "epochs_run": clf.epochs_run,
            "saved_bytes": sizes,
            "saved_mb": round(sum(sizes.values()) / 1e6, 2),
            "load_s": load_s,
        },
        "fits": {},
        "latency": {},
        "targets": TARGETS,
        "machine": machine_info(),
        "packages": package_versions(["numpy"]),
    }
    for name, fit in fits.items():
        model: LexicalClassifier = fit["model"]
        predictions = model.predict_many(val_texts)
        results["fits"][name] = {
            "fit_s": fit["fit_s"],
            "fit_runs_s": fit["fit_runs_s"],
            "epochs_run": model.epochs_run,
            "accuracy_objective": evaluate(
                predictions,
                val_labels,
                fit_threshold(val_labels, predictions, objective="accuracy").threshold,
            ),
            "balanced_objective": evaluate(
                predictions,
                val_labels,
                fit_threshold(val_labels, predictions, objective="balanced").threshold,
            ),
        }
    # Latency: the same (first) model, loaded with numpy and without.
    for name, scorer in scorers.items():
        results["latency"][name] = latency(scorer, val_texts, args.rounds)

    print(json.dumps(results, indent=2))
    if not args.json:
        print()
        rows = []
        for name, fit in results["fits"].items():
            for objective in ("accuracy_objective", "balanced_objective"):
                m = fit[objective]
                lat = results["latency"].get(name, {})
                rows.append(
                    [
                        name,
                        objective.split("_")[0],
                        f"{m['threshold']:.3f}",
                        f"{100 * m['in_scope_accuracy']:.2f}%",
                        f"{100 * m['in_scope_accuracy_no_threshold']:.2f}%",
                        f"{100 * m['oos_recall']:.1f}%",
                        f"{100 * m['oos_precision']:.1f}%",
                        f"{100 * m['accuracy']:.2f}%",
                        f"{fit['fit_s']:.1f}",
                        f"{lat.get('p50_us', float('nan')):.0f}",
                        f"{lat.get('p99_us', float('nan')):.0f}",
                        f"{results['model']['saved_mb']:.1f}",
                        f"{1000 * results['model']['load_s'].get(name, float('nan')):.0f}",
                    ]
                )
        print(
            markdown_table(
                [
                    "path",
                    "threshold objective",
                    "threshold",
                    "in-scope acc.",
                    "in-scope acc. (no threshold)",
                    "OOS recall",
                    "OOS precision",
                    "accuracy",
                    "fit s",
                    "p50 µs",
                    "p99 µs",
                    "saved MB",
                    "load ms",
                ],
                rows,
                align="llrrrrrrrrrrr",
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
