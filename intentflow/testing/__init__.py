"""Test doubles for intentflow's tests and for yours.

* `FakeOpenAIServer`: an OpenAI-compatible HTTP server on 127.0.0.1, scripted with
  `Reply` and `Fault` items, so tests exercise the real ``openai`` client,
  including streaming quirks of compatible providers (`StreamQuirks`) and injected
  faults (429, 500, dropped connections, cut streams, slow replies).
* `ScriptedModel`: an in-process `Model` that answers from the same `Reply` and `Fault`
  script, without HTTP or the ``openai`` client, raising the typed errors a real endpoint's
  failures become; for tests of agents, routers and graphs.
* BFCL helpers (`intentflow.testing.bfcl`) and an independent checker of OpenAI
  strict-mode schema rules (`intentflow.testing.strict_rules`).
"""

from intentflow.testing.fake_server import FakeOpenAIServer, RecordedRequest, StreamQuirks
from intentflow.testing.replies import Fault, FaultKind, Reply, TokenLogprob
from intentflow.testing.scripted import ScriptedModel

__all__ = [
    "FakeOpenAIServer",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "StreamQuirks",
    "TokenLogprob",
]
