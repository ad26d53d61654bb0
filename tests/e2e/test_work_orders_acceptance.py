"""SELENE_OS_CORE_TABLES (work orders, seed 000 row 6): the shared acceptance suite, AT-OS-CORE-DB-01..04,
over every table of the slice (the sample gives each work order a lease and a step attempt, so no table's
checks pass on no rows). The state machine and the seed's own AT-OS tests are in test_work_orders.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.envelope import LedgerEvent
from contracts.work_orders import LeaseAcquiredEvent, StatusChangedEvent, StepAttemptStartedEvent
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.test_work_orders import WorkOrder

pytestmark = pytest.mark.e2e


class TestAtOsCoreDb(SliceAcceptance):
    slice_name = "work_orders"

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        wo = WorkOrder(tenant, f"wo-{tenant}-{i}")
        return [
            wo.create(),
            wo(StatusChangedEvent, to_status="EXECUTING"),
            wo(LeaseAcquiredEvent, lease_id=f"l-{i}", holder_id="exec-1", expires_at=wo.at + timedelta(hours=1)),
            wo(StepAttemptStartedEvent, step_id="s-1", attempt_no=1, lease_id=f"l-{i}"),
        ]
