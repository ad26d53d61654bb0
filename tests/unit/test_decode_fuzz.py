"""Property-based fuzzing of the consumer's decode-validate-route step, ``Pipeline.decode`` (no I/O; issue 8).

``decode`` stands between Kafka and the database: whatever bytes arrive, it must return one verdict per record
and never raise, because an exception there stops the writer on a record it will fetch again after a restart
(a poison pill that stalls its partition for good). Properties:

* arbitrary bytes, arbitrary envelope-shaped JSON: never raises; every record is a dead letter with exactly one
  reason code, of the kind decode gives;
* each bad-input class gets its own reason code (the ledger's where the ledger has its own);
* good events, alone or mixed with bad ones in one batch, decode to the very event that was published, in order;
* control characters (issue 13, item 4): U+0000 and every other C0, DEL and C1 character in the key, in headers,
  in the value and in every text field; what the writer puts in a dead letter's text columns (the detail, the
  aggregate key) never holds one, the aggregate key's escaping is one to one, and the headers' bytes read
  back exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.pipeline import Item, Pipeline, Record, headers_bytes, headers_from_bytes
from contracts.codec import escape_key, key_text
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode
from contracts.registry import LEDGERS
from contracts.settings import Settings
from tests.unit.fuzzcases import (
    BAD_CLASSES,
    CONTROLS,
    DECODE_REASONS,
    Case,
    bad_cases,
    conflict_of,
    envelope_shaped,
    extra_headers,
    good_case,
    good_cases,
    good_events,
)

SETTINGS = Settings(topic_prefix="fuzz.")
PIPELINE = Pipeline(SETTINGS)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


#: What no text column of a dead letter may hold: control characters (U+0000 cannot be stored at all).
UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def record(case: Case, offset: int = 0) -> Record:
    topic = LEDGERS[case.topic_ledger].topic(SETTINGS.topic_prefix)
    headers = cast(tuple[tuple[str, bytes], ...], case.headers)  # a null header value is None, as aiokafka gives
    return Record(topic, 0, offset, case.key, case.value, headers, 1_700_000_000_000)


def assert_dead_once(item: Item, allowed: frozenset[ReasonCode] = DECODE_REASONS) -> None:
    assert item.outcome == "dead", item
    assert isinstance(item.reason, ReasonCode) and item.reason in allowed, item.reason
    assert item.detail and item.status in ("OPEN", "REJECTED")
    assert item.event is None and item.row is None
    assert_storable(item)


def assert_storable(item: Item) -> None:
    """What ``store_dead_letters`` writes as text is text PostgreSQL stores; the headers read back exactly."""
    assert UNSTORABLE.search(item.detail) is None, item.detail
    assert item.aggregate_key is None or UNSTORABLE.search(item.aggregate_key) is None, item.aggregate_key
    assert headers_from_bytes(headers_bytes(item.record.headers)) == item.record.headers


def decode(records: Sequence[Record]) -> list[Item]:
    items = PIPELINE.decode(records)  # must not raise, whatever the records hold
    assert [i.record for i in items] == list(records)
    return items


@fuzz(200)
@given(
    values=st.lists(st.one_of(st.none(), st.binary(max_size=400), st.text(max_size=200).map(str.encode)), max_size=8),
    keys=st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=8, max_size=8),
    ledger=st.sampled_from(sorted(LEDGERS)),
)
def test_arbitrary_bytes_never_raise_and_get_one_reason(
    values: list[bytes | None], keys: list[bytes | None], ledger: str
) -> None:
    topic = LEDGERS[ledger].topic(SETTINGS.topic_prefix)
    items = decode([Record(topic, 0, i, keys[i], v) for i, v in enumerate(values)])
    for item in items:
        assert_dead_once(item)


@fuzz(100)
@given(values=st.lists(envelope_shaped(), min_size=1, max_size=6), ledger=st.sampled_from(sorted(LEDGERS)))
def test_envelope_shaped_json_never_raises_and_gets_one_reason(values: list[bytes], ledger: str) -> None:
    topic = LEDGERS[ledger].topic(SETTINGS.topic_prefix)
    for item in decode([Record(topic, 0, i, b"t/a", v) for i, v in enumerate(values)]):
        assert_dead_once(item)


def test_non_string_ledger_or_event_type_is_a_dead_letter_not_a_crash() -> None:
    """The smallest inputs the envelope fuzz above found: a JSON array or object where a name belongs."""
    topic = LEDGERS["audit_events"].topic(SETTINGS.topic_prefix)
    values = [
        b'{"ledger": [], "event_type": "X"}',
        b'{"ledger": {"a": 1}}',
        b'{"ledger": "audit_events", "event_type": []}',
    ]
    items = decode([Record(topic, 0, i, b"t/a", v) for i, v in enumerate(values)])
    assert [i.reason for i in items] == [
        ReasonCode.EVENT_SCHEMA_INVALID,  # the ledger is not a name: the envelope's schema is broken
        ReasonCode.EVENT_SCHEMA_INVALID,
        ReasonCode.EVENT_UNKNOWN_TYPE,  # a known ledger, and no event type of it
    ]
    for item in items:
        assert_dead_once(item)


@fuzz(200)
@given(case=st.sampled_from(BAD_CLASSES).flatmap(lambda kind: bad_cases(kind, SETTINGS.max_event_bytes)))
def test_each_bad_class_gets_its_reason(case: Case) -> None:
    [item] = decode([record(case)])
    assert case.expected is not None
    assert_dead_once(item)
    assert item.reason == case.expected, (case.kind, item.detail)


@fuzz(100)
@given(event=good_events(), extra=extra_headers)
def test_good_events_decode_unchanged(event: object, extra: list[tuple[str, bytes | None]]) -> None:
    case = good_case(event, tuple(extra))  # type: ignore[arg-type]
    [item] = decode([record(case, 7)])
    assert item.outcome == "pending" and item.reason is None and item.detail == ""
    assert item.event == case.event
    assert item.row is not None and item.row.values["event_uuid"] == case.event.event_id  # type: ignore[union-attr]
    assert item.row.values["tenant_id"] == case.event.tenant_id  # type: ignore[union-attr]
    assert (item.row.provenance.topic, item.row.provenance.offset) == (record(case).topic, 7)


@fuzz(60)
@given(
    mix=st.lists(
        st.one_of(good_cases(), bad_cases(max_event_bytes=SETTINGS.max_event_bytes)),
        min_size=1,
        max_size=25,
    )
)
def test_a_mixed_batch_decodes_each_record_on_its_own(mix: list[Case]) -> None:
    # Conflicting idempotency keys are for apply to find (against the ledger); decode passes both on.
    conflicts = [conflict_of(c.event) for c in mix if c.expected is None and c.event and c.event.idempotency_key]
    cases = mix + conflicts
    items = decode([record(c, i) for i, c in enumerate(cases)])
    for case, item in zip(cases, items, strict=True):
        if case.expected is None or case.expected == ReasonCode.IDEMPOTENCY_CONFLICT:
            assert item.outcome == "pending" and item.event == case.event, (case.kind, item.detail)
        else:
            assert_dead_once(item)
            assert item.reason == case.expected, (case.kind, item.detail)


_KEY_CHARS = st.sampled_from((*CONTROLS, "\\", "x", "0", "/"))


@fuzz(300)
@given(a=st.text(_KEY_CHARS), b=st.text(_KEY_CHARS))
def test_aggregate_key_escaping_is_one_to_one_and_storable(a: str, b: str) -> None:
    """Blocking compares escaped keys: two keys escape alike only when they are the same key."""
    assert (escape_key(a) == escape_key(b)) == (a == b)
    assert UNSTORABLE.search(escape_key(a)) is None
    assert key_text(a.encode()) == escape_key(a)


@fuzz(200)
@given(headers=st.lists(st.tuples(st.text(), st.none() | st.binary(max_size=40)), max_size=6))
def test_headers_bytes_round_trip(headers: list[tuple[str, bytes | None]]) -> None:
    assert headers_from_bytes(headers_bytes(headers)) == tuple(headers)


@fuzz(200)
@given(
    event=good_events(),
    control=st.sampled_from(CONTROLS),
    where=st.sampled_from(("key", "header key", "header value", "correlation id")),
)
def test_any_control_character_anywhere_gets_a_verdict_with_storable_text(
    event: LedgerEvent, control: str, where: str
) -> None:
    """Each control character in the key or an identifier: a dead letter whose text is storable; in a header
    (which the writer does not read): the good event it came with."""
    case = good_case(event)
    key, headers, value = case.key, case.headers, case.value
    if where == "key":
        key = f"{event.tenant_id}/{event.aggregate_id}{control}".encode()
    elif where == "header key":
        headers = (*headers, (f"x{control}", b"v"))
    elif where == "header value":
        headers = (*headers, ("x", control.encode()))
    else:
        doc = json.loads(value or b"")
        doc["correlation_id"] = f"c{control}x"
        value = json.dumps(doc).encode()
    [item] = decode([record(Case(where, case.topic_ledger, key, value, headers, None, event))])
    if where.startswith("header"):
        assert item.outcome == "pending" and item.event == event
        assert_storable(item)
    else:
        assert_dead_once(item)
