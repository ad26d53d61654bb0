"""The projector: load the rows a batch of events reads, run the projections over them, save what changed.

One component, used by the live writer's pipeline (``consumers.pipeline``: live tables, under the concurrency
control of ``consumers.tables``) and by the shadow builder of replay and rebuild (``consumers.shadow``: the
``selene_shadow`` twins), so that live, replay and rebuild turn events into current state by one code path.

Live loads lock the rows they find (``FOR NO KEY UPDATE``): tables in name order, keys in key order
(``TableSpec.load``), so two writers never wait for each other in a cycle. Index views are read unlocked: they
name immutable facts (a work order's thread), and what a batch inserts into their table is guarded by its
unique constraint. Live saves are conditional on what was loaded: a row another writer created since is not
overwritten, and ``RetriableError`` sends the batch back to be decided on fresh state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from consumers.projections.base import Projection, Rejection, RowView, resolve_event_refs
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.reasons import SeleneError


class UnknownProjection(SeleneError):
    """A projection name that no rebuildable projection carries."""


class Projector:
    """Projections in their order (within a ledger, one that creates rows runs before guards that reference
    them), with the tables they write, and the load, apply and save around them. Stateless; safe to share."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.projections = tuple(projections)
        names = [p.name for p in self.projections]
        if "" in names or len(set(names)) != len(names):
            raise ValueError(f"every projection needs a name of its own: {names}")
        self.ref_columns: dict[TableSpec, tuple[str, ...]] = {}
        for p in self.projections:
            for t in p.writes:
                self.ref_columns[t] = p.event_ref_columns
        self.index_tables = frozenset(t for p in self.projections for t in p.indexes)
        self.tables: tuple[TableSpec, ...] = tuple(dict.fromkeys(t for p in self.projections for t in p.writes))
        self._readable = frozenset(self.tables) | self.index_tables
        #: ledgers whose events these projections consume, sorted
        self.ledgers: tuple[str, ...] = tuple(sorted({n for p in self.projections for n in p.ledgers}))
        #: the projections that may handle an event of each ledger, in order: a projection consumes only events
        #: of its ``ledgers`` (what rebuild reads for it; ``tests/unit/test_projector.py`` holds every
        #: projection to it over the workload), so the others are not asked.
        self._by_ledger: dict[str, tuple[Projection, ...]] = {
            name: tuple(p for p in self.projections if name in p.ledgers) for name in self.ledgers
        }

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.projections)

    def rebuildable(self, names: Iterable[str] | None = None) -> Projector:
        """The projections replay and rebuild build into the shadows (not the live-only guards and emitters:
        the live decision is what they must reproduce, and emitted rows are in the ledgers already); only
        those named, if ``names`` is given, in this projector's order. An unknown name raises
        ``UnknownProjection`` listing the known ones."""
        shadowed = [p for p in self.projections if not p.live_only]
        if names is None:
            return Projector(shadowed)
        wanted = set(names)
        known = {p.name for p in shadowed}
        if unknown := sorted(wanted - known):
            raise UnknownProjection(
                f"no projection named {', '.join(unknown)}; projections: {', '.join(sorted(known))}"
            )
        return Projector([p for p in shadowed if p.name in wanted])

    def handles(self, event: LedgerEvent) -> bool:
        return any(p.handles(event) for p in self._by_ledger.get(event.ledger, ()))

    def handlers(self, view: RowView, event: LedgerEvent) -> tuple[Projection, ...]:
        """The projections that handle ``event``, in order; asked of each projection once per event and batch
        (``RowView.handlers``): ``handles`` is a pure function of the (frozen) event."""
        known = view.handlers.get(id(event))
        if known is not None and known[0] is event:
            return known[1]
        found = tuple(p for p in self._by_ledger.get(event.ledger, ()) if p.handles(event))
        view.handlers[id(event)] = (event, found)
        return found

    async def load(self, conn: asyncpg.Connection, events: Iterable[LedgerEvent], *, shadow: bool = False) -> RowView:
        """A view of the rows ``events`` read, in the caller's transaction; live rows locked until it ends
        (see the module docstring).

        A projection reads only tables written by this projector's projections (or their index views): so
        that one projection rebuilt alone (``rebuildable``) never reads another's shadow, stale or empty.
        Rows named by ``Projection.reads_after`` are loaded in a second step, on what the first one found."""
        events = list(events)
        wanted: dict[TableSpec, set[tuple[Any, ...]]] = {}
        scratch = RowView({})  # holds the handlers until the loaded view exists
        for event in events:
            for projection in self.handlers(scratch, event):
                for table, key in projection.reads(event):
                    wanted.setdefault(table, set()).add(key)
        view = RowView(await self._load(conn, wanted, shadow))
        view.handlers = scratch.handlers
        more: dict[TableSpec, set[tuple[Any, ...]]] = {}
        for event in events:
            for projection in self.handlers(view, event):
                for table, key in projection.reads_after(view, event):
                    if key not in wanted.get(table, ()):
                        more.setdefault(table, set()).add(key)
        for table, rows in (await self._load(conn, more, shadow)).items():
            view.add_loaded(table, rows)
        return view

    async def _load(
        self, conn: asyncpg.Connection, wanted: dict[TableSpec, set[tuple[Any, ...]]], shadow: bool
    ) -> dict[TableSpec, dict[tuple[Any, ...], Row]]:
        if stray := [t.name for t in wanted if t not in self._readable]:
            raise ValueError(f"projections {self.names} read tables none of them writes: {stray}")
        return {
            table: await table.load(conn, wanted[table], shadow=shadow, lock=table not in self.index_tables)
            for table in sorted(wanted, key=lambda t: (t.name, t.key))
        }

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        """Stage ``event``'s changes in ``view`` (every projection that handles it, in order); the caller
        commits them (``RowView.commit_event``) or discards them. A ``Rejection`` leaves nothing staged."""
        try:
            for projection in self.handlers(view, event):
                projection.apply(view, event)
        except Rejection:
            view.discard_event()
            raise

    async def save(
        self, conn: asyncpg.Connection, view: RowView, ids: dict[uuid.UUID, int], *, shadow: bool = False
    ) -> None:
        """Save what the view's committed events changed, event uuids mapped to ledger ids (``ids``). Live
        rows are saved on the condition of what was loaded: a row another writer created since is not
        overwritten, and ``RetriableError`` is raised (the transaction must be rolled back)."""
        changes = {t: rows for t, rows in view.changes().items() if t not in self.index_tables}
        resolve_event_refs(changes.keys(), changes, ids, self.ref_columns)
        for table in sorted(changes, key=lambda t: t.name):
            loaded = None if shadow else view.loaded_keys.get(table, frozenset())
            await table.save(conn, changes[table], shadow=shadow, loaded=loaded)
