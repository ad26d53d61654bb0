"""PH1.J (the audit ledger, seed 000 row 2): the shared acceptance suite, AT-PH1-J-DB-01..04. What is
special to the audit ledger (its rows about users guarded by PH1.F, the work-order emissions) is tested
with those slices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from tests.e2e.acceptance import SliceAcceptance

pytestmark = pytest.mark.e2e


class TestAtPh1JDb(SliceAcceptance):
    slice_name = "audit"

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        return [
            new_event(
                AuditRecordedEvent,
                tenant_id=tenant,
                engine_id="PH1.NLP",
                correlation_id=f"c-{tenant}-{i}",
                occurred_at=datetime.now(UTC),
                payload={"reason_code": "NLP_INTENT_OK", "summary": f"decision {i}", "attributes": {"n": i}},
            )
        ]
