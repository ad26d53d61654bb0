"""The publisher's "validated" mark is left out where consumers decode (``contracts.envelope.unmarked``), and
only there: what an engine decodes itself (``Publisher.parse``, a bare ``Decoder``) can still take the fast path."""

from __future__ import annotations

from consumers.pipeline import Pipeline, Record
from contracts.codec import Decoder, encode
from contracts.envelope import unmarked, validated
from contracts.registry import LEDGERS
from contracts.settings import Settings
from tests.unit.test_publisher_fast_path import audit


def test_a_decoder_marks_what_it_validates_except_inside_unmarked() -> None:
    value = encode(audit(k="v")).value
    assert validated(Decoder(65536).decode(value))
    with unmarked():
        assert not validated(Decoder(65536).decode(value))
    assert validated(Decoder(65536).decode(value))  # the block's end restores marking


def test_the_pipeline_decodes_unmarked_and_leaves_marking_on() -> None:
    settings = Settings()
    event = audit(k="v")
    encoded = encode(event)
    topic = LEDGERS[event.ledger].topic(settings.topic_prefix)
    [item] = Pipeline(settings).decode([Record(topic, 0, 0, encoded.key, encoded.value, tuple(encoded.headers))])
    assert item.event == event and item.outcome == "pending"
    assert not validated(item.event) and not validated(item.event.payload)
    assert validated(Decoder(65536).decode(encoded.value))
