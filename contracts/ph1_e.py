"""PH1.E (seed 000 row 19): the outcome of a tool call (ok or failed, and whether the tool cache answered),
as audit rows. The sheet names no reason codes for PH1.E; ``fail_code`` strings upstream's tests use are
``E_FAIL_TIMEOUT``, ``E_FAIL_POLICY_BLOCK``, ``E_FAIL_FORBIDDEN_DOMAIN`` (not a closed list). Rules shared
with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from typing import Literal

from contracts.audit_decisions import EngineDecision, Info, Text32, Text64, Text128, Warn, decisions, examples
from contracts.slice import SliceContract

E_ENGINE = "PH1.E"
#: Where the answer came from: row 7's ``tool_cache`` (by name only, this slice does not read it).
CacheStatus = Literal["HIT", "MISS", "BYPASSED"]


class ToolOk(EngineDecision):
    tool_name: Text32
    query_hash: Text128
    cache_status: CacheStatus
    severity: Info = "INFO"


class ToolFail(EngineDecision):
    tool_name: Text32
    fail_code: Text64
    cache_status: CacheStatus
    severity: Warn = "WARN"


ToolOkEvent, ToolFailEvent = EVENTS = decisions(E_ENGINE, ToolOk, ToolFail)
_SEARCH = {"tool_name": "web_search", "query_hash": "sha256:{n:064x}"}

SLICE = SliceContract(
    name="ph1_e",
    engines=(E_ENGINE,),
    kind="audit_backed",
    seed_row=19,
    events=EVENTS,
    examples=examples(  # a lookup answered by the tool, the same one from the cache, a blocked one
        (ToolOkEvent, "E_TOOL_OK", {**_SEARCH, "cache_status": "MISS"}),
        (ToolOkEvent, "E_TOOL_OK", {**_SEARCH, "cache_status": "HIT"}),
        (
            ToolFailEvent,
            "E_TOOL_FAIL",
            {"tool_name": "web_fetch", "fail_code": "E_FAIL_FORBIDDEN_DOMAIN", "cache_status": "BYPASSED"},
        ),
    ),
)
