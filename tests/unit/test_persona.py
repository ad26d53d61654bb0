"""The PH1.PERSONA contract (no I/O): what the publisher refuses and the writer dead-letters, with one codec."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.ledger import Provenance
from consumers.projections import LEDGER_TABLES, PROJECTIONS
from contracts.codec import Decoder, encode
from contracts.envelope import new_event
from contracts.persona import PersonaProfileCommitEvent
from contracts.reasons import ContractViolation, ReasonCode


def commit(**changes: Any) -> dict[str, Any]:
    """A valid commit as the JSON document an engine would publish, with ``changes`` applied."""
    event = new_event(
        PersonaProfileCommitEvent,
        tenant_id="tenant-a",
        engine_id="PH1.PERSONA",
        correlation_id="corr-1",
        turn_id="turn-1",
        idempotency_key="persona-1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={
            "reason_code": "PERSONA_PROFILE_SELECTED",
            "user_id": "u-1",
            "device_id": "d-1",
            "style_profile_ref": "style:warm/v3",
            "delivery_policy_ref": "delivery:voice-first",
            "preferences_snapshot_ref": "prefs:u-1@42",
        },
    )
    doc: dict[str, Any] = json.loads(encode(event).value)
    payload = {**doc.pop("payload"), **changes.pop("payload", {})}
    return {**doc, **changes, "payload": {k: v for k, v in payload.items() if v is not None}}


def decode(doc: dict[str, Any]) -> None:
    Decoder(65536).decode(json.dumps(doc).encode())


def test_a_valid_commit_decodes_to_an_audit_row_with_its_columns() -> None:
    event = Decoder(65536).decode(json.dumps(commit()).encode())
    assert isinstance(event, PersonaProfileCommitEvent)
    assert event.kafka_key == b"tenant-a/user:u-1"  # the user's partition: never overtakes its device
    row = LEDGER_TABLES["audit_events"].row(event, Provenance("t", 0, 0))
    assert (row.values["engine_id"], row.values["event_type"]) == ("PH1.PERSONA", "PERSONA_PROFILE_COMMIT")
    assert (row.values["user_id"], row.values["device_id"], row.values["session_id"]) == ("u-1", "d-1", None)
    assert set(json.loads(row.values["payload"])) == {
        "reason_code",
        "user_id",
        "device_id",
        "session_id",
        "style_profile_ref",
        "delivery_policy_ref",
        "preferences_snapshot_ref",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"turn_id": None}, "turn_id"),
        ({"engine_id": "PH1.NLP"}, "engine_id"),
        ({"payload": {"device_id": None}}, "device_id"),
        ({"payload": {"user_id": None}}, "user_id"),
        ({"payload": {"reason_code": None}}, "reason_code"),
        ({"payload": {"style_profile_ref": None}}, "style_profile_ref"),
        ({"payload": {"delivery_policy_ref": "x" * 129}}, "delivery_policy_ref"),
        ({"payload": {"preferences_snapshot_ref": "has spaces"}}, "preferences_snapshot_ref"),
        ({"payload": {"mood": "cheerful"}}, "mood"),
    ],
)
def test_contract_violations_are_refused_with_the_audit_ledgers_code(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ContractViolation) as info:
        decode(commit(**changes))
    assert info.value.reason_code == ReasonCode.EVENT_SCHEMA_INVALID
    assert field in info.value.detail


def test_no_projection_writes_from_a_persona_commit() -> None:
    """PH1.PERSONA owns no current table: only live-only guards look at its events, so nothing to rebuild."""
    event = Decoder(65536).decode(json.dumps(commit()).encode())
    handling = [p for p in PROJECTIONS if p.handles(event)]
    assert handling, "the reference guard must check the commit's user, device and session"
    assert all(p.live_only and not p.writes for p in handling)
