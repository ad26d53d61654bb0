"""PH1.E (seed 000 row 19) end to end on real Kafka and PostgreSQL: AT-E-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.repositories.ph1_e import EReader
from contracts.ph1_e import ToolOkEvent
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e

decide = decider(
    ToolOkEvent,
    {"reason_code": "E_TOOL_OK", "tool_name": "web_search", "query_hash": "sha256:ab", "cache_status": "HIT"},
)


async def test_e_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad = [
        {"tool_name": "x" * 33},  # over its bound
        {"query_hash": "h" * 129},  # over its bound
        {"cache_status": "STALE"},  # HIT, MISS or BYPASSED
        {"fail_code": "E_FAIL_TIMEOUT"},  # a TOOL_FAIL key on TOOL_OK
    ]
    await refusals_while_good_decisions_flow(topics, EReader(reader_db), operator_db, run_id, decide, bad)


class TestAtEDb(SliceAcceptance):
    """The shared AT-E-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_e"
