"""PH1.F (identities, devices, sessions, the conversation ledger; seed 000 row 1): the shared acceptance
suite, AT-PH1-F-DB-01..04. The ownership rules of devices and sessions are in tests/e2e/test_pipeline.py
and tests/integration/test_projection_races.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import (
    ConversationTurnEvent,
    DeviceRegisteredEvent,
    IdentityUpsertedEvent,
    SessionOpenedEvent,
)
from tests.e2e.acceptance import SliceAcceptance

pytestmark = pytest.mark.e2e


class TestAtPh1FDb(SliceAcceptance):
    slice_name = "foundation"

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        user, device, session = (f"{kind}-{tenant}-{i}" for kind in ("u", "d", "s"))
        common: dict[str, Any] = {"tenant_id": tenant, "correlation_id": f"c-{user}", "occurred_at": datetime.now(UTC)}
        refs = {"user_id": user, "device_id": device}
        return [
            new_event(
                IdentityUpsertedEvent, engine_id="PH1.F", payload={"reason_code": "ID", "user_id": user}, **common
            ),
            new_event(
                DeviceRegisteredEvent,
                engine_id="PH1.F",
                payload={"reason_code": "DEV", "device_type": "PHONE", **refs},
                **common,
            ),
            new_event(
                SessionOpenedEvent,
                engine_id="PH1.L",
                payload={"reason_code": "SES", "session_id": session, **refs},
                **common,
            ),
            new_event(
                ConversationTurnEvent,
                engine_id="PH1.C",
                payload={"speaker": "USER", "source": "TEXT", "text": f"hello {i}", "session_id": session, **refs},
                **common,
            ),
        ]
