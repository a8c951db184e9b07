"""Router.save / Router.load: the versioned directory, same decisions, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from intentflow import Toolset
from intentflow.errors import ArtifactError, ConfigurationError
from intentflow.router import Example, Intent, LexicalClassifier, Prediction, Router, Rule, Stage
from intentflow.router.artifact import read_fit_report
from intentflow.router.persist import classifier_kind, register_classifier
from tests.router.memo import MemoClassifier
from tests.router.test_fitting import INTENTS, TRAIN, VAL

pytestmark = pytest.mark.anyio

PROBES = [e.text for e in (*TRAIN, *VAL)] + ["REFUND NOW", "hi", "", "what about my order?"]


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def decisions(router: Router) -> list[tuple[object, ...]]:
    out = []
    for text in PROBES:
        d = await router.route(text, current="status")
        out.append((d.intent, d.confidence, d.margin, d.scores, d.abstained, d.classifier))
    return out


async def fitted(**kwargs: object) -> Router:
    router = Router(
        INTENTS,
        MemoClassifier(),
        fallback="chat",
        rules=[
            Rule.keywords("refund", ["chargeback"]),
            Rule.pattern("chat", r"\blol\b", action="veto", flags=re.IGNORECASE),
        ],
        sticky_margin=0.05,
        **kwargs,  # type: ignore[arg-type]
    )
    await router.fit(TRAIN, VAL)
    return router


async def test_a_saved_router_loads_with_the_same_settings_and_decisions(tmp_path: Path) -> None:
    router = await fitted()
    path = router.save(tmp_path / "router")
    assert sorted(p.name for p in path.iterdir()) == ["router.json", "stage-0"]
    loaded = Router.load(path)
    assert list(loaded.intents) == list(router.intents)
    assert (loaded.threshold, loaded.margin, loaded.thresholds) == (
        router.threshold,
        router.margin,
        router.thresholds,
    )
    assert (loaded.fallback, loaded.sticky_margin) == ("chat", 0.05)
    assert [(r.intent, r.action, r.name, r.regex.pattern, r.regex.flags) for r in loaded.rules] == [
        (r.intent, r.action, r.name, r.regex.pattern, r.regex.flags) for r in router.rules
    ]
    assert await decisions(loaded) == await decisions(router)
    assert (await loaded.route("a chargeback please")).classifier == "rules"


async def test_the_manifest_is_versioned_and_keeps_the_fit_report(tmp_path: Path) -> None:
    router = await fitted()
    router.save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "router.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("intentflow.router", 1)
    assert manifest["stages"] == [
        {
            "name": "memo",
            "min_confidence": 0.0,
            "min_margin": 0.0,
            "kind": "memo-test",
            "path": "stage-0",
        }
    ]
    report = read_fit_report(tmp_path / "r")
    assert report is not None and report["threshold"] == router.threshold
    assert report["source"] == "val"


async def test_loading_with_the_applications_intents_keeps_their_toolsets(tmp_path: Path) -> None:
    (await fitted()).save(tmp_path / "r")

    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    mine = [
        Intent("refund", description="Money back."),
        Intent("status", description="Where is it.", toolset=Toolset("orders", [lookup])),
        Intent("chat", description="Chat.", tool_choice="none"),
    ]
    loaded = Router.load(tmp_path / "r", intents=mine)
    assert loaded.intents["status"].tool_names == ("lookup",)
    assert loaded.intents["chat"].tool_choice == "none"


async def test_intents_that_do_not_match_the_saved_names_are_an_error(tmp_path: Path) -> None:
    (await fitted()).save(tmp_path / "r")
    wrong = [Intent("refund", description="x"), Intent("cancel", description="y")]
    with pytest.raises(
        ArtifactError, match=r"missing \['chat', 'status'\].*not in the saved router \['cancel'\]"
    ):
        Router.load(tmp_path / "r", intents=wrong)


@pytest.mark.parametrize(
    ("version", "advice"),
    [(99, "written by a newer intentflow: upgrade"), (0, "refit and save it again")],
)
async def test_an_incompatible_version_is_a_clear_error(
    tmp_path: Path, version: int, advice: str
) -> None:
    (await fitted()).save(tmp_path / "r")
    manifest = tmp_path / "r" / "router.json"
    data = json.loads(manifest.read_text())
    data["version"] = version
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=advice) as info:
        Router.load(tmp_path / "r")
    assert info.value.found == version and info.value.supported == (1,)
    assert "reads version 1" in str(info.value)


async def test_not_a_router_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        Router.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        Router.load(tmp_path / "file")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "router.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Router.load(bad)
    (bad / "router.json").write_text(json.dumps({"format": "something.else", "version": 1}))
    with pytest.raises(ArtifactError, match=r"is not a saved intentflow\.router"):
        Router.load(bad)
    (bad / "router.json").write_text(json.dumps({"format": "intentflow.router", "version": 1}))
    with pytest.raises(ArtifactError, match="is corrupt"):
        Router.load(bad)


async def test_an_unknown_classifier_kind_is_a_clear_error(tmp_path: Path) -> None:
    (await fitted()).save(tmp_path / "r")
    manifest = tmp_path / "r" / "router.json"
    data = json.loads(manifest.read_text())
    data["stages"][0]["kind"] = "quantum"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"no classifier kind 'quantum'.*known: .*lexical"):
        Router.load(tmp_path / "r")


class Oracle:
    """An unsavable stage, as an LLM classifier is."""

    name = "llm"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("refund", 0.9), ("status", 0.1)])


async def test_unsavable_stages_are_recorded_and_must_be_passed_back(tmp_path: Path) -> None:
    memo = MemoClassifier()
    router = Router(INTENTS, [Stage(memo, min_confidence=0.9), Stage(Oracle())])
    await router.fit(TRAIN, VAL)
    router.save(tmp_path / "r")
    with pytest.raises(
        ArtifactError, match=r"stage 'llm' \(Oracle\) was not saved.*classifiers=\{'llm'"
    ):
        Router.load(tmp_path / "r")
    loaded = Router.load(tmp_path / "r", classifiers={"llm": Oracle()})
    assert [s.classifier.name for s in loaded.stages] == ["memo", "llm"]
    assert loaded.stages[0].min_confidence == 0.9
    assert await decisions(loaded) == await decisions(router)
    with pytest.raises(ArtifactError, match=r"stages the router does not have: \['gpt'\]"):
        Router.load(tmp_path / "r", classifiers={"llm": Oracle(), "gpt": Oracle()})


async def test_a_saved_stage_can_be_replaced_at_load_time(tmp_path: Path) -> None:
    (await fitted()).save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r", classifiers={"memo": Oracle()})
    assert loaded.stages[0].classifier.name == "llm"


async def test_two_unsaved_stages_with_one_name_cannot_be_saved(tmp_path: Path) -> None:
    router = Router(INTENTS, [Oracle(), Oracle()])
    with pytest.raises(ConfigurationError, match="share a name"):
        router.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert listing(tmp_path) == []  # no temporary directory left behind


async def test_saving_replaces_a_router_but_never_another_directory(tmp_path: Path) -> None:
    first = await fitted()
    first.save(tmp_path / "r")
    second = await fitted()
    second.threshold = 0.77
    second.save(tmp_path / "r")
    assert Router.load(tmp_path / "r").threshold == 0.77
    assert listing(tmp_path) == ["r"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(ArtifactError, match="not a saved router; refusing"):
        first.save(precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


async def test_a_subclass_loads_as_itself(tmp_path: Path) -> None:
    class MyRouter(Router):
        pass

    (await fitted()).save(tmp_path / "r")
    assert type(MyRouter.load(tmp_path / "r")) is MyRouter


async def test_a_lexical_router_round_trips(tmp_path: Path) -> None:
    router = Router(INTENTS, LexicalClassifier(), fallback="chat")
    await router.fit(TRAIN, VAL)
    router.save(tmp_path / "lex")
    loaded = Router.load(tmp_path / "lex")
    assert isinstance(loaded.stages[0].classifier, LexicalClassifier)
    assert await decisions(loaded) == await decisions(router)


def test_registering_kinds() -> None:
    assert classifier_kind("memo-test") is MemoClassifier
    assert classifier_kind("lexical") is LexicalClassifier

    class Nameless:
        pass

    with pytest.raises(TypeError, match="kind"):
        register_classifier(Nameless)  # type: ignore[arg-type]

    class Clash:
        kind = "lexical"

    with pytest.raises(ValueError, match="built in"):
        register_classifier(Clash)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no classifier kind 'nope'"):
        classifier_kind("nope")


def test_examples_are_plain_data() -> None:
    assert Example("x", None).intent is None
