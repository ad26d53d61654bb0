"""The blueprint registry's reducer: upstream's status table, and one intent per (process, version)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.projections.base import Rejection
from consumers.projections.pbs import reduce_registry
from consumers.tables import Row
from contracts.envelope import LedgerEvent, new_event
from contracts.pbs import ProcessBlueprintRecordedEvent
from contracts.reasons import ContractViolation, ReasonCode


def bp(status: str, process: str = "P", version: int = 1, intent: str = "I", **payload: Any) -> LedgerEvent:
    return new_event(
        ProcessBlueprintRecordedEvent,
        tenant_id="t1",
        engine_id="SELENE_OS",
        correlation_id="c",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={
            "process_id": process,
            "blueprint_version": version,
            "intent_type": intent,
            "status": status,
            "ordered_step_count": 3,
            "confirmation_step_count": 1,
            "simulation_requirements_hash": "h",
            "reason_code": "R",
            **payload,
        },
    )


def row(status: str, process: str = "P", version: int = 1) -> Row:
    return {"intent_type": "I", "process_id": process, "blueprint_version": version, "status": status}


@pytest.mark.parametrize(
    ("current", "event", "applied"),
    [
        # absent row
        (None, bp("ACTIVE"), True),
        (None, bp("DRAFT"), True),
        (None, bp("RETIRED"), False),
        # ACTIVE always wins
        (row("ACTIVE", "Q", 7), bp("ACTIVE"), True),
        # DRAFT: same blueprint and not ACTIVE
        (row("DRAFT"), bp("DRAFT"), True),
        (row("RETIRED"), bp("DRAFT"), True),
        (row("ACTIVE"), bp("DRAFT"), False),
        (row("DRAFT", "P", 2), bp("DRAFT"), False),
        (row("DRAFT", "Q", 1), bp("DRAFT"), False),
        # RETIRED: same blueprint, whatever its status
        (row("ACTIVE"), bp("RETIRED"), True),
        (row("ACTIVE", "P", 2), bp("RETIRED"), False),
    ],
)
def test_upstreams_status_table(current: Row | None, event: LedgerEvent, applied: bool) -> None:
    new = reduce_registry(current, None, event)
    assert (new is not None) == applied
    if new is not None:
        assert (new["process_id"], new["blueprint_version"], new["status"]) == ("P", 1, event.payload.status)  # type: ignore[attr-defined]
        assert new["source_event_id"] == event.event_id


def test_a_blueprint_version_serves_one_intent() -> None:
    holder = {"intent_type": "OTHER"}
    with pytest.raises(Rejection) as info:
        reduce_registry(None, holder, bp("ACTIVE"))
    assert info.value.reason_code == ReasonCode.PBS_PROCESS_VERSION_CONFLICT
    assert reduce_registry(None, {"intent_type": "I"}, bp("ACTIVE")) is not None  # its own intent
    assert reduce_registry(None, holder, bp("RETIRED")) is None  # skipped anyway: nothing to refuse


def test_more_confirmation_steps_than_steps_is_a_contract_violation() -> None:
    with pytest.raises(ContractViolation) as info:
        bp("DRAFT", ordered_step_count=2, confirmation_step_count=3)
    assert info.value.reason_code == ReasonCode.PBS_CONTRACT_VALIDATION_FAILED
