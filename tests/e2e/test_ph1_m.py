"""PH1.M end to end on real Kafka and PostgreSQL: the shared AT-M-DB-01..04, then what upstream's tests add
(the same key and idempotency key under two users; forget, rebuild, and a keyed retry after the rebuild) and
the sheet's failure classes (unknown user, contract), each dead-lettered with its reason, nothing appended."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.rebuild import Rebuilder
from consumers.repositories.ph1_m import MemoryReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_m import MemoryForgottenEvent, MemoryStoredEvent
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live, send_raw

pytestmark = pytest.mark.e2e


class TestAtMDb(SliceAcceptance):
    slice_name = "ph1_m"


def user(tenant: str, name: str) -> list[LedgerEvent]:
    return onboarding(ExampleContext(tenant, name, f"d-{name}", f"s-{name}", 0, datetime.now(UTC)))


def memory(tenant: str, user_id: str, key: str, value: str | None, kind: str = "STORED", **env: Any) -> LedgerEvent:
    payload: dict[str, Any] = {"user_id": user_id, "memory_key": key, "kind": kind, "layer": "LONG_TERM"}
    payload |= {"sensitivity_flag": "LOW", "confidence": "HIGH", "consent": "NOT_REQUESTED"}
    payload |= {"reason_code": f"M_{kind}", "use_policy": "ALWAYS_USABLE"}
    if value is not None:
        payload["verbatim"] = value
    model = MemoryForgottenEvent if kind == "FORGOTTEN" else MemoryStoredEvent
    common = {"engine_id": "PH1.M", "correlation_id": f"m-{user_id}", "occurred_at": datetime.now(UTC)}
    return new_event(model, tenant_id=tenant, payload=payload, **common | env)


async def test_at_m_db_01_same_key_and_idempotency_key_under_two_users(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    key = {"idempotency_key": "same-idempotency"}
    alice, bob = (
        memory(a, f"{a}:user_1", "profile:preferred_name", "Alice", **key),
        memory(b, f"{b}:user_1", "profile:preferred_name", "Bob", **key),
    )
    await publish(topics, [*user(a, f"{a}:user_1"), *user(b, f"{b}:user_1")])
    await drain(topics)  # the users exist before their memories arrive (another topic: no order between them)
    await publish(topics, [alice, bob])
    assert (await drain(topics)).result.appended == 2
    reader = MemoryReader(reader_db)
    for tenant, name in ((a, "Alice"), (b, "Bob")):
        row = await reader.current(tenant, f"{tenant}:user_1", "profile:preferred_name")
        assert row is not None and row.memory_value == {"verbatim": name, "normalized": None}
        assert len(await reader.events(tenant, f"{tenant}:user_1", "profile:preferred_name")) == 1
    assert await reader.current(a, f"{b}:user_1", "profile:preferred_name") is None


async def test_at_m_db_04_forget_rebuild_and_keyed_retry_after_rebuild(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t, u = f"t-{run_id}", f"u-{run_id}"
    lang = memory(t, u, "profile:language", "es-MX", idempotency_key="mem-rebuild-lang")
    name = [memory(t, u, "profile:name", "Ana"), memory(t, u, "profile:name", "Ana P", kind="UPDATED")]
    forget = memory(t, u, "profile:name", None, kind="FORGOTTEN")
    await publish(topics, user(t, u))
    await drain(topics)
    await publish(topics, [*name, lang, forget])
    assert (await drain(topics)).result.appended == 4
    reader = MemoryReader(reader_db)
    before = await reader.of_user(t, u, active_only=False)
    assert [(m.memory_key, m.active, m.memory_value, m.expires_at) for m in before] == [
        ("profile:language", True, {"verbatim": "es-MX", "normalized": None}, None),
        ("profile:name", False, None, None),
    ]
    assert [m.memory_key for m in await reader.of_user(t, u)] == ["profile:language"]
    assert (await Rebuilder(topics, tenant=t).run(verify=False, apply=True)).applied
    assert await reader.of_user(t, u, active_only=False) == before
    retry = new_event(MemoryStoredEvent, **lang.model_dump(exclude={"event_id"}))
    await publish(topics, [retry])
    assert (await drain(topics)).result.deduplicated == 1
    assert [e.event_uuid for e in await reader.events(t, u, "profile:language")] == [lang.event_id]
    assert await rebuild_equals_live(topics, [t]) == []


async def test_unknown_user_and_contract_violations_are_dead_lettered(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    nobody = memory(a, f"nobody-{run_id}", "k", "v")
    other = memory(a, f"{b}:user_1", "k", "v")  # bob is tenant b's user
    forged = json.loads(encode(memory(a, f"{a}:user_1", "k", None, kind="FORGOTTEN")).value)
    forged["payload"]["verbatim"] = "what was forgotten"
    raw = RawRecord("memory_ledger", f"{a}/memory:{a}:user_1:k".encode(), json.dumps(forged).encode(), "")
    await publish(topics, [*user(a, f"{a}:user_1"), *user(b, f"{b}:user_1")])
    await drain(topics)
    await publish(topics, [nobody, other])
    await send_raw(topics, [raw])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {ReasonCode.REFERENCE_UNKNOWN: 2, ReasonCode.M_CONTRACT_VALIDATION_FAILED: 1}
    )
    rows = await operator_db.fetch("SELECT 1 FROM os_core.memory_ledger WHERE tenant_id = ANY($1)", [a, b])
    assert rows == []
