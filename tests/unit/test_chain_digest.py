"""The chain digest computed in two parts (position-free pairs while decoding, position and hash in the
transaction) is byte for byte the one-piece digest ``selene-ledger verify`` recomputes from stored rows."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cli.workload import build
from consumers.chain import UNCHAINED, chained_pairs, digest_of, row_digest
from consumers.ledger import Provenance
from consumers.projections import LEDGER_TABLES

ROWS: list[dict[str, Any]] = [
    {"a": "plain", "b": 1, "c": None, "payload": "{}", "chain_seq": 3, "row_hash": b"x"},
    {"a": 'Grüße \u2028 "q" \\ \x01 \U0001f600', "b": -7, "c": True, "payload": "{}", "chain_seq": 1, "row_hash": b""},
    {"a": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=5))), "b": b"\x00\xff", "c": uuid.uuid4()},
    {"a": datetime(2026, 1, 2, tzinfo=UTC), "b": 0.5, "c": ""},
]


def _old_digest(table: str, seq: int, values: dict[str, Any], columns: list[str]) -> bytes:
    """The digest as written before the split (one JSON document), kept here as the reference."""

    def norm(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).isoformat()
        if isinstance(v, bytes):
            return v.hex()
        if isinstance(v, uuid.UUID):
            return str(v)
        return v

    pairs = [[c, norm(values[c])] for c in columns if c not in UNCHAINED]
    return json.dumps([table, seq, pairs], separators=(",", ":"), ensure_ascii=False).encode()


def test_split_digest_is_the_reference_digest() -> None:
    for values in ROWS:
        columns = list(values)
        for seq in (1, 2, 10**12):
            reference = _old_digest("s.t", seq, values, columns)
            assert row_digest("s.t", seq, values, columns) == reference
            assert digest_of("s.t", seq, chained_pairs(values, columns)) == reference


def test_every_ledger_row_carries_the_pairs_of_what_verify_reads() -> None:
    events = build(tenants=1, users_per_tenant=1, events=40, bad=False, work_orders=1, slice_examples=1).events
    ledgers = set()
    for offset, event in enumerate(events):
        table = LEDGER_TABLES[event.ledger]
        row = table.row(event, Provenance("t", 0, offset))
        columns = [c for c, _ in table.columns]
        assert row.chained is not None
        # nothing but columns and the generated ones (tests insert a row's values as they are)
        assert set(row.values) <= set(columns) | {c for c, _, _ in table.computed}
        stored = {c: row.values.get(c) for c in columns}  # what verify reads back: the columns only
        assert digest_of(table.spec.table, 9, row.chained) == row_digest(table.spec.table, 9, stored, columns)
        tampered = dict(stored, source_offset=offset + 1)
        assert (
            hashlib.sha256(row_digest(table.spec.table, 9, tampered, columns)).digest()
            != hashlib.sha256(digest_of(table.spec.table, 9, row.chained)).digest()
        )
        ledgers.add(event.ledger)
    assert len(ledgers) > 3


EDGE_VALUES: list[Any] = [
    "",
    'Grüße \u2028 "q" \\ \x01 \x7f \ud7ff \U0001f600 </script>',
    0,
    -(10**30),
    True,
    False,
    None,
    0.5,
    -0.0,
    1e-05,
    1e300,
    float("nan"),
    float("inf"),
    b"",
    b"\x00\xff",
    uuid.UUID(int=0),
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    datetime(1, 1, 1, tzinfo=UTC),
    {"nested": [1, "x", None]},  # not a ledger column type today: goes through the reference encoder
]


def test_fast_pairs_are_the_reference_text_for_every_value_kind_and_every_slice_row() -> None:
    """``chained_pairs`` writes the JSON value by value; it must be the one-document encoding's exact text."""
    from consumers.chain import _reference_pairs

    for i, v in enumerate(EDGE_VALUES):
        values = {"a": v, "b": EDGE_VALUES[-1 - i], "payload": "{}", "row_hash": b"x"}
        assert chained_pairs(values, list(values)) == _reference_pairs(values, list(values)), repr(v)
    assert chained_pairs({}, []) == _reference_pairs({}, []) == "[]"
    events = build(tenants=1, users_per_tenant=2, events=60, bad=False, work_orders=2, slice_examples=2).events
    for offset, event in enumerate(events):
        table = LEDGER_TABLES[event.ledger]
        row = table.row(event, Provenance("t", 0, offset))
        assert row.chained == _reference_pairs(row.values, table.column_names)
