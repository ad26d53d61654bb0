"""The artifacts ledger's hand-written reducer: a version is recorded once; a TENANT scope is the event's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.projections.artifacts_ledger import reduce_version
from consumers.projections.base import Rejection
from contracts.artifacts_ledger import ArtifactRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ReasonCode


def artifact(**payload: Any) -> LedgerEvent:
    return new_event(
        ArtifactRecordedEvent,
        tenant_id="t1",
        engine_id="PH1.LEARN",
        correlation_id="c",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={
            "scope_type": "TENANT",
            "scope_id": "t1",
            "artifact_type": "WAKE_PACK",
            "artifact_version": 1,
            "package_hash": "h",
            "payload_ref": "ref",
            "created_by": "PH1.LEARN",
            "provenance_ref": "p",
            "status": "ACTIVE",
            **payload,
        },
    )


def test_a_new_version_is_recorded_with_its_status_and_event() -> None:
    event = artifact(status="ROLLED_BACK", artifact_version=3)
    row = reduce_version(None, event)
    assert row["artifact_version"] == 3 and row["status"] == "ROLLED_BACK"
    assert row["source_event_id"] == event.event_id and row["updated_at"] == event.occurred_at


def test_a_recorded_version_refuses_any_second_event() -> None:
    first = reduce_version(None, artifact())
    for again in (artifact(), artifact(package_hash="other"), artifact(status="DEPRECATED")):
        with pytest.raises(Rejection) as info:
            reduce_version(first, again)
        assert info.value.reason_code == ReasonCode.ART_DUPLICATE_KEY


def test_a_tenant_scope_names_the_events_tenant_other_scopes_any_id() -> None:
    with pytest.raises(Rejection) as info:
        reduce_version(None, artifact(scope_id="t2"))
    assert info.value.reason_code == ReasonCode.ART_SCOPE_TENANT_MISMATCH
    assert reduce_version(None, artifact(scope_type="USER", scope_id="u-1"))["scope_id"] == "u-1"
