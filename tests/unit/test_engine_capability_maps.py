"""The engine capability map projection as a pure function, and the ledger's row mapping (no I/O)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.ledger import Provenance, event_from_row
from consumers.projections import wiring
from consumers.projections.base import Rejection, RowView
from consumers.projections.kinds import LatestPerKeyProjection
from consumers.tables import Row
from contracts.codec import Decoder, encode
from contracts.engine_capability_maps import (
    CapabilityMapActivatedEvent,
    CapabilityMapDeprecatedEvent,
    CapabilityMapPublishedEvent,
)
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation, ReasonCode

# The slice is a declaration (contracts/engine_capability_maps.py, a "ledger + current" slice): these tests
# hold the generic kind to the seed's rules as that declaration instantiates it.
_WIRING = wiring("engine_capability_maps")
ENGINE_CAPABILITY_MAPS_TABLE = _WIRING.tables[0]
_PROJECTION = _WIRING.projections[0]
assert isinstance(_PROJECTION, LatestPerKeyProjection)
ENGINE_CAPABILITY_MAPS_CURRENT = _PROJECTION.table
reduce_current = _PROJECTION.reduce

MODELS = {
    "PUBLISHED": CapabilityMapPublishedEvent,
    "ACTIVE": CapabilityMapActivatedEvent,
    "DEPRECATED": CapabilityMapDeprecatedEvent,
}


def ecm(
    status: str, version: int, *, output: str = "Result<id, StorageError>", publisher: str = "SELENE_OS"
) -> LedgerEvent:
    return new_event(
        MODELS[status],
        tenant_id="tenant-a",
        engine_id=publisher,
        correlation_id="gov-1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={
            "engine_id": "SELENE_OS_CORE_TABLES",
            "capability_id": "OS_WORK_ORDER_LEDGER_APPEND",
            "capability_map_version": version,
            "reason_code": "ECM_GOVERNANCE_OK",
            "capability_name": "Append work order ledger event",
            "input_schema": "WorkOrderLedgerEventInput",
            "output_schema": output,
            "allowed_callers": "SELENE_OS_ONLY",
            "side_effects": "DECLARED (DB_WRITE)",
        },
    )


def fold(events: list[LedgerEvent]) -> Row | None:
    current: Row | None = None
    for e in events:
        current = reduce_current(current, e) or current
    return current


def test_first_event_creates_the_route_with_its_status_and_both_engines() -> None:
    e = ecm("PUBLISHED", 1)
    row = reduce_current(None, e)
    assert row is not None
    assert (row["engine_id"], row["publisher_engine_id"]) == ("SELENE_OS_CORE_TABLES", "SELENE_OS")
    assert (row["capability_map_version"], row["status"], row["source_event_id"]) == (1, "PUBLISHED", e.event_id)
    assert row["side_effects"] == "DECLARED (DB_WRITE)"


def test_same_version_latest_transition_wins() -> None:
    published, activated, deprecated = ecm("PUBLISHED", 1), ecm("ACTIVE", 1), ecm("DEPRECATED", 1)
    row = fold([published, activated])
    assert row is not None and (row["status"], row["source_event_id"]) == ("ACTIVE", activated.event_id)
    row = fold([published, activated, deprecated])
    assert row is not None and (row["status"], row["source_event_id"]) == ("DEPRECATED", deprecated.event_id)


def test_newer_version_replaces_older_version_is_history_only() -> None:
    v2 = ecm("ACTIVE", 2, output="Result<v2>")
    current = fold([ecm("ACTIVE", 1), v2])
    assert current is not None and (current["capability_map_version"], current["output_schema"]) == (2, "Result<v2>")
    # Deprecating v1 after v2 is active is recorded in the ledger but leaves the current route alone.
    assert reduce_current(current, ecm("DEPRECATED", 1)) is None
    assert reduce_current(current, ecm("PUBLISHED", 1, output="anything")) is None


def test_a_versions_route_cannot_change() -> None:
    current = reduce_current(None, ecm("PUBLISHED", 3))
    with pytest.raises(Rejection) as info:
        reduce_current(current, ecm("ACTIVE", 3, output="Result<something else>"))
    assert info.value.reason_code == ReasonCode.ECM_VERSION_ROUTE_CONFLICT


def test_another_publisher_may_transition_the_same_route() -> None:
    current = reduce_current(None, ecm("PUBLISHED", 1, publisher="SELENE_OS_CORE_TABLES"))
    row = reduce_current(current, ecm("ACTIVE", 1, publisher="SELENE_OS"))
    assert row is not None and (row["status"], row["publisher_engine_id"]) == ("ACTIVE", "SELENE_OS")


@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from(sorted(MODELS))), min_size=1, max_size=30))
def test_current_is_the_latest_event_of_the_highest_version(steps: list[tuple[int, str]]) -> None:
    """Whatever the order, the route follows the highest version, and within it the latest event."""
    events = [ecm(status, version, output=f"Result<v{version}>") for version, status in steps]
    row = fold(events)
    top = max(v for v, _ in steps)
    last, status = [(e, s) for e, (v, s) in zip(events, steps, strict=True) if v == top][-1]
    assert row is not None
    assert (row["capability_map_version"], row["status"], row["source_event_id"]) == (top, status, last.event_id)


def test_projection_stages_changes_and_a_rejection_leaves_none() -> None:
    projection = _PROJECTION
    first = ecm("PUBLISHED", 1)
    view = RowView({})
    projection.apply(view, first)
    view.commit_event()
    with pytest.raises(Rejection):
        projection.apply(view, ecm("ACTIVE", 1, output="other"))
    view.discard_event()
    changes = view.changes()[ENGINE_CAPABILITY_MAPS_CURRENT]
    assert [r["source_event_id"] for r in changes.values() if r] == [first.event_id]


def test_ledger_row_keeps_both_engines_and_round_trips() -> None:
    e = ecm("ACTIVE", 4)
    row = ENGINE_CAPABILITY_MAPS_TABLE.row(e, Provenance("t.os_process.engine_capability_maps", 1, 7))
    assert row.values["engine_id"] == "SELENE_OS_CORE_TABLES"
    assert row.values["publisher_engine_id"] == "SELENE_OS"
    assert ENGINE_CAPABILITY_MAPS_TABLE.scope(row) is None  # no idempotency key, no scoped dedupe
    names = [c for c, _ in ENGINE_CAPABILITY_MAPS_TABLE.columns]
    assert names.count("engine_id") == 1 and "publisher_engine_id" in names
    assert event_from_row(ENGINE_CAPABILITY_MAPS_TABLE, row.values) == e


def test_scope_is_the_seeds_key() -> None:
    e = ecm("PUBLISHED", 2).model_copy(update={"idempotency_key": "k-1", "event_id": uuid.uuid4()})
    row = ENGINE_CAPABILITY_MAPS_TABLE.row(e, Provenance("t", 0, 0))
    assert ENGINE_CAPABILITY_MAPS_TABLE.scope(row) == (
        "tenant-a",
        "SELENE_OS_CORE_TABLES",
        "OS_WORK_ORDER_LEDGER_APPEND",
        2,
        "k-1",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"capability_map_version": 0}, "capability_map_version"),
        ({"capability_id": "lower_case"}, "capability_id"),
        ({"side_effects": "DB_WRITE"}, "side_effects"),
        ({"allowed_callers": ""}, "allowed_callers"),
        ({"route": "somewhere"}, "route"),
    ],
)
def test_contract_violations_carry_the_slices_reason_code(change: dict[str, object], field: str) -> None:
    doc = json.loads(encode(ecm("PUBLISHED", 1)).value)
    doc["payload"].update(change)
    with pytest.raises(ContractViolation) as info:
        Decoder(65536).decode(json.dumps(doc).encode())
    assert info.value.reason_code == ReasonCode.ECM_CONTRACT_VALIDATION_FAILED
    assert field in info.value.detail
