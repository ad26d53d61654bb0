"""What a projection is: a pure reducer over rows, plus the rows it needs to see.

The writer, the replay consumer and the rebuild all drive projections through this interface and the
``RowView`` below, so there is one code path that turns events into current state. A projection never
talks to the database: it declares the rows it reads, and the caller loads them (one query per table per
batch) and saves what changed (one statement per table per batch).

A projection may also *emit* derived events for another ledger (``RowView.emit``), e.g. the PH1.J audit row
of a work-order append. Emissions are ledger rows, not projection state: the live writer appends them in the
same transaction as the event that caused them, and only if that event is appended; replay and rebuild,
which rebuild state from ledgers that already hold the emitted rows, drop them.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode

RowRef = tuple[TableSpec, tuple[Any, ...]]


class Rejection(Exception):
    """The event is valid but not applicable in the current state; nothing changes."""

    def __init__(self, reason_code: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


def derived_event_id(source: LedgerEvent, purpose: str) -> uuid.UUID:
    """The event id of an event derived from ``source``: a function of the source's id, so the same source
    event (delivered again, re-driven, or retried after a crash) always derives the same id, and the target
    ledger's unique (tenant_id, event_uuid) key backs up "emitted once"."""
    return uuid.uuid5(source.event_id, purpose)


class RowView:
    """Rows loaded for a batch, and the changes projections make to them, event by event.

    Changes of one event are staged and only merged when every projection accepted the event, so a
    rejection leaves no partial change behind; the same holds for the events it emits.
    """

    def __init__(self, loaded: dict[TableSpec, dict[tuple[Any, ...], Row]]) -> None:
        self._rows = loaded
        #: keys that had a row when loaded: a save may update only these, and insert the others only if still
        #: absent (``TableSpec.save``), so a row another writer created meanwhile is never overwritten.
        self.loaded_keys = {table: frozenset(rows) for table, rows in loaded.items()}
        self._changed: dict[TableSpec, dict[tuple[Any, ...], Row | None]] = {}
        self._staged: dict[TableSpec, dict[tuple[Any, ...], Row | None]] = {}
        self._emitted: list[LedgerEvent] = []
        self._staged_emitted: list[LedgerEvent] = []
        #: the projections that handle each event of the batch, by ``id`` (the event kept beside them, so an
        #: id reused by another object is never taken for it): ``Projector`` asks once per event, not once per
        #: load step and apply, and ``handles`` runs for every projection on every event.
        self.handlers: dict[int, tuple[LedgerEvent, tuple[Projection, ...]]] = {}

    def get(self, table: TableSpec, key: tuple[Any, ...]) -> Row | None:
        staged = self._staged.get(table, {})
        if key in staged:
            return staged[key]
        return self._rows.get(table, {}).get(key)

    def add_loaded(self, table: TableSpec, rows: dict[tuple[Any, ...], Row]) -> None:
        """Rows of a second load step (``Projection.reads_after``), before any event is applied."""
        self._rows.setdefault(table, {}).update(rows)
        self.loaded_keys[table] = self.loaded_keys.get(table, frozenset()) | frozenset(rows)

    def put(self, table: TableSpec, row: Row) -> None:
        self._staged.setdefault(table, {})[table.row_key(row)] = row

    def delete(self, table: TableSpec, key: tuple[Any, ...]) -> None:
        self._staged.setdefault(table, {})[key] = None

    def emit(self, event: LedgerEvent) -> None:
        """Stage a derived event for another ledger (give it a ``derived_event_id``)."""
        self._staged_emitted.append(event)

    def commit_event(self) -> None:
        for table, rows in self._staged.items():
            for key, row in rows.items():
                if row is None:
                    self._rows.get(table, {}).pop(key, None)
                else:
                    self._rows.setdefault(table, {})[key] = row
                self._changed.setdefault(table, {})[key] = row
        self._staged = {}
        self._emitted += self._staged_emitted
        self._staged_emitted = []

    def discard_event(self) -> None:
        self._staged = {}
        self._staged_emitted = []

    def staged_emissions(self) -> list[LedgerEvent]:
        """The events emitted by the event being applied, before ``commit_event``: the caller checks them
        against the ledgers first, and discards the event if one of them cannot be appended."""
        return list(self._staged_emitted)

    def take_emitted(self) -> list[LedgerEvent]:
        """The events emitted by the events committed since the last call."""
        emitted, self._emitted = self._emitted, []
        return emitted

    def changes(self) -> dict[TableSpec, dict[tuple[Any, ...], Row | None]]:
        return self._changed


class Projection(ABC):
    """A current table (or several) derived from one or more ledgers."""

    #: stable public name, unique among projections: operators select a projection by it
    #: (``selene-ledger rebuild --projection NAME``), so renaming one breaks their scripts.
    name: str = ""
    #: tables this projection writes (live names; shadows are derived).
    writes: tuple[TableSpec, ...] = ()
    #: ledgers whose events it consumes.
    ledgers: frozenset[str] = frozenset()
    #: a guard that checks references across aggregates and writes nothing, or an emitter of derived ledger
    #: rows: the live writer runs it, but replay and rebuild do not, because the live decision (the dead
    #: letters) is what replay must reproduce, and the emitted rows are in the ledgers already.
    live_only: bool = False
    #: columns holding a ledger id; a reducer stores the event's uuid there and the caller maps it.
    event_ref_columns: tuple[str, ...] = ("last_event_id",)
    #: read-only views of tables this projection writes, keyed by a unique key other than the primary key
    #: (e.g. work orders by (tenant, correlation)). They are loaded like any table; what a reducer puts into
    #: them only informs later events of the same batch and is never saved.
    indexes: tuple[TableSpec, ...] = ()

    def handles(self, event: LedgerEvent) -> bool:
        return event.ledger in self.ledgers

    @abstractmethod
    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        """The rows ``apply`` will look at or change for ``event``."""

    def reads_after(self, view: RowView, event: LedgerEvent) -> Iterable[RowRef]:
        """Rows ``apply`` also needs whose keys only the rows of ``reads`` tell (PH1.W: the binding an index
        view names active). Asked once, on the rows as loaded; the caller loads them in a second step, so
        a row that events of the same batch create or change is in the view already."""
        return ()

    @abstractmethod
    def apply(self, view: RowView, event: LedgerEvent) -> None:
        """Change rows in ``view`` for ``event``, or raise ``Rejection``. Pure: no I/O, no clock."""


def resolve_event_refs(
    projection_tables: Iterable[TableSpec],
    changes: dict[TableSpec, dict[tuple[Any, ...], Row | None]],
    ids: dict[uuid.UUID, int],
    ref_columns: dict[TableSpec, tuple[str, ...]],
) -> None:
    """Replace the event uuids reducers stored in ``*_event_id`` columns by the ledger ids."""
    for table in projection_tables:
        cols = ref_columns.get(table, ())
        for row in changes.get(table, {}).values():
            if row is None:
                continue
            for col in cols:
                value = row.get(col)
                if isinstance(value, uuid.UUID):
                    row[col] = ids[value]
