"""Labelled data for routers: `Example`, and loading examples from JSON lines or CSV files.

An example is a message and the intent it should go to, or ``None`` when it is out of scope
(the router should abstain: route to its fallback, or to no intent). Two file formats:

* JSON lines (``.jsonl``, ``.ndjson`` or ``.json``): one object per line,
  ``{"text": "...", "intent": "refund"}``, with ``"intent": null`` for out-of-scope messages.
  Other fields (an id, a source) are ignored; blank lines are skipped.
* CSV (``.csv``): a header naming the columns ``text`` and ``label`` (any order, any case;
  other columns are ignored), then one row per example. CSV cannot say ``null``, so an empty
  label or one of `OUT_OF_SCOPE_LABELS` (``oos``, ``out_of_scope``, ``none``, ``null``, in
  any case) marks an out-of-scope message. Labels are stripped of surrounding spaces.

Files are UTF-8 (a leading byte-order mark, as spreadsheet exports write, is ignored). A file
that cannot be read as examples raises a `ValueError` naming the file and the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OUT_OF_SCOPE_LABELS",
    "Example",
    "check_training_data",
    "examples_from",
    "load_examples",
]

OUT_OF_SCOPE_LABELS = frozenset({"", "oos", "out_of_scope", "none", "null"})
"""CSV labels (compared case-insensitively, after stripping) that mark an out-of-scope message."""

_JSON_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message.

    Examples:
        >>> Example("where is my parcel?", "order_status")
        Example(text='where is my parcel?', intent='order_status')
        >>> Example("what is the capital of Peru?", None).intent is None
        True

    Attributes:
        text: The user's message.
        intent: The intent it should be routed to; ``None`` when it is out of scope.
    """

    text: str
    intent: str | None


def examples_from(texts: Iterable[str], labels: Iterable[str | None]) -> list[Example]:
    """Examples from parallel sequences of texts and labels (``None``: out of scope).

    Labels are taken as they are: unlike CSV files, ``"oos"`` here is an intent's name.

    Examples:
        >>> examples_from(["refund me", "hello"], ["refund", None])
        [Example(text='refund me', intent='refund'), Example(text='hello', intent=None)]

    Raises:
        ValueError: When there are not as many labels as texts.
        TypeError: When a text is not a string, or a label is neither a string nor ``None``.
    """
    text_list, label_list = list(texts), list(labels)
    if len(text_list) != len(label_list):
        raise ValueError(f"{len(text_list)} texts but {len(label_list)} labels")
    for i, (text, label) in enumerate(zip(text_list, label_list, strict=True)):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a string")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"label {i} is a {type(label).__name__}, not a string or None")
    return [Example(t, lab) for t, lab in zip(text_list, label_list, strict=True)]


def load_examples(path: str | os.PathLike[str]) -> list[Example]:
    """Load labelled examples from a JSON lines or CSV file, chosen by the file's suffix.

    See the module's documentation for both formats and what marks an out-of-scope message.

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "eval.csv").write_text("text,label\\nrefund me,refund\\nhi,oos\\n")
        >>> load_examples(folder / "eval.csv")
        [Example(text='refund me', intent='refund'), Example(text='hi', intent=None)]

    Args:
        path: A ``.jsonl``, ``.ndjson`` or ``.json`` (JSON lines) file, or a ``.csv`` file.

    Returns:
        The examples, in file order.

    Raises:
        ValueError: For an unknown suffix, a file that is not UTF-8, a malformed line, a
            missing field, a text that is not a string or is blank, or a file with no examples;
            the message starts with ``path:line:``.
        OSError: When the file cannot be read.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in _JSON_SUFFIXES and suffix != ".csv":
        raise ValueError(
            f"{file}: cannot tell the format from the suffix {file.suffix!r}; "
            "use .jsonl (or .ndjson, .json) for JSON lines, or .csv"
        )
    text = _read_utf8(file)
    examples = _from_json_lines(file, text) if suffix in _JSON_SUFFIXES else _from_csv(file, text)
    if not examples:
        raise ValueError(f"{file}: the file has no examples")
    return examples


def _read_utf8(file: Path) -> str:
    data = file.read_bytes()
    # Spreadsheet programs start their UTF-8 exports with a byte-order mark; it is not text.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{file}:{line}: not UTF-8 ({exc.reason})") from None


def _from_json_lines(file: Path, text: str) -> list[Example]:
    examples: list[Example] = []
    # Split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON allows
    # raw inside strings, and would cut such a line in two.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{file}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{where}: not valid JSON ({exc.msg}, column {exc.colno}); "
                'expected one object per line, like {"text": "...", "intent": "..."}'
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f'{where}: expected a JSON object with "text" and "intent", '
                f"found {_json_type(record)}"
            )
        for field in ("text", "intent"):
            if field not in record:
                hint = " (use null for an out-of-scope message)" if field == "intent" else ""
                if field == "intent" and "label" in record:
                    hint = ' (this line has "label": rename it "intent")'
                raise ValueError(f'{where}: missing the field "{field}"{hint}')
        message, intent = record["text"], record["intent"]
        if not isinstance(message, str):
            raise ValueError(f'{where}: "text" must be a string, found {_json_type(message)}')
        if not message.strip():
            raise ValueError(f'{where}: "text" is blank')
        if intent is not None and not isinstance(intent, str):
            raise ValueError(
                f'{where}: "intent" must be a string or null, found {_json_type(intent)}'
            )
        if intent is not None and not intent.strip():
            raise ValueError(f'{where}: "intent" is empty (use null for an out-of-scope message)')
        examples.append(Example(message, intent))
    return examples


def _from_csv(file: Path, text: str) -> list[Example]:
    # strict: a stray quote is an error to report, not something to guess around.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    examples: list[Example] = []
    header: list[str] | None = None
    text_at = label_at = 0
    last_line = 0
    while True:
        # A quoted field may span lines: a record starts on the line after the previous one ended.
        start = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"{file}:{reader.line_num}: malformed CSV ({exc})") from None
        last_line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = f"{file}:{start}"
        if header is None:
            header = [name.strip().lower() for name in row]
            if "text" not in header or "label" not in header:
                raise ValueError(
                    f"{where}: the header must name the columns text and label, found {row}"
                )
            text_at, label_at = header.index("text"), header.index("label")
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{where}: expected {len(header)} fields ({','.join(header)}), found {len(row)}"
            )
        message, label = row[text_at], row[label_at].strip()
        if not message.strip():
            raise ValueError(f"{where}: the text is blank")
        examples.append(Example(message, None if label.lower() in OUT_OF_SCOPE_LABELS else label))
    return examples


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def check_training_data(texts: Sequence[str], labels: Sequence[str | None]) -> list[str]:
    """Check a classifier's training data; return its intents, sorted.

    Raises:
        ValueError: when ``texts`` and ``labels`` differ in length, there are no examples, a
            text is not a string, or fewer than two intents are labelled (out-of-scope
            examples, labelled ``None``, do not count as an intent).
    """
    if isinstance(texts, str) or isinstance(labels, str):
        raise ValueError("texts and labels must be sequences, not a single string")
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("cannot fit on an empty training set")
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must be strings, got {type(text).__name__}")
    intents = sorted({label for label in labels if label is not None})
    if len(intents) < 2:
        raise ValueError(f"need at least two intents to tell apart, got {intents}")
    return intents
