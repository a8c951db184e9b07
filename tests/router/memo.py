"""A tiny trainable, savable classifier for router fitting and persistence tests."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

from intentflow.router import Prediction
from intentflow.router.persist import register_classifier

_WORD = re.compile(r"\w+")


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


class MemoClassifier:
    """Scores each intent by the best word overlap (Jaccard) with its training examples."""

    kind: ClassVar[str] = "memo-test"

    def __init__(self, name: str = "memo") -> None:
        self.name = name
        self.examples: dict[str, list[frozenset[str]]] = {}
        self.fits: list[int] = []  # the number of examples of each fit call

    def fit(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:
        self.fits.append(len(texts))
        self.examples = {}
        for text, label in zip(texts, labels, strict=True):
            if label is not None:
                self.examples.setdefault(label, []).append(_words(text))
        return self

    async def classify(self, text: str) -> Prediction:
        words = _words(text)
        scores = []
        for label, rows in self.examples.items():
            best = max((len(words & r) / len(words | r) for r in rows if words | r), default=0.0)
            scores.append((label, best))
        return Prediction.from_scores(scores)

    def save(self, directory: Path) -> None:
        data = {
            "name": self.name,
            "examples": {k: [sorted(r) for r in v] for k, v in self.examples.items()},
        }
        (directory / "memo.json").write_text(json.dumps(data))

    @classmethod
    def load(cls, directory: Path) -> Self:
        data = json.loads((directory / "memo.json").read_text())
        self = cls(data["name"])
        self.examples = {k: [frozenset(r) for r in v] for k, v in data["examples"].items()}
        return self


class AsyncMemoClassifier(MemoClassifier):
    """The same, with an async ``fit`` (as an embedding classifier has)."""

    kind: ClassVar[str] = "memo-async-test"

    async def fit(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:  # type: ignore[override]
        return MemoClassifier.fit(self, texts, labels)


register_classifier(MemoClassifier)
register_classifier(AsyncMemoClassifier)
