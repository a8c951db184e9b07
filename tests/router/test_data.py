"""Loading labelled examples: JSON lines and CSV, and every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intentflow.router.data import OUT_OF_SCOPE_LABELS, Example, examples_from, load_examples


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def test_json_lines_with_null_intents_extra_fields_and_blank_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "I want my money back", "intent": "refund", "id": 1}),
        "",
        json.dumps({"intent": None, "text": "what is the capital of Peru?"}),
        "   ",
        # U+2028 is legal raw inside a JSON string: it must not split the line.
        '{"text": "où est mon colis\u2028?", "intent": "order_status"}',
    ]
    path = write(tmp_path, "eval.jsonl", "\n".join(lines) + "\n")
    assert load_examples(path) == [
        Example("I want my money back", "refund"),
        Example("what is the capital of Peru?", None),
        Example("où est mon colis\u2028?", "order_status"),
    ]


@pytest.mark.parametrize("suffix", [".json", ".ndjson", ".JSONL"])
def test_every_json_lines_suffix_is_accepted(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"eval{suffix}", '{"text": "hi", "intent": null}\r\n')
    assert load_examples(str(path)) == [Example("hi", None)]


def test_csv_with_out_of_scope_labels_quoting_and_a_byte_order_mark(tmp_path: Path) -> None:
    content = (
        "\ufeffid,Label,TEXT\r\n"
        "1, refund ,I want my money back\r\n"
        '2,order_status,"where is it, and\nwhen does it come?"\r\n'
        "3,,blank label\r\n"
        "4,OOS,upper-case oos\r\n"
        "5,Out_Of_Scope,mixed case\r\n"
        "6,none,none\r\n"
        "7,NULL,null\r\n"
        "\r\n"
        "8,small_talk,hello\r\n"
    )
    examples = load_examples(write(tmp_path, "eval.csv", content))
    assert examples[:2] == [
        Example("I want my money back", "refund"),
        Example("where is it, and\nwhen does it come?", "order_status"),
    ]
    assert [e.intent for e in examples[2:7]] == [None] * 5
    assert examples[7] == Example("hello", "small_talk")
    assert {"", "oos", "out_of_scope", "none", "null"} == OUT_OF_SCOPE_LABELS


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.jsonl",
            '{"text": "ok", "intent": "a"}\n{"text": "x",\n',
            r"a\.jsonl:2: not valid JSON",
        ),
        ("a.jsonl", '["hi", "a"]\n', r"a\.jsonl:1: expected a JSON object .* found an array"),
        ("a.jsonl", '{"intent": "a"}\n', r'a\.jsonl:1: missing the field "text"'),
        ("a.jsonl", '{"text": "hi"}\n', r'missing the field "intent" \(use null'),
        ("a.jsonl", '{"text": "hi", "label": "a"}\n', r'has "label": rename it "intent"'),
        (
            "a.jsonl",
            '{"text": 3, "intent": "a"}\n',
            r'a\.jsonl:1: "text" must be a string, found a',
        ),
        ("a.jsonl", '{"text": null, "intent": "a"}\n', r'"text" must be a string, found null'),
        ("a.jsonl", '{"text": "  ", "intent": "a"}\n', r'a\.jsonl:1: "text" is blank'),
        ("a.jsonl", '{"text": "hi", "intent": 7}\n', r'"intent" must be a string or null'),
        ("a.jsonl", '{"text": "hi", "intent": ""}\n', r'"intent" is empty'),
        ("a.jsonl", "", r"a\.jsonl: the file has no examples"),
        ("a.jsonl", "\n  \n", r"a\.jsonl: the file has no examples"),
        ("a.csv", "", r"a\.csv: the file has no examples"),
        ("a.csv", "text,label\n", r"a\.csv: the file has no examples"),
        ("a.csv", "text,intent\nhi,a\n", r"a\.csv:1: the header must name the columns text and"),
        ("a.csv", "text,label\nhi,a\nhello\n", r"a\.csv:3: expected 2 fields \(text,label\)"),
        ("a.csv", "text,label\nhi,a,b\n", r"a\.csv:2: expected 2 fields .* found 3"),
        ("a.csv", "text,label\n  ,a\n", r"a\.csv:2: the text is blank"),
        ("a.csv", 'text,label\n"hi"x,a\n', r"a\.csv:2: malformed CSV"),
        ("a.txt", "text,label\nhi,a\n", r"a\.txt: cannot tell the format from the suffix '\.txt'"),
    ],
)
def test_every_malformed_file_names_the_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_examples(write(tmp_path, name, content))


def test_a_csv_error_after_a_multi_line_record_has_the_right_line(tmp_path: Path) -> None:
    content = 'text,label\n"two\nlines",a\nfine,b\n,c\n'
    with pytest.raises(ValueError, match=r"a\.csv:5: the text is blank"):
        load_examples(write(tmp_path, "a.csv", content))


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    content = b'{"text": "ok", "intent": "a"}\n{"text": "caf\xe9", "intent": "a"}\n'
    with pytest.raises(ValueError, match=r"a\.jsonl:2: not UTF-8"):
        load_examples(write(tmp_path, "a.jsonl", content))


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "nope.jsonl")


def test_examples_from_parallel_texts_and_labels() -> None:
    assert examples_from(("a", "b"), ["x", None]) == [Example("a", "x"), Example("b", None)]
    # Unlike a CSV label, "oos" here is taken literally.
    assert examples_from(["a"], ["oos"]) == [Example("a", "oos")]
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        examples_from(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="text 1 is a int"):
        examples_from(["a", 3], ["x", "y"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="label 0 is a int"):
        examples_from(["a"], [3])  # type: ignore[list-item]
