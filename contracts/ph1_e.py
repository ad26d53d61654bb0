"""PH1.E (seed 000 row 19): the outcome of a tool call (ok or failed, and whether the tool cache answered),
as audit rows. The sheet names no reason codes for PH1.E; ``fail_code`` strings upstream's tests use are
``E_FAIL_TIMEOUT``, ``E_FAIL_POLICY_BLOCK``, ``E_FAIL_FORBIDDEN_DOMAIN`` (not a closed list). Rules shared
with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from typing import Literal

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text32, Text64, Text128, Warn, decision_examples
from contracts.envelope import Ident, LedgerEvent, define_event
from contracts.slice import ExampleContext, SliceContract

E_ENGINE = "PH1.E"
#: Where the answer came from: row 7's ``tool_cache`` (by name only, this slice does not read it).
CacheStatus = Literal["HIT", "MISS", "BYPASSED"]


class EEvent(LedgerEvent):
    """The envelope of PH1.E decisions: published by PH1.E only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.E"]
    turn_id: Ident
    idempotency_key: Ident


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


ToolOkEvent = define_event(AUDIT_EVENTS, "TOOL_OK", ToolOk, base=EEvent)
ToolFailEvent = define_event(AUDIT_EVENTS, "TOOL_FAIL", ToolFail, base=EEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A lookup answered by the tool, the same one from the cache, and a blocked one."""
    q = f"sha256:{ctx.n:064x}"
    return decision_examples(
        ctx,
        E_ENGINE,
        [
            (
                ToolOkEvent,
                {"reason_code": "E_TOOL_OK", "tool_name": "web_search", "query_hash": q, "cache_status": "MISS"},
            ),
            (
                ToolOkEvent,
                {"reason_code": "E_TOOL_OK", "tool_name": "web_search", "query_hash": q, "cache_status": "HIT"},
            ),
            (
                ToolFailEvent,
                {
                    "reason_code": "E_TOOL_FAIL",
                    "tool_name": "web_fetch",
                    "fail_code": "E_FAIL_FORBIDDEN_DOMAIN",
                    "cache_status": "BYPASSED",
                },
            ),
        ],
    )


SLICE = SliceContract(
    name="ph1_e",
    engines=(E_ENGINE,),
    kind="audit_backed",
    seed_row=19,
    doc="docs/DB_WIRING/PH1_E.md",
    acceptance="AT-E-DB",
    events=(ToolOkEvent, ToolFailEvent),
    requires=("audit", "foundation"),
    examples=examples,
)
