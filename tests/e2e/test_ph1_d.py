"""PH1.D (seed 000 row 15) end to end on real Kafka and PostgreSQL: AT-D-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.repositories.ph1_d import DReader
from contracts.ph1_d import DFailClosedEvent
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e

decide = decider(
    DFailClosedEvent,
    {"reason_code": "D_FAIL_SAFETY_BLOCK", "decision": "FAIL_CLOSED", "fail_code": "SAFETY", "output_mode": "fail"},
)


async def test_d_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad = [
        {"fail_code": "x" * 65},  # over its bound
        {"fail_code": " "},  # blank
        {"reason_code": "D_CLARIFY_EVIDENCE_REQUIRED"},  # fail closed only with a D_FAIL_* code
        {"output_mode": "chat"},  # the output mode is fixed by the decision
        {"decision": "CHAT"},  # each outcome is its own event type
        {"severity": "INFO"},  # the severity is fixed by the decision
    ]
    await refusals_while_good_decisions_flow(topics, DReader(reader_db), operator_db, run_id, decide, bad)


class TestAtDDb(SliceAcceptance):
    """The shared AT-D-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_d"
