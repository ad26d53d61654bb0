"""PH1.TTS (seed 000 row 18) end to end on real Kafka and PostgreSQL: AT-TTS-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.repositories.ph1_tts import TtsReader
from contracts.ph1_tts import TtsFailedEvent
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e

decide = decider(TtsFailedEvent, {"reason_code": "TTS_FAIL_PROVIDER", "answer_id": "a-1", "fail_code": "PROVIDER_DOWN"})


async def test_tts_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad = [
        {"answer_id": "a" * 97},  # over its bound
        {"fail_code": "x" * 65},  # over its bound
        {"reason_code": "TTS_CANCELED"},  # a failure carries a TTS_FAIL_* code
        {"severity": "WARN"},  # a failure is an ERROR
    ]
    await refusals_while_good_decisions_flow(topics, TtsReader(reader_db), operator_db, run_id, decide, bad)


class TestAtTtsDb(SliceAcceptance):
    """The shared AT-TTS-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_tts"
