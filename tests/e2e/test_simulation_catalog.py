"""Simulation catalog (seed 000 row 5) end to end on real Kafka and PostgreSQL: AT-SIMCAT-DB-01..04 from the
shared suite (with its typed repositories), then the version rule and the contract's refusals."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.repositories.slice_reads import CurrentReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.settings import Settings
from contracts.simulation_catalog import SLICE, SimulationCatalogEvent, SimulationCatalogEventInput
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, send_raw

pytestmark = pytest.mark.e2e

SIM = "ONB_INVITE_COMMIT"


def catalog(conn: asyncpg.Connection) -> CurrentReader[SimulationCatalogEventInput]:
    """The generic typed reads, bound to this slice by its declaration."""
    return CurrentReader(conn, SLICE, SimulationCatalogEventInput)


def simcat(tenant: str, version: int, status: str, *, key: str | None = None, **payload: Any) -> LedgerEvent:
    return new_event(
        SimulationCatalogEvent,
        tenant_id=tenant,
        engine_id="SELENE_OS",
        correlation_id=f"simcat-{version}-{status}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={
            "simulation_id": SIM,
            "simulation_version": version,
            "simulation_type": "COMMIT",
            "status": status,
            "owning_domain": "ONBOARDING",
            "reads_tables_hash": f"r{version}",
            "writes_tables_hash": f"w{version}",
            "reason_code": "SIMCAT_TEST",
            **payload,
        },
    )


class TestAtSimcatDb(SliceAcceptance):
    """The shared AT-SIMCAT-DB-01..04 (tests/e2e/acceptance.py); the tests below are what is special to it."""

    slice_name = "simulation_catalog"


async def test_highest_version_wins_and_a_version_changes_by_its_later_event(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    events = [
        simcat(tenant, 1, "DRAFT"),
        simcat(tenant, 2, "ACTIVE"),
        simcat(tenant, 1, "DEPRECATED"),  # a lower version: recorded, the row stays at v2
        simcat(tenant, 2, "DISABLED", owning_domain="LINK"),  # same version: the later event wins
    ]
    await publish(topics, events)
    assert (await drain(topics)).result.appended == 4
    reader = catalog(reader_db)
    ledger = await reader.events(tenant, SIM)
    assert [(e.event_uuid, e.payload.simulation_version, e.payload.status) for e in ledger] == [
        (e.event_id, e.payload.simulation_version, e.payload.status)  # type: ignore[attr-defined]
        for e in events
    ]
    current = await reader.current(tenant, SIM)
    assert current is not None
    assert (current.key, current.version, current.payload.status, current.payload.owning_domain) == (
        (SIM,),
        2,
        "DISABLED",
        "LINK",
    )
    assert current.source_event_id == ledger[3].ledger_id
    # The current table omits the hashes; its source event's typed payload has them.
    assert (current.payload.reads_tables_hash, current.publisher_engine_id) == ("r2", "SELENE_OS")
    assert [e.ledger_id for e in await reader.events(tenant, SIM, after_event_id=ledger[1].ledger_id, limit=1)] == [
        ledger[2].ledger_id
    ]
    assert await rebuild_equals_live(topics, [tenant]) == []


BAD_FIELDS = [
    ("status", "RETIRED"),
    ("simulation_type", "ROLLBACK"),
    ("simulation_version", 0),
    ("simulation_id", "x" * 97),
    ("owning_domain", " "),
    ("reads_tables_hash", "h" * 129),
]


async def test_contract_violations_are_dead_lettered_with_the_slice_code(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    records = []
    for i, (field, value) in enumerate(BAD_FIELDS):
        record = encode(simcat(tenant, 1, "DRAFT", simulation_id=f"{SIM}_{i}"))
        doc = json.loads(record.value)
        doc["payload"][field] = value
        records.append(RawRecord("simulation_catalog", record.key, json.dumps(doc).encode(), ""))
    await send_raw(topics, records)
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"SIMCAT_CONTRACT_VALIDATION_FAILED": len(BAD_FIELDS)})
    reader = catalog(reader_db)
    for i in range(len(BAD_FIELDS)):
        assert await reader.events(tenant, f"{SIM}_{i}") == []
        assert await reader.current(tenant, f"{SIM}_{i}") is None
