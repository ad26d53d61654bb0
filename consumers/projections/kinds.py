"""Generic slice kinds: a ledger's row mapping and a "latest version per key wins" current table, built from
a slice's declaration (``contracts.slice``) instead of written by hand.

Column types come from the payload fields' annotations (``pg_type``): text for strings, literals and
uuids, integer for bounded ints, double precision for floats, boolean, timestamptz, jsonb for mappings and
lists. The drift test (tests/integration/test_slice_drift.py)
holds every derived column and type against the migrated catalog.
"""

from __future__ import annotations

import datetime
import types
import typing
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from consumers.chain import canonical_json
from consumers.ledger import ENVELOPE_COLUMNS, Extractor, LedgerTable
from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent, Payload
from contracts.slice import LatestPerKey, LedgerColumns, SliceContract

_SCALARS: dict[type, str] = {
    str: "text",
    bool: "boolean",
    int: "integer",
    float: "double precision",
    uuid.UUID: "uuid",
    datetime.datetime: "timestamptz",
    AwareDatetime: "timestamptz",
    datetime.date: "date",
}


def pg_type(annotation: Any) -> str:
    """The PostgreSQL type of a column holding a payload field of this annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return pg_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = {pg_type(a) for a in typing.get_args(annotation) if a is not type(None)}
        if len(kinds) == 1:
            return kinds.pop()
        return "jsonb"
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return "text"
        raise TypeError(f"no column type for {annotation!r}")
    if origin in (dict, list, tuple) or annotation in (dict, list):
        return "jsonb"
    if isinstance(annotation, type):
        for base, name in _SCALARS.items():
            if issubclass(annotation, base) and not (base is int and issubclass(annotation, bool)):
                return name
    raise TypeError(f"no column type for {annotation!r}")


def field_type(info: FieldInfo) -> str:
    return pg_type(info.annotation)


def _getter(name: str, required: bool, pg: str = "text") -> Extractor:
    if pg == "jsonb":  # the ledger's insert takes jsonb columns as their JSON text, keys sorted: the text is
        # what the hash chain digests, and `verify` digests the stored jsonb in the same canonical form
        get = _getter(name, required)
        return lambda e: None if (v := get(e)) is None else canonical_json(v)
    if required:
        return lambda e: getattr(e.payload, name)
    return lambda e: getattr(e.payload, name, None)


def ledger_columns(cols: LedgerColumns) -> tuple[tuple[str, str], ...]:
    """(column, type) of the ledger's own columns, in order (after the envelope's)."""
    fields = cols.payload.model_fields
    own = [(cols.column(f), field_type(fields[f])) for f in cols.fields()]
    return (*own, *((cols.column(f), t) for f, t in cols.optional))


def ledger_table(cols: LedgerColumns) -> LedgerTable:
    """The ledger's row mapping: the envelope's columns, then the payload's (``LedgerColumns``)."""
    fields = cols.payload.model_fields
    typed = [(f, field_type(fields[f])) for f in cols.fields()]
    extra = tuple((cols.column(f), t, _getter(f, True, t)) for f, t in typed)
    extra += tuple((cols.column(f), t, _getter(f, False, t)) for f, t in cols.optional)
    known = {c for c, _, _ in ENVELOPE_COLUMNS}
    clash = {c for c, _, _ in extra} & known - {new for new, _ in cols.renamed_envelope} - {
        old for old, _ in cols.renamed_envelope
    }
    if clash:
        raise ValueError(f"{cols.spec.name}: payload columns {sorted(clash)} clash with envelope columns")
    computed = tuple((f, field_type(fields[f]), _getter(f, False)) for f in cols.generated)
    return LedgerTable(cols.spec, extra=extra, renamed=cols.renamed_envelope, computed=computed)


class LatestPerKeyProjection(Projection):
    """A current table where, per key, the latest version wins (``contracts.slice.LatestPerKey``)."""

    event_ref_columns = ("source_event_id",)

    def __init__(self, owner: SliceContract, decl: LatestPerKey, cols: LedgerColumns) -> None:
        # One per current table: the slice's name, or the table's when a slice has several.
        self.name = owner.name if len(owner.current) == 1 else decl.table.split(".")[-1]
        self.decl = decl
        self.payload = cols.payload
        self.stored = tuple(f for f in cols.fields() if f not in (*decl.key, decl.version, *decl.omit))
        fields = cols.payload.model_fields
        self.table = TableSpec(
            decl.table,
            columns=(
                ("tenant_id", "text"),
                *((k, field_type(fields[k])) for k in decl.key),
                (decl.version, field_type(fields[decl.version])),
                *decl.derived,
                *((f, field_type(fields[f])) for f in self.stored),
                ("publisher_engine_id", "text"),
                ("updated_at", "timestamptz"),
                ("source_event_id", "bigint"),
            ),
            key=("tenant_id", *decl.key),
        )
        self.writes = (self.table,)
        self.ledgers = frozenset({cols.spec.name})

    def _payload(self, event: LedgerEvent) -> Payload:
        assert isinstance(event.payload, self.payload)
        return event.payload

    def key(self, event: LedgerEvent) -> tuple[Any, ...]:
        p = self._payload(event)
        return (event.tenant_id, *(getattr(p, k) for k in self.decl.key))

    def reduce(self, current: Row | None, event: LedgerEvent) -> Row | None:
        """The key's row after ``event``, or None when the event leaves it unchanged. Pure:
        ``source_event_id`` holds the event's uuid, which the caller maps to the ledger id."""
        p = self._payload(event)
        version = getattr(p, self.decl.version)
        if current is not None:
            if version < current[self.decl.version]:
                return None
            frozen = self.decl.immutable_within_version
            if version == current[self.decl.version] and any(getattr(p, f) != current[f] for f in frozen):
                assert self.decl.conflict is not None
                key = "/".join(str(getattr(p, k)) for k in self.decl.key)
                raise Rejection(
                    self.decl.conflict,
                    f"{key} version {version} was published with other {', '.join(frozen)}; "
                    "a version's fields cannot change (publish a new version)",
                )
        return {
            "tenant_id": event.tenant_id,
            **{k: getattr(p, k) for k in self.decl.key},
            self.decl.version: version,
            **{name: getattr(p, name) for name, _ in self.decl.derived},
            **{f: getattr(p, f) for f in self.stored},
            "publisher_engine_id": event.engine_id,
            "updated_at": event.occurred_at,
            "source_event_id": event.event_id,
        }

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield self.table, self.key(event)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        row = self.reduce(view.get(self.table, self.key(event)), event)
        if row is not None:
            view.put(self.table, row)


def generic_projections(owner: SliceContract) -> tuple[Projection, ...]:
    """The projections a slice's declaration implies (its ``LatestPerKey`` current tables)."""
    by_table = {c.spec.table: c for c in owner.ledgers}
    if owner.current and len(owner.ledgers) != 1:
        raise ValueError(f"slice {owner.name}: a current table follows the slice's one ledger ({sorted(by_table)})")
    return tuple(LatestPerKeyProjection(owner, decl, owner.ledgers[0]) for decl in owner.current)
