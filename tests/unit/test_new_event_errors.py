"""``new_event`` refuses with the ``ContractViolation`` the writer's decoder gives the same content.

Engines build events with ``new_event`` and publish them; one error type (``ContractViolation``, with the
writer's reason code) must cover both steps, as it does for ``Publisher.parse``. Each case here is fed to
``new_event`` as keyword fields and to the decoder as the JSON of the same fields: same class, same code,
same detail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.audit import AuditRecordedEvent
from contracts.codec import Decoder
from contracts.engine_capability_maps import CapabilityMapPublishedEvent
from contracts.envelope import LedgerEvent, new_event, uuid7
from contracts.reasons import ContractViolation, ReasonCode
from contracts.work_orders import StatusChangedEvent, WorkOrderCanceledEvent

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE: dict[str, Any] = {"tenant_id": "t1", "engine_id": "PH1.X", "correlation_id": "c1", "occurred_at": WHEN}
ECM = {
    "engine_id": "PH1.X",
    "capability_id": "CAP",
    "capability_map_version": 1,
    "reason_code": "PUBLISHED",
    "capability_name": "cap",
    "input_schema": "in",
    "output_schema": "out",
    "allowed_callers": "SELENE_OS_ONLY",
    "side_effects": "NONE",
}

CASES: list[tuple[str, type[LedgerEvent], dict[str, Any], ReasonCode]] = [
    ("cancel without a reason", WorkOrderCanceledEvent, {"payload": {"work_order_id": "w1"}},
     ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED),
    ("status CANCELED without a reason", StatusChangedEvent,
     {"payload": {"work_order_id": "w1", "to_status": "CANCELED"}},
     ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED),
    ("unknown payload field", AuditRecordedEvent,
     {"payload": {"reason_code": "R", "summary": "s", "extra": 1}}, ReasonCode.EVENT_SCHEMA_INVALID),
    ("no tenant", AuditRecordedEvent,
     {"tenant_id": None, "payload": {"reason_code": "R", "summary": "s"}}, ReasonCode.EVENT_TENANT_MISSING),
    ("version 2", AuditRecordedEvent,
     {"schema_version": 2, "payload": {"reason_code": "R", "summary": "s"}}, ReasonCode.EVENT_SCHEMA_INVALID),
    ("capability version 0", CapabilityMapPublishedEvent,
     {"payload": {**ECM, "capability_map_version": 0}}, ReasonCode.ECM_CONTRACT_VALIDATION_FAILED),
]  # fmt: skip


def _json(model: type[LedgerEvent], fields: dict[str, Any]) -> bytes:
    doc = {
        **BASE,
        "event_id": str(uuid7()),
        "schema_version": 1,
        "ledger": model.spec.name,
        "event_type": model.model_fields["event_type"].annotation.__args__[0],  # type: ignore[union-attr]
        **fields,
    }
    doc["occurred_at"] = WHEN.isoformat()
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("name", "model", "fields", "code"), CASES, ids=[c[0] for c in CASES])
def test_new_event_refuses_as_the_decoder_does(
    name: str, model: type[LedgerEvent], fields: dict[str, Any], code: ReasonCode
) -> None:
    with pytest.raises(ContractViolation) as built:
        new_event(model, **{**BASE, **fields})
    with pytest.raises(ContractViolation) as decoded:
        Decoder(65536).decode(_json(model, fields))
    assert built.value.reason_code == decoded.value.reason_code == code
    assert built.value.detail == decoded.value.detail
    assert isinstance(built.value.__cause__, ValidationError)  # pydantic's errors stay reachable


def test_a_valid_event_is_built() -> None:
    event = new_event(AuditRecordedEvent, **BASE, payload={"reason_code": "R", "summary": "s"})
    assert (event.ledger, event.event_type, event.schema_version) == ("audit_events", "AUDIT_RECORDED", 1)
