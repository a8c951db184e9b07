"""Saving fitted classifiers: the protocol, the registry of kinds, and versioned manifests.

A fitted router is a directory: ``router.json`` (the manifest: intents, thresholds, rules and
its stages) and one sub-directory per classifier stage, written by the classifier itself. A
classifier that can be saved implements `SavableClassifier`: a ``kind`` (the name the
manifest records) and ``save(directory)`` / ``load(directory)``. Loading looks the kind up
in a registry: the built-in kinds are imported lazily (so loading a lexical router never
imports the embedding code), and `register_classifier` adds an application's own.

Every JSON file an artefact holds starts with ``"format"`` (what the file is) and
``"version"`` (an integer bumped when the layout changes incompatibly); `read_manifest`
checks both and raises `ArtifactError` naming the file, what was found and what this
version of intentflow reads.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from intentflow.errors import ArtifactError

__all__ = [
    "SavableClassifier",
    "classifier_kind",
    "read_manifest",
    "register_classifier",
    "write_json",
    "write_manifest",
]

# Kinds whose classes are imported only when an artefact names them.
_BUILTIN: dict[str, str] = {
    "lexical": "intentflow.router.lexical:LexicalClassifier",
    "embedding": "intentflow.router.embedding:EmbeddingClassifier",
}
_REGISTERED: dict[str, type[SavableClassifier]] = {}


@runtime_checkable
class SavableClassifier(Protocol):
    """A classifier that can be written to a directory and read back with the same decisions.

    Attributes:
        kind: The name recorded in the router's manifest (``"lexical"``, ``"embedding"``,
            or an application's own, registered with `register_classifier`).
    """

    kind: ClassVar[str]

    def save(self, directory: Path) -> None:
        """Write the fitted classifier into ``directory`` (which exists and is empty)."""
        ...

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a classifier written by :meth:`save`; raise `ArtifactError` when it cannot."""
        ...


def register_classifier(cls: type[SavableClassifier]) -> type[SavableClassifier]:
    """Make a savable classifier class loadable by its ``kind`` (usable as a decorator).

    Examples:
        >>> from pathlib import Path
        >>> @register_classifier
        ... class Constant:
        ...     kind = "constant-example"
        ...     def save(self, directory: Path) -> None: ...
        ...     @classmethod
        ...     def load(cls, directory: Path) -> "Constant": return cls()
        >>> classifier_kind("constant-example") is Constant
        True
    """
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'kind'")
    if kind in _BUILTIN:
        raise ValueError(f"the kind {kind!r} is built in; choose another name")
    _REGISTERED[kind] = cls
    return cls


def classifier_kind(kind: str) -> type[SavableClassifier]:
    """The class that loads classifiers of ``kind``.

    Raises:
        KeyError: When no class is registered for ``kind``.
    """
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    if kind in _BUILTIN:
        module, _, name = _BUILTIN[kind].partition(":")
        cls: type[SavableClassifier] = getattr(importlib.import_module(module), name)
        return cls
    known = sorted({*_BUILTIN, *_REGISTERED})
    raise KeyError(f"no classifier kind {kind!r} is registered (known: {', '.join(known)})")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, indent=1, sort_keys=False)
            file.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(path: Path, fmt: str, version: int, data: dict[str, Any]) -> None:
    """Write a versioned JSON file: ``{"format": fmt, "version": version, **data}``."""
    write_json(path, {"format": fmt, "version": version, **data})


def read_manifest(path: Path, fmt: str, versions: Collection[int]) -> dict[str, Any]:
    """Read a file written by `write_manifest`, checking its format and version.

    Raises:
        ArtifactError: When the file is missing or not JSON, is not a ``fmt`` file, or has a
            version outside ``versions``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(path, f"no such file (expected a saved {fmt})") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"is not valid JSON ({exc}); the file is corrupt") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(path, f"is not a saved {fmt} (its format is {found!r})")
    version = data.get("version")
    if version not in versions:
        readable = ", ".join(str(v) for v in sorted(versions))
        newer = isinstance(version, int) and version > max(versions)
        advice = (
            "it was written by a newer intentflow: upgrade intentflow to load it"
            if newer
            else "refit and save it again with this version of intentflow"
        )
        raise ArtifactError(
            path,
            f"has {fmt} format version {version!r}, but this intentflow reads version "
            f"{readable}; {advice}",
            found=version,
            supported=sorted(versions),
        )
    return data
