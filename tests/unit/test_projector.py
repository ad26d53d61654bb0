"""The projector without I/O: projection names, the rebuildable subsets ``rebuild --projection`` selects, and
the rule that lets one projection be rebuilt alone (it reads no table another projection writes)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

import asyncpg
import pytest

from cli.workload import build
from consumers.pipeline import Pipeline
from consumers.projections import PROJECTIONS
from consumers.projections.base import Projection, RowRef, RowView
from consumers.projections.foundation import IDENTITIES, FoundationProjection
from consumers.projector import Projector, UnknownProjection
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import IdentityUpsertedEvent
from contracts.settings import Settings


def test_every_projection_has_a_name_of_its_own() -> None:
    names = [p.name for p in PROJECTIONS]
    assert all(names) and len(set(names)) == len(names), names
    assert {"foundation", "work_orders", "engine_capability_maps"} <= set(names)
    with pytest.raises(ValueError, match="a name of its own"):
        Projector([FoundationProjection(), FoundationProjection()])


def test_the_writer_and_the_shadows_share_one_projector() -> None:
    pipeline = Pipeline(Settings())
    shadowed = pipeline.projector.rebuildable()
    assert pipeline.projections == pipeline.projector.projections
    # The same projection objects, in the writer's order, without the live-only guards and emitters.
    assert shadowed.projections == tuple(p for p in pipeline.projections if not p.live_only)
    assert set(shadowed.tables) == set(pipeline.projector.tables)


def test_a_subset_keeps_the_projectors_order_and_only_its_tables_and_ledgers() -> None:
    projector = Projector(PROJECTIONS)
    subset = projector.rebuildable(["work_orders", "foundation"])
    assert subset.names == ("foundation", "work_orders")
    assert [t.name for t in subset.tables] == [
        "os_core.identities",
        "os_core.devices",
        "os_core.sessions",
        "os_core.work_orders_current",
        "os_core.work_order_step_attempts",
        "os_core.work_order_leases",
    ]
    assert projector.rebuildable(["foundation"]).ledgers == ("audit_events",)


def test_an_unknown_or_live_only_name_lists_the_rebuildable_ones() -> None:
    projector = Projector(PROJECTIONS)
    known = ", ".join(sorted(p.name for p in PROJECTIONS if not p.live_only))
    with pytest.raises(UnknownProjection) as caught:
        projector.rebuildable(["foundation", "nope", "foundation_references"])
    assert caught.value.detail == f"no projection named foundation_references, nope; projections: {known}"


class ReadsIdentities(Projection):
    """Reads a table it does not write: rebuilt alone, it would read another projection's shadow."""

    name = "reads_identities"
    ledgers = frozenset({"audit_events"})

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield IDENTITIES, ("u-1",)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        return None


async def test_a_projection_may_read_only_tables_its_projector_writes() -> None:
    event = new_event(
        IdentityUpsertedEvent, tenant_id="t", engine_id="PH1.F", correlation_id="c", occurred_at=datetime.now(UTC),
        payload={"reason_code": "IDENTITY_CREATED", "user_id": "u-1"},
    )  # fmt: skip
    no_connection = cast(asyncpg.Connection, None)  # refused before any I/O
    with pytest.raises(ValueError, match=r"read tables none of them writes: \['os_core.identities'\]"):
        await Projector([ReadsIdentities()]).load(no_connection, [event])
    with_writer = Projector([FoundationProjection(), ReadsIdentities()])
    with pytest.raises(AttributeError):  # passes the check, then reaches for the (missing) connection
        await with_writer.load(no_connection, [event])


class CountsHandles(Projection):
    """Handles every audit event, reads nothing, and counts how often it is asked (``handles``)."""

    name = "counts_handles"
    ledgers = frozenset({"audit_events"})

    def __init__(self) -> None:
        self.asked = 0

    def handles(self, event: LedgerEvent) -> bool:
        self.asked += 1
        return super().handles(event)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        return ()

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        return None


async def test_each_projection_is_asked_once_per_event_of_a_batch() -> None:
    """``handles`` runs for every projection on every event: the projector asks it once per event and batch
    (load's two steps and apply share the answer), not three times; an event it was not loaded with is asked."""

    def identity(i: int) -> LedgerEvent:
        return new_event(
            IdentityUpsertedEvent, tenant_id="t", engine_id="PH1.F", correlation_id=f"c{i}",
            occurred_at=datetime.now(UTC), payload={"reason_code": "IDENTITY_CREATED", "user_id": f"u-{i}"},
        )  # fmt: skip

    events = [identity(i) for i in range(3)]
    counting = CountsHandles()
    projector = Projector([counting])
    no_connection = cast(asyncpg.Connection, None)  # nothing is read: no query is sent
    view = await projector.load(no_connection, events)
    for event in events:
        projector.apply(view, event)
    assert counting.asked == len(events)
    stranger = events[0].model_copy()  # another object: its own answer, never the loaded event's
    projector.apply(view, stranger)
    assert counting.asked == len(events) + 1


def test_a_projection_handles_only_events_of_its_ledgers() -> None:
    """What the projector's by-ledger dispatch rests on (and rebuild, which reads a projection's ``ledgers``
    only): no projection handles an event of another ledger. Over the workload with every slice's examples,
    foundation rows and work orders; the projector answers as asking every projection would."""
    workload = build(tenants=2, users_per_tenant=2, events=300, bad=False, work_orders=2, slice_examples=1)
    events = [*workload.foundation, *workload.events]
    # The examples' learning artifacts are tenant-scoped; a user-scoped one is what learn_user_scope handles.
    events += [
        e.model_copy(update={"payload": e.payload.model_copy(update={"scope_type": "USER", "scope_id": "u-1"})})
        for e in events
        if e.event_type == "LEARN_ARTIFACT_COMMIT"
    ][:1]
    assert {e.ledger for e in events} >= {n for p in PROJECTIONS for n in p.ledgers}
    assert [p.name for p in PROJECTIONS if not any(p.handles(e) for e in events)] == []
    projector = Projector(PROJECTIONS)
    view = RowView({})
    for event in events:
        every = tuple(p for p in PROJECTIONS if p.handles(event))
        assert all(event.ledger in p.ledgers for p in every), (event.event_type, [p.name for p in every])
        assert projector.handlers(view, event) == every
        assert projector.handles(event) == bool(every)
