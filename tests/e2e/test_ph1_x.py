"""PH1.X (seed 000 row 16) end to end on real Kafka and PostgreSQL: AT-X-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.repositories.ph1_x import XReader
from contracts.ph1_x import XDispatchEvent
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e

decide = decider(
    XDispatchEvent, {"reason_code": "X_DISPATCH_TOOL", "directive": "dispatch", "dispatch_target": "PH1.E"}
)


async def test_x_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad = [
        {"dispatch_target": "x" * 65},  # over its bound
        {"dispatch_target": "\t"},  # blank
        {"directive": "confirm"},  # each directive is its own event type
        {"severity": "WARN"},  # the severity is fixed by the directive
    ]
    await refusals_while_good_decisions_flow(topics, XReader(reader_db), operator_db, run_id, decide, bad)


class TestAtXDb(SliceAcceptance):
    """The shared AT-X-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_x"
