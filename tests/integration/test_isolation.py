"""A batch the database refuses is isolated by halving, with the decisions of the event-by-event path.

Why this test: ``Pipeline.apply_isolated`` used to redo a refused batch one savepoint per event, so one
unknown reference in a batch of hundreds cost hundreds of full ``apply`` calls (half the bench's drain time).
It now halves what is refused; what each event becomes must not change, in Kafka order, held aggregates
included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from consumers.pipeline import Item, Pipeline, Record
from contracts.envelope import LedgerEvent, new_event
from contracts.ph1_m import MemoryStoredEvent
from contracts.settings import Settings
from tests.integration.test_projection_races import AT, Pair, attempt, device, identity, pair, records

pytestmark = pytest.mark.integration
__all__ = ["pair"]  # the fixture, imported for this module's tests


def memory(tenant: str, user: str, n: int) -> LedgerEvent:
    """PH1.M's memory of ``user``: only the current row's foreign key checks that the user exists."""
    return new_event(
        MemoryStoredEvent, tenant_id=tenant, engine_id="PH1.M", correlation_id=f"memory-{n}", occurred_at=AT,
        payload={"user_id": user, "memory_key": f"k{n}", "kind": "STORED", "verbatim": "v", "layer": "LONG_TERM",
                 "sensitivity_flag": "LOW", "confidence": "HIGH", "consent": "EXPLICIT_REMEMBER",
                 "use_policy": "ALWAYS_USABLE", "reason_code": "M_STORED"},
    )  # fmt: skip


def _counting(pipeline: Pipeline) -> list[int]:
    """Counts ``pipeline.apply`` calls (each a savepoint in the isolated path) and their sizes."""
    sizes: list[int] = []
    real = pipeline.apply

    async def apply(conn: Any, items: Sequence[Item], **kw: Any) -> Any:
        sizes.append(len(items))
        return await real(conn, items, **kw)

    pipeline.apply = apply  # type: ignore[method-assign]
    return sizes


async def test_refused_batch_is_halved_not_redone_event_by_event(pair: Pair, settings: Settings, run_id: str) -> None:
    tenant = f"is{run_id}"
    known = [f"u{i}-{run_id}" for i in range(100)]
    events = [identity(tenant, u) for u in known]
    events += [device(tenant, known[i % 100], f"d{i}-{run_id}") for i in range(100)]
    events += [memory(tenant, known[i], i) for i in range(100)]
    unknown = {167, 290}  # memories of users no one registered: refused by the database's foreign key
    for at in unknown:
        events[at] = memory(tenant, f"ghost-{at}-{run_id}", at)
    recs = records(settings, events, 3)
    # An undecodable record of u5's aggregate before u5's device: the device is held behind its dead letter.
    victim = next(i for i, r in enumerate(recs) if r.key == recs[5].key and i > 100)
    bad = recs[victim - 1]
    recs[victim - 1] = Record(bad.topic, bad.partition, bad.offset, recs[5].key, b"{not json", bad.headers)

    sizes = _counting(pair.pipeline)
    out = await attempt(pair.one, pair.pipeline, recs)

    assert out.isolated and out.failures == ["23503"], out.failures
    got = [(i.outcome, i.reason, i.status if i.outcome == "dead" else None) for i in out.items]
    want: list[tuple[str, str | None, str | None]] = []
    for n in range(len(recs)):
        if n == victim - 1:
            want.append(("dead", got[n][1], "OPEN"))
        elif n == victim:
            want.append(("dead", "HELD_BEHIND_DEAD_LETTER", "HELD"))
        elif n in unknown:
            want.append(("dead", "REFERENCE_UNKNOWN", got[n][2]))
        else:
            want.append(("appended", None, None))
    assert got == want
    assert got[victim - 1][1] is not None
    # 300 events, two refused by the database: the first batch attempt, then at most two halves per level
    # per refused event (9 levels) and their single events; the event-by-event path made 300 calls.
    isolated_calls = sizes[1:]
    assert len(isolated_calls) <= 1 + 2 * 2 * 9, sizes
    assert 1 in isolated_calls  # the refused events were pinned one by one
    assert max(isolated_calls) < len(recs), sizes  # the batch that failed whole is not tried whole again
