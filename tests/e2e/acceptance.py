"""The seeds' acceptance tests AT-<ENGINE>-DB-01..04, written once and run for every slice from its
declaration, on real Kafka and PostgreSQL (the way eventsourcing's recorder test cases are subclassed per
adapter).

A slice's test module subclasses ``SliceAcceptance`` as ``TestAt<Engine>Db`` (so every test id carries the
seed's name) and names its slice. ``sample(tenant, i)`` gives the events of one independent piece of the
slice's work for one tenant (the events it needs first, then the slice's own), distinct for each ``i``: by
default a fresh user's onboarding (identity, device, session) and the slice's declared ``examples``; a
slice without examples overrides it. Everything else comes from the declaration: which ledgers and event
types are the slice's, its reason codes, its current tables. The module keeps only what is special to the
slice.

- DB-01 tenant isolation: two tenants' rows in every table of the slice; scoped to one tenant (reader and
  writer roles), row-level security shows only its rows; a record whose key claims the other tenant is
  dead-lettered with the ledger's tenant-violation reason and lands nowhere.
- DB-02 append-only: no application role may UPDATE, DELETE or TRUNCATE the slice's ledger rows; the owner
  hits the trigger, which names the ledger's reason code; the rows stand.
- DB-03 idempotency dedupe: the same event again, and a retry with a new event id and the same scoped key
  and content, each land once; the ledger holds one row.
- DB-04 rebuild: current tables rebuilt from the ledger equal live; a damaged live row is found and put
  back by ``rebuild --apply``. A slice without current tables: its ledger rows read back as the events.

A ``ledger_current`` slice also gets its typed repositories from its declaration; ``test_typed_repositories``
writes its examples through ``producers.ledger_writes.LedgerAppends`` and reads them back with
``consumers.repositories.slice_reads.CurrentReader``. Its ``LatestPerKey`` rule and its contract's refusals
are checked from the declaration too, with variants of its first example event (``test_latest_per_key`` and
``test_contract_refusals``): a slice's own module keeps only what no declaration states.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.ledger import event_from_row
from consumers.projections import LEDGER_TABLES, wiring
from consumers.rebuild import Rebuilder
from consumers.repositories.slice_reads import CurrentReader
from consumers.tables import TableSpec
from consumers.verify import verify
from contracts.codec import encode
from contracts.envelope import LedgerEvent, Payload, new_event
from contracts.foundation import DeviceRegisteredEvent, IdentityUpsertedEvent, SessionOpenedEvent
from contracts.reasons import ContractViolation
from contracts.registry import REGISTRY
from contracts.settings import Settings
from contracts.slice import ExampleContext, SliceContract
from producers.ledger_writes import LedgerAppends, LedgerWrites
from producers.publisher import Publisher
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer, send_raw


async def scoped(conn: asyncpg.Connection, tenant: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with conn.transaction():
        await conn.execute(SCOPE, tenant)
        return await conn.fetch(sql, *args)


def onboarding(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user's identity, device and session, as PH1.F and PH1.L publish them."""
    common: dict[str, Any] = {
        "tenant_id": ctx.tenant_id,
        "correlation_id": f"onboard-{ctx.user_id}",
        "occurred_at": ctx.at,
    }
    refs = {"user_id": ctx.user_id, "device_id": ctx.device_id}
    return [
        new_event(
            IdentityUpsertedEvent, engine_id="PH1.F", payload={"reason_code": "ID", "user_id": ctx.user_id}, **common
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
            payload={"reason_code": "SES", "session_id": ctx.session_id, **refs},
            **common,
        ),
    ]


def variant(event: LedgerEvent, **changes: Any) -> LedgerEvent:
    """A new event like ``event`` (new id), its payload changed by ``changes`` and validated again."""
    fields = event.model_dump(exclude={"event_id", "payload"})
    return new_event(type(event), **fields, payload={**event.payload.model_dump(), **changes})


def other_valid(event: LedgerEvent, field_name: str) -> Any | None:
    """Another value of ``field_name`` that the event's model accepts (another enum member, a string with its
    last character changed, the next integer), or None when none of these is valid."""
    value = getattr(event.payload, field_name)
    prop = type(event.payload).model_json_schema()["properties"][field_name]
    candidates: list[Any] = [v for v in prop.get("enum", []) if v != value]
    if isinstance(value, str) and value:
        candidates += [value[:-1] + ("Y" if value[-1] == "X" else "X"), value[:-1] + ("2" if value[-1] == "1" else "1")]
    elif isinstance(value, int) and not isinstance(value, bool):
        candidates += [value + 1, value - 1]
    for candidate in candidates:
        try:
            variant(event, **{field_name: candidate})
        except ContractViolation:
            continue
        return candidate
    return None


def refused_value(model: type[Payload], valid: dict[str, Any], field_name: str) -> Any:
    """A JSON value of ``field_name`` that ``model`` refuses, found from its JSON Schema (outside the enum, over
    maxLength, under minLength, beyond minimum/maximum, off the pattern), else a value of the wrong type."""
    prop, value = model.model_json_schema()["properties"].get(field_name, {}), valid[field_name]
    candidates: list[Any] = []
    if "enum" in prop:
        candidates.append("NOT_" + "_".join(map(str, prop["enum"])))
    if "maxLength" in prop:
        candidates.append("x" * (prop["maxLength"] + 1))
    if prop.get("minLength", 0) > 0:
        candidates.append("")
    candidates += [prop[k] + d for k, d in (("minimum", -1), ("maximum", 1)) if k in prop]
    if "pattern" in prop and isinstance(value, str):
        candidates += [f"{value} ", f"{value}\x01", value.lower()]
    for candidate in [*candidates, [value]]:
        try:
            model.model_validate_json(json.dumps({**valid, field_name: candidate}))
        except ValueError:
            return candidate
    raise AssertionError(f"no refused value found for {model.__name__}.{field_name}")


class SliceAcceptance:
    """AT-<ENGINE>-DB-01..04 for the slice named ``slice_name``."""

    slice_name: ClassVar[str]

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        examples = self.contract.examples
        assert examples is not None, f"slice {self.slice_name} declares no examples: override sample()"
        ctx = ExampleContext(tenant, f"u-{tenant}-{i}", f"d-{tenant}-{i}", f"s-{tenant}-{i}", i, datetime.now(UTC))
        return [*onboarding(ctx), *examples(ctx)]

    # -- what the declaration says ----------------------------------------------------------------------

    @property
    def contract(self) -> SliceContract:
        return REGISTRY.slice(self.slice_name)

    def own(self, events: list[LedgerEvent]) -> list[LedgerEvent]:
        """The events of ``events`` that are the slice's (not the ones it needs first)."""
        return [e for e in events if type(e) in self.contract.events]

    def event_types(self) -> dict[str, set[str]]:
        """Ledger -> the slice's event types on it."""
        found: dict[str, set[str]] = {}
        for model in self.contract.events:
            found.setdefault(model.spec.name, set()).add(model.event_type_name)
        return found

    def current_tables(self) -> list[TableSpec]:
        return [t for p in wiring(self.slice_name).projections for t in p.writes]

    def _rows_sql(self, ledger: str, select: str) -> str:
        table = LEDGER_TABLES[ledger].spec.table
        return f"SELECT {select} FROM {table} WHERE tenant_id = ANY($1) AND event_type = ANY($2) ORDER BY 1"

    # -- the four tests -----------------------------------------------------------------------------------

    async def test_db_01_tenant_isolation(
        self, topics: Settings, reader_db: asyncpg.Connection, writer_db: asyncpg.Connection, run_id: str
    ) -> None:
        a, b = f"ta-{run_id}", f"tb-{run_id}"
        events_a, events_b = self.sample(a, 0), self.sample(b, 0)
        await publish(topics, [*events_a, *events_b])
        forged = self.own(self.sample(a, 1))[-1]
        claimed = f"{b}/{forged.aggregate_id}".encode()
        await send_raw(topics, [RawRecord(forged.ledger, claimed, encode(forged).value, "")])
        stats = await drain(topics)
        assert stats.result.dead_lettered == Counter({forged.spec.tenant_violation: 1})
        for ledger, types in self.event_types().items():
            sql = self._rows_sql(ledger, "tenant_id, event_uuid")
            for conn in (reader_db, writer_db):
                rows = await scoped(conn, a, sql, [a, b], sorted(types))
                assert {r["tenant_id"] for r in rows} == {a}, (ledger, conn)
                assert forged.event_id not in {r["event_uuid"] for r in rows}
            unscoped = await writer_db.fetch(sql, [a, b], sorted(types))
            assert unscoped == [], "an unset tenant scope must show nothing"
        for table in self.current_tables():
            # The reader sees only its tenant. (The writer may read other tenants' rows of tables with global
            # keys, to refuse a takeover, but never change them.)
            rows = await scoped(reader_db, a, f"SELECT tenant_id FROM {table.name} WHERE tenant_id = ANY($1)", [a, b])
            assert rows and {r["tenant_id"] for r in rows} == {a}, table.name
            assert await reader_db.fetch(f"SELECT 1 FROM {table.name} WHERE tenant_id = ANY($1)", [a, b]) == []
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await scoped(writer_db, a, f"UPDATE {table.name} SET tenant_id = $1 WHERE tenant_id = $2", b, a)
            key = table.key[-1]
            changed = await scoped(
                writer_db, a, f"UPDATE {table.name} SET {key} = {key} WHERE tenant_id = $1 RETURNING 1", b
            )
            assert changed == [], table.name

    async def test_db_02_append_only(
        self, topics: Settings, writer_db: asyncpg.Connection, owner_db: asyncpg.Connection, run_id: str
    ) -> None:
        tenant = f"t-{run_id}"
        await publish(topics, self.sample(tenant, 0))
        assert not (await drain(topics)).result.dead_lettered
        for ledger, types in self.event_types().items():
            spec = LEDGER_TABLES[ledger].spec
            where = "tenant_id = $1 AND event_type = ANY($2)"
            before = await scoped(
                owner_db, tenant, f"SELECT * FROM {spec.table} WHERE {where} ORDER BY 1", tenant, sorted(types)
            )
            assert before, ledger
            statements = [
                f"UPDATE {spec.table} SET correlation_id = 'changed' WHERE {where}",
                f"DELETE FROM {spec.table} WHERE {where}",
            ]
            for sql in statements:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await scoped(writer_db, tenant, sql, tenant, sorted(types))
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await writer_db.execute(f"TRUNCATE {spec.table}")
            for sql, args in [
                *((s, (tenant, sorted(types))) for s in statements),
                (f"TRUNCATE {spec.table} CASCADE", ()),
            ]:
                with pytest.raises(asyncpg.PostgresError) as info:
                    await scoped(owner_db, tenant, sql, *args)
                assert (info.value.sqlstate, info.value.detail) == ("SLA01", spec.append_only_violation)
            after = await scoped(
                owner_db, tenant, f"SELECT * FROM {spec.table} WHERE {where} ORDER BY 1", tenant, sorted(types)
            )
            assert after == before

    async def test_db_03_idempotency_dedupe(self, topics: Settings, writer_db: asyncpg.Connection, run_id: str) -> None:
        tenant = f"t-{run_id}"
        *before, last = self.sample(tenant, 0)
        assert self.own([last]) == [last]
        first = new_event(type(last), **{**last.model_dump(exclude={"event_id"}), "idempotency_key": f"k-{run_id}"})
        retry = new_event(type(first), **first.model_dump(exclude={"event_id"}))  # new id, same key and content
        await publish(topics, [*before, first, first, retry])
        stats = await drain(topics)
        assert not stats.result.dead_lettered
        assert stats.result.deduplicated == 2
        spec = first.spec
        rows = await scoped(
            writer_db,
            tenant,
            f"SELECT event_uuid FROM {spec.table} WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant,
            first.idempotency_key,
        )
        assert [r["event_uuid"] for r in rows] == [first.event_id]

    async def test_db_04_rebuild_current_from_ledger(
        self, topics: Settings, writer_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
    ) -> None:
        a, b = f"ta-{run_id}", f"tb-{run_id}"
        published = [*self.sample(a, 0), *self.sample(a, 1), *self.sample(b, 0)]
        await publish(topics, published)
        assert not (await drain(topics)).result.dead_lettered
        assert await rebuild_equals_live(topics, [a, b]) == []
        # and the hash chains the writer extended verify (a jsonb column once broke them: key order)
        report = await verify(operator_db, LEDGER_TABLES, None, topic_prefix=topics.topic_prefix)
        assert report.problems == []
        tables = self.current_tables()
        if not tables:
            # No current state: the ledger rows are the record, and they read back as the events published.
            mine = self.own(published)
            for ledger, types in self.event_types().items():
                sql = self._rows_sql(ledger, "*")
                rows = await scoped(operator_db, a, sql, [a, b], sorted(types))
                back = {e.event_id: e for e in (event_from_row(LEDGER_TABLES[ledger], dict(r)) for r in rows)}
                assert [back[e.event_id] for e in mine if e.tenant_id == a and e.ledger == ledger] == [
                    e for e in mine if e.tenant_id == a and e.ledger == ledger
                ]
            return
        # Damage live: delete the tenant's rows of each current table, or, where other rows reference them,
        # move a timestamp of theirs by a second.
        damaged = set()
        for table in reversed(tables):
            stamp = next((c for c, t in table.columns if t == "timestamptz" and c not in table.key), None)
            for sql in (
                f"DELETE FROM {table.name} WHERE tenant_id = $1",
                f"UPDATE {table.name} SET {stamp} = {stamp} - interval '1 second' WHERE tenant_id = $1"
                f" AND {stamp} IS NOT NULL",
            ):
                try:
                    async with writer_db.transaction():
                        await writer_db.execute(SCOPE, a)
                        status = await writer_db.execute(sql, a)
                except asyncpg.ForeignKeyViolationError:
                    continue
                assert not status.endswith(" 0"), (table.name, sql)
                damaged.add(table.name)
                break
        assert damaged
        found = await rebuild_equals_live(topics, [a])
        assert damaged <= {f.split()[1].rstrip(":") for f in found}, found
        result = await Rebuilder(topics, tenant=a).run(verify=False, apply=True)
        assert result.applied
        assert await rebuild_equals_live(topics, [a, b]) == []

    async def test_typed_repositories(self, topics: Settings, reader_db: asyncpg.Connection, run_id: str) -> None:
        """Appends return each event's ledger id (the original's on a replay); the ledger rows and the current
        row read back typed: the row follows the latest event of the highest version of its key."""
        contract = self.contract
        if contract.kind != "ledger_current":
            pytest.skip("only a ledger_current slice's repositories derive from its declaration")
        tenant, cols, decl = f"t-{run_id}", contract.ledgers[0], contract.current[0]
        events = self.sample(tenant, 0)
        mine = [e for e in self.own(events) if e.spec == cols.spec]
        mine[0] = new_event(type(mine[0]), **{**mine[0].model_dump(exclude={"event_id"}), "idempotency_key": run_id})
        await publish(topics, [e for e in events if e not in self.own(events)])  # what the slice needs first
        async with running_writer(topics), Publisher(topics) as publisher:
            appends = LedgerAppends(LedgerWrites(publisher, reader_db, timeout=60), cols.spec)
            written = [await appends.append(e) for e in mine]
            replay = await appends.append(new_event(type(mine[0]), **mine[0].model_dump(exclude={"event_id"})))
        assert [w.outcome for w in written] == ["APPENDED"] * len(mine)
        assert (replay.event_id, replay.outcome) == (written[0].event_id, "IDEMPOTENCY_REPLAY")
        reader = CurrentReader(reader_db, contract, cols.payload)
        latest: dict[tuple[Any, ...], tuple[Any, int, LedgerEvent]] = {}
        for event, w in zip(mine, written, strict=True):
            key = tuple(getattr(event.payload, k) for k in decl.key)
            row = next(r for r in await reader.events(tenant, *key) if r.ledger_id == w.event_id)
            assert (row.event_uuid, row.engine_id, row.payload) == (event.event_id, event.engine_id, event.payload)
            version = getattr(event.payload, decl.version)
            if key not in latest or version >= latest[key][0]:
                latest[key] = (version, w.event_id, event)
        for key, (version, ledger_id, event) in latest.items():
            current = await reader.current(tenant, *key)
            assert current is not None and (current.key, current.version) == (key, version)
            assert (current.source_event_id, current.payload) == (ledger_id, event.payload)

    async def test_latest_per_key(self, topics: Settings, reader_db: asyncpg.Connection, run_id: str) -> None:
        """The ``LatestPerKey`` rule on variants of the slice's first example: a higher version replaces the row,
        a lower one is recorded and leaves it, within a version the later event wins, unless it changes an
        ``immutable_within_version`` field (refused with the declared conflict code); rebuild equals live."""
        contract = self.contract
        if contract.kind != "ledger_current":
            pytest.skip("only a ledger_current slice declares a LatestPerKey rule")
        tenant, cols, decl = f"t-{run_id}", self.contract.ledgers[0], self.contract.current[0]
        events = self.sample(tenant, 0)
        base = next(e for e in self.own(events) if e.spec == cols.spec)
        v = getattr(base.payload, decl.version)
        fixed = {*decl.key, decl.version, *decl.immutable_within_version}
        free = sorted((f for f in type(base.payload).model_fields if f not in fixed), key=lambda f: f in decl.omit)
        field, value = next((f, x) for f in free if (x := other_valid(base, f)) is not None)
        low, high = variant(base, **{decl.version: v}), variant(base, **{decl.version: v + 1})
        later = variant(high, **{field: value})  # same version: the later event wins
        lower = variant(low, **{field: value})  # last, yet only recorded: the row stays at v + 1
        refused: list[LedgerEvent] = []
        for f in decl.immutable_within_version:
            if (x := other_valid(later, f)) is not None:
                refused = [variant(later, **{f: x})]
                break
        assert bool(refused) == bool(decl.immutable_within_version), "no valid change of an immutable field"
        await publish(topics, [*(e for e in events if e not in self.own(events)), low, high, later, lower, *refused])
        stats = await drain(topics)
        assert stats.result.dead_lettered == Counter({decl.conflict: 1} if refused else {})
        reader = CurrentReader(reader_db, contract, cols.payload)
        key = tuple(getattr(base.payload, k) for k in decl.key)
        ledger = await reader.events(tenant, *key)
        assert [r.event_uuid for r in ledger] == [e.event_id for e in (low, high, later, lower)]
        current = await reader.current(tenant, *key)
        assert current is not None and (current.version, current.payload) == (v + 1, later.payload)
        assert current.source_event_id == ledger[2].ledger_id
        assert await rebuild_equals_live(topics, [tenant]) == []

    async def test_contract_refusals(self, topics: Settings, reader_db: asyncpg.Connection, run_id: str) -> None:
        """Each payload field set to a value its model refuses (found from the JSON Schema): the record is
        dead-lettered with the ledger's contract code and nothing of it is written."""
        contract = self.contract
        if contract.kind != "ledger_current":
            pytest.skip("only a ledger_current slice's ledger and current table are checked here")
        tenant, cols = f"t-{run_id}", contract.ledgers[0]
        records = []
        for i, field in enumerate(cols.payload.model_fields):
            event = next(e for e in self.own(self.sample(tenant, i)) if e.spec == cols.spec)
            record = encode(event)
            doc = json.loads(record.value)
            doc["payload"][field] = refused_value(type(event.payload), doc["payload"], field)
            records.append(RawRecord(event.ledger, record.key, json.dumps(doc).encode(), ""))
        await send_raw(topics, records)
        stats = await drain(topics)
        assert stats.result.dead_lettered == Counter({cols.spec.contract_invalid: len(records)})
        assert stats.result.appended == 0
        for table in [cols.spec.table, *(c.table for c in contract.current)]:
            sql = f"SELECT count(*) AS n FROM {table} WHERE tenant_id = $1"
            assert (await scoped(reader_db, tenant, sql, tenant))[0]["n"] == 0, table
