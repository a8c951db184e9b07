"""A fitted router on disk: one directory that `Router.save` writes and `Router.load` reads.

Layout (format ``intentflow.router``, version 1)::

    DIR/router.json     the manifest: intents (name, description, a few examples), fallback,
                        threshold, margin, per-intent thresholds, sticky margin, rules, the
                        stages (kind, sub-directory, escalation limits) and the fit report
    DIR/stage-0/        the first stage's classifier, as its own ``save`` wrote it
    DIR/stage-1/ ...

Intents hold live objects (toolsets of Python functions, agents) that cannot be saved, so
the manifest keeps only what routing needs. ``Router.load(DIR)`` gives a router over plain
intents with those names; ``Router.load(DIR, intents=[...])`` attaches the application's own
intents, which must have exactly the saved names. A stage whose classifier cannot be saved
(an `LLMClassifier` holds a model and a client) is recorded by name; loading then needs it
passed in ``classifiers={name: ...}``.

Saving writes a new directory beside the target and swaps it in, so a reader (another
replica loading the router) sees the old artefact or the new one, never a mixture.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intentflow.errors import ArtifactError, ConfigurationError
from intentflow.router.decision import Classifier
from intentflow.router.intent import Intent
from intentflow.router.persist import (
    SavableClassifier,
    classifier_kind,
    read_manifest,
    write_manifest,
)
from intentflow.router.rules import Rule

if TYPE_CHECKING:
    from intentflow.router.router import Router

__all__ = ["FORMAT", "VERSION", "load_router", "save_router"]

FORMAT = "intentflow.router"
VERSION = 1
MANIFEST = "router.json"
_KEPT_EXAMPLES = 5  # per intent, so a loaded intent still says what it is about


def save_router(
    router: Router, directory: str | Path, *, fit: Mapping[str, Any] | None = None
) -> Path:
    """Write ``router`` to ``directory`` (replacing what is there); see the module notes.

    Raises:
        ConfigurationError: When a stage's classifier has no ``save`` method and no name to
            be passed back under at load time.
    """
    from intentflow import __version__

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        stages = []
        for i, stage in enumerate(router.stages):
            classifier = stage.classifier
            entry: dict[str, Any] = {
                "name": classifier.name,
                "min_confidence": stage.min_confidence,
                "min_margin": stage.min_margin,
            }
            if isinstance(classifier, SavableClassifier):
                sub = f"stage-{i}"
                (tmp / sub).mkdir()
                classifier.save(tmp / sub)
                entry.update(kind=classifier.kind, path=sub)
            else:
                entry.update(kind=None, path=None, type=type(classifier).__name__)
            stages.append(entry)
        names = [s["name"] for s in stages if s["kind"] is None]
        if len(set(names)) != len(names):
            raise ConfigurationError(
                "two unsaved stages share a name, so they could not be told apart when the "
                f"router is loaded: {names}; give their classifiers distinct names"
            )
        write_manifest(
            tmp / MANIFEST,
            FORMAT,
            VERSION,
            {
                "intentflow": __version__,
                "intents": [
                    {
                        "name": intent.name,
                        "description": intent.description,
                        "examples": list(intent.examples)[:_KEPT_EXAMPLES],
                    }
                    for intent in router.intents.values()
                ],
                "fallback": router.fallback,
                "threshold": router.threshold,
                "margin": router.margin,
                "thresholds": dict(router.thresholds),
                "sticky_margin": router.sticky_margin,
                "rules": [
                    {
                        "intent": rule.intent,
                        "pattern": rule.regex.pattern,
                        "flags": int(rule.regex.flags),
                        "action": rule.action,
                        "name": rule.name,
                    }
                    for rule in router.rules
                ],
                "stages": stages,
                "fit": dict(fit) if fit is not None else None,
            },
        )
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_router(
    directory: str | Path,
    *,
    intents: Iterable[Intent] | None = None,
    classifiers: Mapping[str, Classifier] | None = None,
) -> Router:
    """Read a router written by `save_router`.

    Raises:
        ArtifactError: When the directory is not a saved router, was written by an
            incompatible format version, is corrupt, a stage's classifier kind is unknown,
            ``intents`` do not match the saved names, or an unsaved stage is not given in
            ``classifiers``.
    """
    from intentflow.router.router import Router, Stage

    root = Path(directory)
    if root.is_file():
        raise ArtifactError(root, "is a file; a saved router is a directory with router.json")
    data = read_manifest(root / MANIFEST, FORMAT, {VERSION})
    path = root / MANIFEST
    try:
        saved = [
            Intent(
                i["name"],
                description=i.get("description", ""),
                examples=i.get("examples", ()),
            )
            for i in data["intents"]
        ]
        rules = [
            Rule(r["intent"], re.compile(r["pattern"], r["flags"]), r["action"], r["name"])
            for r in data["rules"]
        ]
        stage_entries = list(data["stages"])
    except (KeyError, TypeError, re.error, ConfigurationError) as exc:
        raise ArtifactError(path, f"is corrupt: {type(exc).__name__}: {exc}") from None

    chosen = _match_intents(path, saved, intents)
    given = dict(classifiers or {})
    stages = []
    for entry in stage_entries:
        try:
            name, kind, sub = entry["name"], entry["kind"], entry["path"]
            limits = float(entry["min_confidence"]), float(entry["min_margin"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(path, f"is corrupt: a stage lacks {exc}") from None
        if name in given:
            classifier: Classifier = given.pop(name)
        elif kind is None:
            raise ArtifactError(
                path,
                f"stage {name!r} ({entry.get('type', 'a classifier')}) was not saved with the "
                f"router; pass it when loading: Router.load(..., classifiers={{{name!r}: ...}})",
            )
        else:
            try:
                cls = classifier_kind(kind)
            except KeyError as exc:
                raise ArtifactError(path, str(exc.args[0])) from None
            loaded = cls.load(root / sub)
            if not isinstance(loaded, Classifier):  # pragma: no cover - a broken plug-in
                raise ArtifactError(root / sub, f"{cls.__name__}.load did not return a classifier")
            classifier = loaded
        stages.append(Stage(classifier, *limits))
    if given:
        raise ArtifactError(
            path,
            f"classifiers were given for stages the router does not have: {sorted(given)} "
            f"(its stages: {[e['name'] for e in stage_entries]})",
        )
    try:
        return Router(
            chosen,
            stages,
            fallback=data["fallback"],
            threshold=data["threshold"],
            margin=data["margin"],
            thresholds=data["thresholds"],
            rules=rules,
            sticky_margin=data["sticky_margin"],
        )
    except KeyError as exc:
        raise ArtifactError(path, f"is corrupt: {exc} is missing") from None


def read_fit_report(directory: str | Path) -> dict[str, Any] | None:
    """The fit report saved with a router (``None`` when it was saved without one)."""
    data = read_manifest(Path(directory) / MANIFEST, FORMAT, {VERSION})
    report = data.get("fit")
    return report if isinstance(report, dict) else None


def _match_intents(
    path: Path, saved: list[Intent], intents: Iterable[Intent] | None
) -> list[Intent]:
    if intents is None:
        return saved
    mine = list(intents)
    saved_names = {i.name for i in saved}
    my_names = {i.name for i in mine}
    if saved_names != my_names:
        missing = sorted(saved_names - my_names)
        extra = sorted(my_names - saved_names)
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"not in the saved router {extra}")
        raise ArtifactError(
            path,
            "the intents given do not match the saved router's: "
            + "; ".join(parts)
            + " (refit the router with these intents)",
        )
    return mine


def _swap(new: Path, target: Path) -> None:
    if not target.exists():
        new.rename(target)
        return
    if not (target / MANIFEST).exists() and any(target.iterdir()):
        raise ArtifactError(
            target, "exists and is not a saved router; refusing to replace it (choose another)"
        )
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
