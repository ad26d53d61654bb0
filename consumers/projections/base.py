"""What a projection is: a pure reducer over rows, plus the rows it needs to see.

The writer, the replay consumer and the rebuild all drive projections through this interface and the
``RowView`` below, so there is one code path that turns events into current state. A projection never
talks to the database: it declares the rows it reads, and the caller loads them (one query per table per
batch) and saves what changed (one statement per table per batch).
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


class RowView:
    """Rows loaded for a batch, and the changes projections make to them, event by event.

    Changes of one event are staged and only merged when every projection accepted the event, so a
    rejection leaves no partial change behind.
    """

    def __init__(self, loaded: dict[TableSpec, dict[tuple[Any, ...], Row]]) -> None:
        self._rows = loaded
        self._changed: dict[TableSpec, dict[tuple[Any, ...], Row | None]] = {}
        self._staged: dict[TableSpec, dict[tuple[Any, ...], Row | None]] = {}

    def get(self, table: TableSpec, key: tuple[Any, ...]) -> Row | None:
        staged = self._staged.get(table, {})
        if key in staged:
            return staged[key]
        return self._rows.get(table, {}).get(key)

    def put(self, table: TableSpec, row: Row) -> None:
        self._staged.setdefault(table, {})[table.row_key(row)] = row

    def delete(self, table: TableSpec, key: tuple[Any, ...]) -> None:
        self._staged.setdefault(table, {})[key] = None

    def commit_event(self) -> None:
        for table, rows in self._staged.items():
            for key, row in rows.items():
                if row is None:
                    self._rows.get(table, {}).pop(key, None)
                else:
                    self._rows.setdefault(table, {})[key] = row
                self._changed.setdefault(table, {})[key] = row
        self._staged = {}

    def discard_event(self) -> None:
        self._staged = {}

    def changes(self) -> dict[TableSpec, dict[tuple[Any, ...], Row | None]]:
        return self._changed

    def reset_changes(self) -> None:
        self._changed = {}

    def has(self, table: TableSpec, key: tuple[Any, ...]) -> bool:
        return key in self._rows.get(table, {}) or key in self._staged.get(table, {})


class Projection(ABC):
    """A current table (or several) derived from one or more ledgers."""

    #: tables this projection writes (live names; shadows are derived).
    writes: tuple[TableSpec, ...] = ()
    #: ledgers whose events it consumes.
    ledgers: frozenset[str] = frozenset()
    #: a guard that checks references across aggregates and writes nothing: the live writer runs it, but
    #: replay does not, because the live decision (the dead letters) is what replay must reproduce.
    live_only: bool = False
    #: columns holding a ledger id; a reducer stores the event's uuid there and the caller maps it.
    event_ref_columns: tuple[str, ...] = ("last_event_id",)

    def handles(self, event: LedgerEvent) -> bool:
        return event.ledger in self.ledgers

    @abstractmethod
    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        """The rows ``apply`` will look at or change for ``event``."""

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
