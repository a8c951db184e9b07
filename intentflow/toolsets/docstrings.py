"""Read a tool's description and its parameters' descriptions from a docstring.

Google, NumPy and Sphinx (reST) styles are recognised; the style is detected per docstring.
This is deliberately small (the core takes no docstring-parsing dependency): it reads the
summary and the parameter sections, which is all a tool schema needs.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_GOOGLE_PARAMS = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Kwargs):\s*$")
_GOOGLE_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Kwargs|Returns?|Yields?|Raises|"
    r"Examples?|Notes?|Attributes|See Also|Warnings?|Todo|References):\s*$"
)
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:\w+")


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    """What a docstring says about a tool.

    Attributes:
        description: The summary and any prose before the first section.
        params: Parameter name to description.
    """

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse a Google, NumPy or Sphinx docstring.

    Examples:
        >>> d = parse_docstring('''Get the weather.
        ...
        ... Args:
        ...     city: The city name.
        ...     days: How many days
        ...         ahead to forecast.
        ... ''')
        >>> d.description, d.params["days"]
        ('Get the weather.', 'How many days ahead to forecast.')
    """
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    for i in range(len(lines) - 1):
        if _NUMPY_UNDERLINE.match(lines[i + 1]) and lines[i].strip():
            return _parse_numpy(lines)
    if any(_SPHINX_FIELD.match(line.strip()) for line in lines):
        return _parse_sphinx(lines)
    return _parse_google(lines)


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def _prose(lines: list[str]) -> str:
    """Paragraphs joined: lines within a paragraph by spaces, paragraphs by a blank line."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(_join(p) for p in paragraphs if p)


def _parse_google(lines: list[str]) -> ParsedDocstring:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    i = 0
    while i < len(lines) and not _GOOGLE_SECTION.match(lines[i].strip()):
        desc.append(lines[i])
        i += 1
    current: str | None = None
    in_params = False
    item_indent = None
    for line in lines[i:]:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 0 and _GOOGLE_SECTION.match(stripped):
            in_params = bool(_GOOGLE_PARAMS.match(stripped))
            current, item_indent = None, None
            continue
        if not in_params or not stripped:
            continue
        m = _GOOGLE_ITEM.match(stripped)
        if m and (item_indent is None or indent <= item_indent):
            item_indent = indent
            current = m.group(1).lstrip("*")
            params[current] = [m.group(3)]
        elif current is not None:
            params[current].append(stripped)
    return ParsedDocstring(_prose(desc), {k: _join(v) for k, v in params.items()})


def _parse_numpy(lines: list[str]) -> ParsedDocstring:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _NUMPY_UNDERLINE.match(lines[i + 1]) and line.strip():
            section = line.strip().lower()
            current = None
            i += 2
            continue
        if section is None:
            desc.append(line)
        elif section in ("parameters", "other parameters", "keyword arguments") and line.strip():
            if not line.startswith((" ", "\t")):
                names = line.split(":", 1)[0]
                current = None
                for name in names.split(","):
                    current = name.strip().lstrip("*")
                    params[current] = []
            elif current is not None:
                params[current].append(line)
        i += 1
    return ParsedDocstring(_prose(desc), {k: _join(v) for k, v in params.items()})


def _parse_sphinx(lines: list[str]) -> ParsedDocstring:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    current: str | None = None
    seen_field = False
    for line in lines:
        stripped = line.strip()
        m = _SPHINX_PARAM.match(stripped)
        if m:
            seen_field = True
            current = m.group(1)
            params[current] = [m.group(2)]
        elif _SPHINX_FIELD.match(stripped):
            seen_field = True
            current = None
        elif not seen_field:
            desc.append(line)
        elif current is not None and stripped:
            params[current].append(stripped)
    return ParsedDocstring(_prose(desc), {k: _join(v) for k, v in params.items()})
