"""The generic typed reads and appends a ``ledger_current`` slice gets from its declaration (no I/O): the
idempotency scope read from the event, the read queries built from declared names, payloads read back typed.
tests/e2e/test_simulation_catalog.py and test_engine_capability_maps.py run them on PostgreSQL and Kafka."""

from __future__ import annotations

import dataclasses
from typing import cast

import asyncpg
import pytest

from consumers.repositories.slice_reads import CurrentReader, LedgerReader
from contracts.codec import canonical_payload
from contracts.engine_capability_maps import ENGINE_CAPABILITY_MAPS, SLICE, EngineCapabilityMapEventInput
from contracts.reasons import ContractViolation, ReasonCode
from contracts.simulation_catalog import SLICE as SIMCAT
from contracts.simulation_catalog import SimulationCatalogEventInput, examples
from contracts.slice import ExampleContext
from producers.ledger_writes import LedgerAppends, LedgerWrites
from tests.unit.test_engine_capability_maps import ecm

NO_CONN = cast(asyncpg.Connection, None)  # building a reader runs no query
APPENDS = LedgerAppends(cast(LedgerWrites, None), ENGINE_CAPABILITY_MAPS)


def test_the_scope_is_read_from_the_payload_before_the_envelope() -> None:
    event = ecm("ACTIVE", 3, publisher="SOME_PUBLISHER").model_copy(update={"idempotency_key": "k1"})
    # engine_id is the payload's (the mapped engine), not the envelope's publisher; the key is the envelope's.
    assert APPENDS.scope(event) == ("SELENE_OS_CORE_TABLES", "OS_WORK_ORDER_LEDGER_APPEND", 3, "k1")


def test_an_event_of_another_ledger_is_refused_with_the_ledgers_code() -> None:
    ctx = ExampleContext("tenant-a", "u", "d", "s", 1, ecm("ACTIVE", 1).occurred_at)
    with pytest.raises(ContractViolation) as info:
        APPENDS.scope(examples(ctx)[0])
    assert info.value.reason_code == ReasonCode.ECM_CONTRACT_VALIDATION_FAILED


def test_reads_are_built_from_the_declaration() -> None:
    reader = CurrentReader(NO_CONN, SLICE, EngineCapabilityMapEventInput)
    current = reader.queries["current"]
    assert "FROM os_process.engine_capability_maps_current c JOIN os_process.engine_capability_maps l" in current
    assert current.endswith("WHERE c.tenant_id = $1 AND c.engine_id = $2 AND c.capability_id = $3")
    assert "c.status" in current  # a derived column
    assert set(reader.queries) == {"current", "page:0", "page_after:0", "page:1", "page_after:1"}
    events = reader.ledger.queries
    assert "publisher_engine_id AS engine_id" in events["events:2"]
    assert "AND engine_id = $2 AND capability_id = $3 AND engine_capability_map_event_id > $4" in events["events:2"]


def test_payloads_come_back_as_their_event_types_model() -> None:
    reader = LedgerReader(NO_CONN, SLICE, EngineCapabilityMapEventInput)
    event = ecm("ACTIVE", 2)
    payload = reader.payloads.read("CAPABILITY_MAP_ACTIVATED", canonical_payload(event))
    assert payload == event.payload and payload.status == "ACTIVE"  # the event type's class constant


def test_a_reader_refuses_a_payload_type_or_a_name_that_does_not_fit() -> None:
    with pytest.raises(TypeError, match="do not carry a SimulationCatalogEventInput"):
        LedgerReader(NO_CONN, SLICE, SimulationCatalogEventInput)
    current = dataclasses.replace(SIMCAT.current[0], table="os_process.x; DROP TABLE y")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        CurrentReader(NO_CONN, dataclasses.replace(SIMCAT, current=(current,)), SimulationCatalogEventInput)
