"""Appending events to a ledger table: row mapping, the set-based insert, and the dedupe look-up.

Every ledger shares the envelope columns; a slice adds its own columns (``extra``) as functions of the
event. The insert is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING`` per
ledger per batch, whatever the batch size.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from consumers.chain import (
    ADVANCE_ALL_CHAINS,
    chained_pairs,
    link_tables,
    renumber,
)
from contracts.codec import canonical_payload, content_sha256
from contracts.envelope import LedgerEvent, LedgerSpec, event_tag
from contracts.registry import EVENT_TYPES

Extractor = Callable[[LedgerEvent], Any]


@dataclass(frozen=True)
class Provenance:
    """Where a ledger row came from in Kafka."""

    topic: str
    partition: int
    offset: int


ENVELOPE_COLUMNS: tuple[tuple[str, str, Extractor], ...] = (
    ("event_uuid", "uuid", lambda e: e.event_id),
    ("tenant_id", "text", lambda e: e.tenant_id),
    ("engine_id", "text", lambda e: e.engine_id),
    ("event_type", "text", lambda e: e.event_type),
    ("schema_version", "integer", lambda e: e.schema_version),
    ("correlation_id", "text", lambda e: e.correlation_id),
    ("turn_id", "text", lambda e: e.turn_id),
    ("idempotency_key", "text", lambda e: e.idempotency_key),
    ("occurred_at", "timestamptz", lambda e: e.occurred_at),
)


@dataclass(frozen=True)
class LedgerRow:
    """One row about to be appended, with what dedupe compares."""

    event: LedgerEvent
    values: dict[str, Any]
    provenance: Provenance
    #: ``consumers.chain.chained_pairs`` of ``values``, computed while decoding (ahead of the transaction)
    chained: str | None = field(default=None, compare=False, repr=False)
    #: ``LedgerTable.keys`` of ``values``, computed once while decoding: the batch asks for them several times
    #: (the look-up, the duplicate check, remembering the row) and they cannot change (``values`` is final).
    keys: tuple[tuple[Any, ...], ...] = field(default=(), compare=False, repr=False)
    #: what makes this row a duplicate of another in ``Pipeline``'s maps: (ledger, "uuid", event id), then
    #: (ledger, "scope", key) for each of ``keys``.
    match_keys: tuple[tuple[str, str, Any], ...] = field(default=(), compare=False, repr=False)

    @property
    def content_sha256(self) -> bytes:
        digest: bytes = self.values["content_sha256"]
        return digest


@dataclass(frozen=True)
class ExistingRow:
    """A row already in the ledger that a new event may duplicate, with its dedupe keys (``LedgerTable.keys``)."""

    event_uuid: uuid.UUID
    keys: tuple[tuple[Any, ...], ...]
    content_sha256: bytes
    ledger_id: int


@dataclass(frozen=True)
class LedgerTable:
    """How events of one ledger become rows of its table."""

    spec: LedgerSpec
    extra: tuple[tuple[str, str, Extractor], ...]
    #: envelope columns this ledger stores under another name, as (envelope column, column) pairs: for when a
    #: seed's key gives an envelope column's name to something else (engine capability maps key ``engine_id``
    #: on the mapped engine, so the publishing engine is ``publisher_engine_id`` there).
    renamed: tuple[tuple[str, str], ...] = ()
    #: columns PostgreSQL generates from the payload (``LedgerColumns.generated``): in ``LedgerRow.values`` for
    #: the dedupe keys, never inserted nor chained.
    computed: tuple[tuple[str, str, Extractor], ...] = ()
    queries: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: (column, extractor) for every column ``row`` takes from the event, resolved once (``row`` is per event).
    extractors: tuple[tuple[str, Extractor], ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        fixed = {"event_uuid", "tenant_id", "idempotency_key"} & {old for old, _ in self.renamed}
        if fixed:  # the dedupe and insert queries below address these by name
            raise ValueError(f"{self.spec.name}: envelope columns {sorted(fixed)} cannot be renamed")
        extractors = [(self.envelope_column(c), f) for c, _, f in ENVELOPE_COLUMNS]
        extractors += [(c, f) for c, _, f in self.extra]
        extractors += [(c, f) for c, _, f in self.computed]
        object.__setattr__(self, "extractors", tuple(extractors))
        cols = self.columns
        names = [c for c, _ in cols]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.spec.name}: duplicate columns in {names}")
        args = ", ".join(f"${i}::{'text' if t == 'jsonb' else t}[]" for i, (_, t) in enumerate(cols, start=1))
        select = ", ".join(f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}" for c, t in cols)
        # One ledger's part of ``insert_ledgers``' statement (which also advances the chain heads).
        self.queries["append"] = (
            f"INSERT INTO {self.spec.table} ({', '.join(names)}) "
            f"SELECT {select} FROM unnest({args}) AS u({', '.join(names)}) "
            f"ON CONFLICT DO NOTHING RETURNING event_uuid, {self.spec.id_column}::bigint AS ledger_id"
        )
        self.queries["existing"] = self.existing_sql(", ".join(f"t.{c}" for c in self.key_columns))
        self.queries["provenance"] = (
            f"SELECT t.event_uuid, t.{self.spec.id_column}, t.source_topic, t.source_partition, t.source_offset, "
            f"t.content_sha256 FROM {self.spec.table} t "
            f"JOIN unnest($1::text[], $2::uuid[]) AS k(tenant_id, event_uuid) "
            f"ON t.tenant_id = k.tenant_id AND t.event_uuid = k.event_uuid"
        )
        self.queries["read_ordered"] = (
            f"SELECT {self.spec.id_column} AS ledger_id, {', '.join(names)} FROM {self.spec.table} "
            f"WHERE {self.spec.id_column} > $1 AND ($3::text IS NULL OR tenant_id = $3) "
            f"ORDER BY {self.spec.id_column} LIMIT $2"
        )

    @functools.cached_property
    def key_columns(self) -> tuple[str, ...]:
        """The columns the dedupe keys are made of (``keys`` reads them back from a found row)."""
        return tuple(dict.fromkeys(c for _, on, when in self.key_kinds for c in (*on, *when)))

    @functools.cached_property
    def column_types(self) -> dict[str, str]:
        """PostgreSQL type of every column, the generated ones included."""
        return {**dict(self.columns), **{c: t for c, t, _ in self.computed}}

    def existing_sql(self, key_select: str, *, part: int | None = None, first: int = 1) -> str:
        """The dedupe look-up: rows sharing an event id (``$first``, ``$first+1``: tenants and uuids) or a
        dedupe key (the following arrays, one per key column, kind by kind as ``key_kinds``) with the batch,
        each as (event_uuid, content_sha256, ledger_id, ``key_select``). ``part``: a leading column naming this
        table inside ``existing_all``'s statement."""
        types = self.column_types
        lead = "" if part is None else f"{part} AS part, "
        select_existing = (
            f"SELECT {lead}t.event_uuid, t.content_sha256, t.{self.spec.id_column}::bigint AS ledger_id, "
            f"{key_select} FROM {self.spec.table} t"
        )
        branches = [
            f"{select_existing} JOIN unnest(${first}::text[], ${first + 1}::uuid[]) AS k(tenant_id, event_uuid) "
            "ON t.tenant_id = k.tenant_id AND t.event_uuid = k.event_uuid"
        ]
        n = first + 2
        for tag, on, when in self.key_kinds:
            args = ", ".join(f"${n + i}::{types[c]}[]" for i, c in enumerate(on))
            n += len(on)
            # The legacy scope of a ledger with a preferred one holds only rows outside the preferred one (its
            # partial unique index says the same); a unique key's ``when`` columns are set.
            pref_only = [c for c in self.spec.preferred_scope if c not in on]
            cond = f" AND ({' OR '.join(f't.{c} IS NULL' for c in pref_only)})" if tag == "scope" and pref_only else ""
            cond += "".join(f" AND t.{c} IS NOT NULL" for c in when)
            branches.append(
                f"{select_existing} JOIN unnest({args}) AS s({', '.join(on)}) "
                f"ON {' AND '.join(f't.{c} = s.{c}' for c in on)}{cond}"
            )
        return " UNION ".join(branches)

    @property
    def existing_param_count(self) -> int:
        """How many parameters ``existing_sql`` takes."""
        return 2 + sum(len(on) for _, on, _ in self.key_kinds)

    def existing_params(self, rows: Sequence[LedgerRow]) -> list[list[Any]]:
        """The look-up's arrays for ``rows``: tenants, event uuids, then each key kind's columns."""
        by_kind: dict[str, list[tuple[Any, ...]]] = {tag: [] for tag, _, _ in self.key_kinds}
        for r in rows:
            for key in r.keys:
                by_kind[key[0]].append(key[1:])
        arrays: list[list[Any]] = [[r.values["tenant_id"] for r in rows], [r.values["event_uuid"] for r in rows]]
        for tag, on, _ in self.key_kinds:
            found = by_kind[tag]
            arrays += [list(c) for c in zip(*found, strict=True)] if found else [[] for _ in on]
        return arrays

    def existing_row(self, rec: Mapping[str, Any], key_values: Mapping[str, Any]) -> ExistingRow:
        """A found row (``rec``: event_uuid, content_sha256, ledger_id) with its key columns' values."""
        return ExistingRow(
            event_uuid=rec["event_uuid"],
            keys=tuple(self.keys(key_values)),
            content_sha256=bytes(rec["content_sha256"]),
            ledger_id=rec["ledger_id"],
        )

    @functools.cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def envelope_column(self, name: str) -> str:
        """The column that holds envelope column ``name`` in this ledger."""
        return dict(self.renamed).get(name, name)

    @property
    def columns(self) -> list[tuple[str, str]]:
        base = [(self.envelope_column(c), t) for c, t, _ in ENVELOPE_COLUMNS]
        extra = [(c, t) for c, t, _ in self.extra]
        return [
            *base,
            *extra,
            ("payload", "jsonb"),
            ("content_sha256", "bytea"),
            ("source_topic", "text"),
            ("source_partition", "integer"),
            ("source_offset", "bigint"),
            ("chain_seq", "bigint"),
            ("row_hash", "bytea"),
        ]

    def row(self, event: LedgerEvent, provenance: Provenance) -> LedgerRow:
        payload_json = canonical_payload(event)
        values = {c: f(event) for c, f in self.extractors}
        values["payload"] = payload_json
        values["content_sha256"] = content_sha256(event, payload_json)
        values["source_topic"] = provenance.topic
        values["source_partition"] = provenance.partition
        values["source_offset"] = provenance.offset
        # The chain digest's position-free part, now (while decoding, ahead of the transaction), not under
        # the locked chain heads: the transaction only adds the position and hashes (``link_tables``).
        chained = chained_pairs(values, self.column_names)
        keys = tuple(self.keys(values))
        ledger = event.ledger
        match = ((ledger, "uuid", event.event_id), *((ledger, "scope", k) for k in keys))
        return LedgerRow(
            event=event, values=values, provenance=provenance, chained=chained, keys=keys, match_keys=match
        )

    @property
    def key_kinds(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """(tag, columns, columns that must be set) of each kind of dedupe key the ledger has besides the
        event id: its idempotency scope, its preferred scope, its unique keys."""
        kinds: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [("scope", self.spec.idempotency_scope, ())]
        if self.spec.preferred_scope:
            kinds.append(("preferred", self.spec.preferred_scope, ()))
        kinds += [(f"unique:{i}", k.columns, k.when) for i, k in enumerate(self.spec.unique_keys)]
        return kinds

    def keys(self, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """A row's dedupe keys besides its event id, each tagged with its kind: its scoped idempotency key (the
        preferred scope when all its columns are set, else the idempotency scope; none without a key) and
        each unique key whose columns are set."""
        found = []
        if values.get("idempotency_key") is not None:
            pref = self.spec.preferred_scope
            if pref and all(values.get(c) is not None for c in pref):
                found.append(("preferred", *(values.get(c) for c in pref)))
            else:
                found.append(("scope", *(values.get(c) for c in self.spec.idempotency_scope)))
        for i, key in enumerate(self.spec.unique_keys):
            vals = tuple(values.get(c) for c in key.columns)
            if None not in vals and all(values.get(c) is not None for c in key.when):
                found.append((f"unique:{i}", *vals))
        return found

    def scope(self, row: LedgerRow) -> tuple[Any, ...] | None:
        """The scoped idempotency key's values, or None when the event has no idempotency key."""
        scoped = [k for k in row.keys if k[0] in ("scope", "preferred")]
        return scoped[0][1:] if scoped else None

    async def existing(self, conn: asyncpg.Connection, rows: Sequence[LedgerRow]) -> list[ExistingRow]:
        """Rows already appended that share an event id or a dedupe key with ``rows``."""
        records = await conn.fetch(self.queries["existing"], *self.existing_params(rows))
        return [self.existing_row(d, d) for d in map(dict, records)]


async def insert_ledgers(
    conn: asyncpg.Connection, pending: Sequence[tuple[LedgerTable, Sequence[LedgerRow]]]
) -> list[dict[uuid.UUID, int]]:
    """Append each table's rows, the chain heads of all of them locked and linked in one round trip first,
    then every table's rows and every new chain head in one more statement (data-modifying CTEs, each run
    exactly once), whatever the number of ledgers the batch touches; returns, per table in order, event uuid
    -> ledger id of the rows actually inserted."""
    names = {t.spec.table: [c for c, _ in t.columns] for t, _ in pending}
    advances = await link_tables(
        conn,
        {t.spec.table: (names[t.spec.table], [r.values for r in rows]) for t, rows in pending},
        {t.spec.table: [r.chained for r in rows] for t, rows in pending},
    )
    out: list[dict[uuid.UUID, int]] = [{} for _ in pending]
    todo = [(n, t, rows) for n, (t, rows) in enumerate(pending) if rows]
    if not todo:
        return out
    heads: tuple[list[Any], ...] = ([], [], [], [], [])
    for _, t, _ in todo:
        advance = advances[t.spec.table]
        heads[0].extend([t.spec.table] * len(advance.topics))
        heads[1].extend(advance.topics)
        heads[2].extend(advance.parts)
        heads[3].extend(advance.seqs)
        heads[4].extend(advance.heads)
    arrays = [[r.values[c] for r in rows] for _, t, rows in todo for c, _ in t.columns]
    records = await conn.fetch(_insert_all(tuple(t for _, t, _ in todo)), *heads, *arrays)
    for rec in records:
        out[todo[rec["part"]][0]][rec["event_uuid"]] = rec["ledger_id"]
    return out


async def existing_all(
    conn: asyncpg.Connection, pending: Sequence[tuple[LedgerTable, Sequence[LedgerRow]]]
) -> list[list[ExistingRow]]:
    """``LedgerTable.existing`` of every table at once, in one statement (each table's look-up a branch of one
    ``UNION``), whatever the number of ledgers the batch touches; returns, per table in order, its found rows."""
    todo = [(n, t, rows) for n, (t, rows) in enumerate(pending) if rows]
    out: list[list[ExistingRow]] = [[] for _ in pending]
    if not todo:
        return out
    tables = tuple(t for _, t, _ in todo)
    params = [a for _, t, rows in todo for a in t.existing_params(rows)]
    for rec in await conn.fetch(_existing_all(tables), *params):
        n, table = todo[rec["part"]][0], tables[rec["part"]]
        keys = {c: rec[f"k{rec['part']}_{i}"] for i, c in enumerate(table.key_columns)}
        out[n].append(table.existing_row(rec, keys))
    return out


_EXISTING_ALL: dict[tuple[str, ...], str] = {}


def _existing_all(tables: tuple[LedgerTable, ...]) -> str:
    """The look-up of ``existing_all`` for ``tables``: each table's ``existing_sql`` with its parameters numbered
    after the previous table's and its key columns in slots of their own (``k<part>_<i>``, typed NULLs in the
    other tables' branches, so that every branch has the same columns). Built once per combination."""
    key = tuple(t.spec.table for t in tables)
    query = _EXISTING_ALL.get(key)
    if query is None:
        branches, first = [], 1
        for n, table in enumerate(tables):
            slots = []
            for m, other in enumerate(tables):
                types = other.column_types
                for i, c in enumerate(other.key_columns):
                    slots.append(f"t.{c} AS k{m}_{i}" if m == n else f"NULL::{types[c]} AS k{m}_{i}")
            branches.append(table.existing_sql(", ".join(slots), part=n, first=first))
            first += table.existing_param_count
        query = _EXISTING_ALL[key] = " UNION ".join(branches)
    return query


_INSERT_ALL: dict[tuple[str, ...], str] = {}


def _insert_all(tables: tuple[LedgerTable, ...]) -> str:
    """The statement appending to ``tables`` at once: ``ADVANCE_ALL_CHAINS`` ($1-$5), then each table's
    ``append`` with its column arrays numbered after the previous table's; returns (part, event_uuid,
    ledger_id), part being the table's position in ``tables``. Built once per combination of tables."""
    key = tuple(t.spec.table for t in tables)
    query = _INSERT_ALL.get(key)
    if query is None:
        parts, first = [f"chain_heads AS ({ADVANCE_ALL_CHAINS.strip()})"], 6
        for n, table in enumerate(tables):
            parts.append(f"i{n} AS ({renumber(table.queries['append'], first)})")
            first += len(table.columns)
        selects = " UNION ALL ".join(f"SELECT {n} AS part, event_uuid, ledger_id FROM i{n}" for n in range(len(tables)))
        query = _INSERT_ALL[key] = f"WITH {', '.join(parts)} {selects}"
    return query


def event_from_row(table: LedgerTable, row: Mapping[str, Any]) -> LedgerEvent:
    """A ledger row back into its typed event (for rebuilds): the inverse of ``LedgerTable.row``."""
    payload = row["payload"]
    envelope = {name: row[table.envelope_column(name)] for name, _, _ in ENVELOPE_COLUMNS}
    doc = {
        "event_id": envelope.pop("event_uuid"),
        **envelope,
        "ledger": table.spec.name,
        "payload": json.loads(payload) if isinstance(payload, str) else payload,
    }
    model = EVENT_TYPES[event_tag(table.spec.name, envelope["event_type"])].model
    return model.model_validate(doc, strict=False)
