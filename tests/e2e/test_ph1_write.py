"""PH1.WRITE (seed 000 row 17) end to end on real Kafka and PostgreSQL: AT-WRITE-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from consumers.repositories.audit_decisions import decision_reader
from contracts.ph1_write import SLICE, WriteFormatEvent
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e

decide = decider(
    WriteFormatEvent, {"reason_code": "WRITE_FORMATTED", "directive": "format", "format_mode": "FORMATTED_TEXT"}
)


async def test_write_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad: list[dict[str, Any]] = [
        {"format_mode": "x" * 65},  # over its bound
        {"format_mode": ""},  # blank
        {"directive": "respond"},  # the only directive is format
        {"format_mode": 3},  # payload_min values are text
    ]
    reader = decision_reader(SLICE)(reader_db)  # no reader module of its own: the declaration's
    await refusals_while_good_decisions_flow(topics, reader, operator_db, run_id, decide, bad)


class TestAtWriteDb(SliceAcceptance):
    """The shared AT-WRITE-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_write"
