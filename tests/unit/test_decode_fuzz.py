"""Property-based fuzzing of the consumer's decode-validate-route step, ``Pipeline.decode`` (no I/O; issue 8).

``decode`` stands between Kafka and the database: whatever bytes arrive, it must return one verdict per record
and never raise, because an exception there stops the writer on a record it will fetch again after a restart
(a poison pill that stalls its partition for good). Properties:

* arbitrary bytes, arbitrary envelope-shaped JSON: never raises; every record is a dead letter with exactly one
  reason code, of the kind decode gives;
* each bad-input class gets its own reason code (the ledger's where the ledger has its own);
* good events, alone or mixed with bad ones in one batch, decode to the very event that was published, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.pipeline import Item, Pipeline, Record
from contracts.envelope import LEDGERS
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from tests.unit.fuzzcases import (
    BAD_CLASSES,
    DECODE_REASONS,
    Case,
    bad_cases,
    conflict_of,
    envelope_shaped,
    good_case,
    good_events,
)

SETTINGS = Settings(topic_prefix="fuzz.")
PIPELINE = Pipeline(SETTINGS)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def record(case: Case, offset: int = 0) -> Record:
    topic = LEDGERS[case.topic_ledger].topic(SETTINGS.topic_prefix)
    return Record(topic, 0, offset, case.key, case.value, case.headers, 1_700_000_000_000)


def assert_dead_once(item: Item, allowed: frozenset[ReasonCode] = DECODE_REASONS) -> None:
    assert item.outcome == "dead", item
    assert isinstance(item.reason, ReasonCode) and item.reason in allowed, item.reason
    assert item.detail and item.status in ("OPEN", "REJECTED")
    assert item.event is None and item.row is None


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
@given(event=good_events())
def test_good_events_decode_unchanged(event: object) -> None:
    case = good_case(event)  # type: ignore[arg-type]
    [item] = decode([record(case, 7)])
    assert item.outcome == "pending" and item.reason is None and item.detail == ""
    assert item.event == case.event
    assert item.row is not None and item.row.values["event_uuid"] == case.event.event_id  # type: ignore[union-attr]
    assert item.row.values["tenant_id"] == case.event.tenant_id  # type: ignore[union-attr]
    assert (item.row.provenance.topic, item.row.provenance.offset) == (record(case).topic, 7)


@fuzz(60)
@given(
    mix=st.lists(
        st.one_of(good_events().map(good_case), bad_cases(max_event_bytes=SETTINGS.max_event_bytes)),
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
