"""The benchmark's stream is the mix BENCHMARKS.md describes: conversation and audit events, ~10 % work
orders, and every declared slice's examples as ~2 % of the events (not a round for every user, which made
them ~35 % of a 60,000-event stream and ~half of a 10,000-event one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bench.stream import SLICE_EXAMPLE_SHARE, build_template
from contracts.registry import REGISTRY
from contracts.slice import ExampleContext

WORKLOAD_TYPES = {"CONVERSATION_TURN_RECORDED", "AUDIT_RECORDED"}


def test_slice_examples_are_a_small_share_and_cover_every_slice() -> None:
    events = 20_000
    template = build_template(events)
    body = [json.loads(r.value) for r in template.records if not r.foundation and not r.duplicate]
    examples = [d for d in body if d["event_type"] not in WORKLOAD_TYPES and d["ledger"] != "work_order_ledger"]
    share = len(examples) / events
    assert SLICE_EXAMPLE_SHARE / 2 <= share <= SLICE_EXAMPLE_SHARE * 2, (share, len(examples))
    # and still every ledger that a round of examples writes on
    ctx = ExampleContext("t", "u", "d", "s", 0, datetime.now(UTC))
    wanted = {e.ledger for s in REGISTRY.slices if s.examples is not None for e in s.examples(ctx)}
    assert wanted - {"work_order_ledger"} <= {d["ledger"] for d in examples}
