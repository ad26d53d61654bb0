"""Typed reads of any declared slice's ledger and current table, derived from its declaration.

A ``ledger_current`` slice needs no reader of its own: ``LedgerReader`` pages its ledger (by a prefix of its
current table's key), ``CurrentReader`` reads its current rows. Each row comes back with its payload
validated from the stored payload JSON into the event type's model, so fields kept only in the JSON are
there too and the caller's type checker sees the fields of ``P``. Query text is built once per reader from
the declaration's table and column names (checked to be plain identifiers), never from input.
Tenant-scoped like every repository (``consumers.repositories``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from consumers.repositories import one_tenant
from consumers.repositories.audit import MAX_PAGE, check_page
from contracts.envelope import Payload, unmarked
from contracts.slice import LatestPerKey, LedgerColumns, SliceContract

P = TypeVar("P", bound=Payload)

_IDENT = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def _ident(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier")
    return name


@dataclass(frozen=True, slots=True)
class LedgerRecord(Generic[P]):
    """A ledger row: its id, the envelope's columns, when it was appended, and its typed payload.
    ``engine_id`` is the publishing engine, whichever column the ledger keeps it in."""

    ledger_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    event_type: str
    schema_version: int
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime
    payload: P


@dataclass(frozen=True, slots=True)
class CurrentRecord(Generic[P]):
    """A current row (``LatestPerKey``): its key after the tenant, version and derived columns as stored, who
    wrote it when, and the typed payload of the event it follows (``source_event_id``)."""

    tenant_id: str
    key: tuple[Any, ...]
    version: int
    derived: Mapping[str, Any]
    publisher_engine_id: str
    updated_at: datetime
    source_event_id: int
    payload: P


class _Payloads(Generic[P]):
    """Stored payload JSON -> the model of its event type, which must be a ``P``."""

    def __init__(self, contract: SliceContract, cols: LedgerColumns, payload: type[P]) -> None:
        self.models = {m.event_type_name: m.payload_model for m in contract.events if m.spec == cols.spec}
        if stray := sorted(n for n, m in self.models.items() if not issubclass(m, payload)):
            raise TypeError(f"{cols.spec.name}: event types {stray} do not carry a {payload.__name__}")

    def read(self, event_type: str, stored: str | Mapping[str, Any]) -> P:
        doc = json.loads(stored) if isinstance(stored, str) else stored
        with unmarked():  # read back, never published
            return self.models[event_type].model_validate(doc, strict=False)  # type: ignore[return-value]  # a P


class LedgerReader(Generic[P]):
    """Typed reads of one ledger of a slice, on a reader-role connection, in append order (its id)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        contract: SliceContract,
        payload: type[P],
        *,
        by: tuple[str, ...] = (),
        ledger: str | None = None,
    ) -> None:
        """``by``: payload fields (stored as columns) that ``events`` filters on, a prefix at a time; for a
        ``ledger_current`` slice its current table's key. ``ledger``: which of the slice's (its first)."""
        self.conn = conn
        cols = next(c for c in contract.ledgers if ledger in (None, c.spec.name))
        self.payloads = _Payloads(contract, cols, payload)
        spec = cols.spec
        publisher = dict(cols.renamed_envelope).get("engine_id", "engine_id")
        envelope = (
            f"event_uuid, tenant_id, {_ident(publisher)} AS engine_id, event_type, schema_version, correlation_id, "
            "turn_id, idempotency_key, occurred_at, recorded_at, payload"
        )
        table, id_column = _ident(spec.table), _ident(spec.id_column)
        filters = [_ident(cols.column(f)) for f in by]
        #: ``events:<n>``: the tenant's rows with the first n ``by`` columns equal, a page after an id.
        self.queries: dict[str, str] = {}
        for n in range(len(filters) + 1):
            where = "".join(f" AND {c} = ${i}" for i, c in enumerate(filters[:n], start=2))
            self.queries[f"events:{n}"] = (
                f"SELECT {id_column} AS ledger_id, {envelope} FROM {table} WHERE tenant_id = $1{where} "
                f"AND {id_column} > ${n + 2} ORDER BY {id_column} LIMIT ${n + 3}"
            )

    async def events(
        self, tenant_id: str, *key: Any, after_event_id: int = 0, limit: int = MAX_PAGE
    ) -> list[LedgerRecord[P]]:
        """The tenant's rows whose ``by`` columns start with ``key``, in append order, a page after
        ``after_event_id`` (keyset)."""
        check_page(limit)
        query = self.queries.get(f"events:{len(key)}")
        if query is None:
            raise ValueError(f"at most {len(self.queries) - 1} key values, got {len(key)}")
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(query, tenant_id, *key, after_event_id, limit)
        return [self._record(r) for r in rows]

    def _record(self, row: asyncpg.Record) -> LedgerRecord[P]:
        values = dict(row)
        payload = self.payloads.read(values["event_type"], values.pop("payload"))
        return LedgerRecord(**values, payload=payload)


class CurrentReader(Generic[P]):
    """Typed reads of a ``ledger_current`` slice's current table (its first, or ``table``), with its ledger's
    reads by the same key (``events``), on a reader-role connection."""

    def __init__(
        self, conn: asyncpg.Connection, contract: SliceContract, payload: type[P], *, table: str | None = None
    ) -> None:
        self.conn = conn
        decl: LatestPerKey = next(c for c in contract.current if table in (None, c.table))
        self.decl = decl
        cols = contract.ledgers[0]
        self.ledger = LedgerReader(conn, contract, payload, by=decl.key)
        self.payloads = self.ledger.payloads
        keys = [_ident(k) for k in decl.key]
        derived = [_ident(d) for d, _ in decl.derived]
        head = ", ".join(f"c.{c}" for c in ("tenant_id", *keys, _ident(decl.version), *derived))
        select = (
            f"SELECT {head}, c.publisher_engine_id, c.updated_at, c.source_event_id, l.event_type, l.payload "
            f"FROM {_ident(decl.table)} c JOIN {_ident(cols.spec.table)} l "
            f"ON l.tenant_id = c.tenant_id AND l.{_ident(cols.spec.id_column)} = c.source_event_id "
            "WHERE c.tenant_id = $1"
        )
        #: ``current``: one key's row; ``page:<n>``: the rows whose key starts with n values, in key order, and
        #: ``page_after:<n>``: those after the rest of a key (keyset).
        self.queries = {"current": select + "".join(f" AND c.{k} = ${i}" for i, k in enumerate(keys, start=2))}
        for n in range(len(keys)):
            prefix = "".join(f" AND c.{k} = ${i}" for i, k in enumerate(keys[:n], start=2))
            rest, order = keys[n:], ", ".join(f"c.{k}" for k in keys)
            after = (
                f" AND ({', '.join(f'c.{k}' for k in rest)}) > ({', '.join(f'${n + 2 + i}' for i in range(len(rest)))})"
            )
            self.queries[f"page:{n}"] = f"{select}{prefix} ORDER BY {order} LIMIT ${n + 2}"
            self.queries[f"page_after:{n}"] = f"{select}{prefix}{after} ORDER BY {order} LIMIT ${n + 2 + len(rest)}"

    async def current(self, tenant_id: str, *key: Any) -> CurrentRecord[P] | None:
        """The row of ``key`` (every key column after the tenant), or None if the tenant has none."""
        if len(key) != len(self.decl.key):
            raise ValueError(f"{self.decl.table} is keyed by {self.decl.key}, got {len(key)} values")
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(self.queries["current"], tenant_id, *key)
        return self._record(row) if row is not None else None

    async def current_page(
        self, tenant_id: str, *prefix: Any, after: tuple[Any, ...] = (), limit: int = MAX_PAGE
    ) -> list[CurrentRecord[P]]:
        """The rows whose key starts with ``prefix``, in key order; ``after``: the rest of the last key of the
        previous page (keyset)."""
        check_page(limit)
        n = len(prefix)
        if n >= len(self.decl.key) or (after and len(after) != len(self.decl.key) - n):
            raise ValueError(f"{self.decl.table} is keyed by {self.decl.key}: a prefix and the rest after it")
        query = self.queries[f"page_after:{n}" if after else f"page:{n}"]
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(query, tenant_id, *prefix, *after, limit)
        return [self._record(r) for r in rows]

    async def events(
        self, tenant_id: str, *key: Any, after_event_id: int = 0, limit: int = MAX_PAGE
    ) -> list[LedgerRecord[P]]:
        """The ledger's rows of a key (or of a prefix of it) in append order (``LedgerReader.events``)."""
        return await self.ledger.events(tenant_id, *key, after_event_id=after_event_id, limit=limit)

    def _record(self, row: asyncpg.Record) -> CurrentRecord[P]:
        d = self.decl
        return CurrentRecord(
            tenant_id=row["tenant_id"],
            key=tuple(row[k] for k in d.key),
            version=row[d.version],
            derived={name: row[name] for name, _ in d.derived},
            publisher_engine_id=row["publisher_engine_id"],
            updated_at=row["updated_at"],
            source_event_id=row["source_event_id"],
            payload=self.payloads.read(row["event_type"], row["payload"]),
        )
