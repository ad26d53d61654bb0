"""What engines call to publish ledger events: validated first, keyed by aggregate, acknowledged by all.

The producer is idempotent (``enable_idempotence=True``, ``acks='all'``), so a retried send after a lost
acknowledgement does not duplicate the record, and one partition's records keep their order. An event is
validated exactly as the writer will validate it (same codec, same transport checks) before it is sent:
an invalid event is refused here with its reason code and never reaches Kafka.

``publish_many`` fills one record batch per partition and hands each to the producer whole (``send_batch``):
aiokafka's per-message ``send`` (a future and accumulator bookkeeping per record) is several times dearer
than appending to a batch. The partition comes from the producer's own
partitioner (Kafka's default, murmur2 of the key), so an aggregate's events keep their partition and order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError
from pydantic_core import SchemaValidator

from contracts import kafka_clients
from contracts.codec import Decoder, canonical_payload, encode
from contracts.envelope import LedgerEvent, validated
from contracts.reasons import ContractViolation, ReasonCode, RetriableError, SeleneError
from contracts.registry import EVENT_TYPES
from contracts.settings import Settings
from producers.round_trip import FastPath, Record


@dataclass(frozen=True)
class Published:
    """Kafka's acknowledgement of one event."""

    event: LedgerEvent
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Refused:
    """An event that was not sent, and why."""

    index: int
    reason_code: ReasonCode
    detail: str


# A partition's batch is handed over once it holds this much, not only when full (1 MiB): the broker then
# writes it while the rest is validated, instead of every batch waiting for the end of the input.
FLUSH_BYTES = 64 * 1024

Partitioner = Callable[[bytes | None, list[int], list[int]], int]


class KeyPartitioner:
    """Kafka's default partitioner (aiokafka's ``DefaultPartitioner``: murmur2 of the key), remembering the
    answers for recent keys: an aggregate publishes many events under one key, and pure-Python murmur2 costs
    more per record than a batched send. Keyless records are left to the default (a random partition)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._default = DefaultPartitioner()
        self._known: dict[tuple[bytes, tuple[int, ...]], int] = {}
        self._capacity = capacity

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        # The default partitioner reads only the key and the list of all partitions when there is a key.
        where = (key, tuple(all_partitions))
        partition = self._known.get(where)
        if partition is None:
            if len(self._known) >= self._capacity:
                self._known.clear()
            partition = self._known[where] = int(self._default(key, all_partitions, available))
        return partition


class _Batch:
    """A record batch being filled for one partition (or a record sent alone), and, once sent, its future
    and then Kafka's metadata for it: the events it carries share them, at their positions."""

    __slots__ = ("builder", "count", "future", "md", "size")

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.count = 0  # records appended
        self.size = 0  # bytes of records appended, as the builder counts them
        self.future: asyncio.Future[Any] | None = None
        self.md: Any = None


class Publisher:
    """An idempotent, validating Kafka producer for ledger events. Use as ``async with Publisher(s) as p``."""

    def __init__(self, settings: Settings, **producer_options: object) -> None:
        self.settings = settings
        self.decoder = Decoder(settings.max_event_bytes)
        # The decoder's union picks the member by the JSON's (ledger, event_type); JSON encoded from an
        # event of a registered model names that model's pair, so its own validator gives the same result
        # without the union's Python discriminator. Built now, from the registry the decoder was built from.
        self._validators: dict[type[LedgerEvent], SchemaValidator] = {
            e.model: e.model.__pydantic_validator__  # type: ignore[misc]
            for e in EVENT_TYPES.values()
        }
        fast = (FastPath.of(e, settings.topic_prefix, settings.max_event_bytes) for e in EVENT_TYPES.values())
        self._fast: dict[type[LedgerEvent], FastPath] = {f.model: f for f in fast if f is not None}
        options = kafka_clients.producer_options(settings, partitioner=KeyPartitioner(), **producer_options)
        # publish_many partitions with whatever the producer partitions ``send`` with, so both agree.
        self._partitioner = cast(Partitioner, options["partitioner"])
        self._producer = AIOKafkaProducer(**options)
        self._batch_bytes = cast(int, options["max_batch_size"])
        self._flush_bytes = min(FLUSH_BYTES, self._batch_bytes)

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect; on failure the producer is closed before ``BROKER_UNAVAILABLE`` is raised, so a caller
        that gives up (``async with`` never reaches ``__aexit__`` then) leaves no open client behind."""
        try:
            await self._producer.start()
        except Exception as exc:
            # aiokafka's start leaves its client and sender half-built on failure; stop() releases them
            # (without it: "Unclosed AIOKafkaProducer" when the object is collected).
            with contextlib.suppress(Exception):
                await self._producer.stop()
            raise RetriableError(f"cannot reach Kafka: {exc}", ReasonCode.BROKER_UNAVAILABLE) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    def validate(self, event: LedgerEvent) -> Record:
        """What the writer will check, checked now: returns topic, key, value and headers.

        An event that pydantic validated (``contracts.envelope.validated``: not one made or changed with
        ``model_construct`` or ``model_copy``) of a registered model whose shape round trips
        (``producers.round_trip``) is encoded and its size, payload bound, dict fields and tenant key
        re-checked: decoding what it encodes to would prove nothing more. Any other event, and any such
        event those checks doubt, takes the full round trip, which refuses with the writer's own reasons.
        """
        fast = self._fast.get(type(event))
        if fast is not None and validated(event):
            record = fast.record(event)
            if record is not None:
                return record
        return self.validate_round_trip(event)

    def validate_round_trip(self, event: LedgerEvent) -> Record:
        """``validate`` by the round trip whatever the event: encode, decode the bytes, transport checks on
        what was decoded.

        The same round trip as ``validate_strict``, decoding with the event's own model where it is
        registered; any failure there is decoded again by the writer's decoder, so a refusal carries
        exactly the writer's reason code and detail.
        """
        encoded = encode(event)
        decoded = self._decode_own(event, encoded.value)
        topic = event.spec.topic(self.settings.topic_prefix)
        self.decoder.check_transport(decoded, topic, encoded.key, encoded.headers, self.settings.topic_prefix)
        return topic, encoded.key, encoded.value, encoded.headers

    def validate_strict(self, event: LedgerEvent) -> Record:
        """``validate`` through the writer's own decoder, step for step: the reference ``validate`` is
        tested against."""
        encoded = encode(event)
        decoded = self.decoder.decode(encoded.value)
        topic = event.spec.topic(self.settings.topic_prefix)
        prefix = self.settings.topic_prefix
        # The canonical payload measured, as the writer does, never the size bound's shortcut.
        payload_json = canonical_payload(decoded)
        self.decoder.check_transport(decoded, topic, encoded.key, encoded.headers, prefix, payload_json)
        return topic, encoded.key, encoded.value, encoded.headers

    def _decode_own(self, event: LedgerEvent, value: bytes) -> LedgerEvent:
        validator = self._validators.get(type(event))
        if validator is None or len(value) > self.decoder.max_event_bytes:
            return self.decoder.decode(value)
        try:
            return cast(LedgerEvent, validator.validate_json(value))
        except ValidationError:
            return self.decoder.decode(value)  # raises what the writer would say about these bytes

    def parse(self, raw: bytes | str) -> LedgerEvent:
        """An event from its JSON (e.g. a line of ``selene-ledger publish``); raises ``ContractViolation``."""
        return self.decoder.decode(raw.encode() if isinstance(raw, str) else raw)

    async def publish(self, event: LedgerEvent) -> Published:
        """Send one event; returns once every in-sync replica has it."""
        topic, key, value, headers = self.validate(event)
        md = await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        return Published(event, md.topic, md.partition, md.offset)

    async def publish_many(self, events: Iterable[LedgerEvent]) -> tuple[list[Published], list[Refused]]:
        """Validate each, send the valid ones in per-partition batches, return once Kafka acknowledged each.

        A partition's batches go out one after the other in input order (``send_batch`` waits for the
        partition's pending batch), so an aggregate's events keep their order, as with ``send``.
        """
        validate, partitioner, producer = self.validate, self._partitioner, self._producer
        batch_bytes, flush_bytes = self._batch_bytes, self._flush_bytes
        # Per accepted event: the event, its batch and its position in that batch. Parallel lists, not a
        # tuple per event: objects that live until the end of the call are what trigger the caller's full
        # garbage collections, whose cost is the size of the caller's heap (BENCHMARKS.md, "Publisher vs raw").
        accepted: list[LedgerEvent] = []
        batch_of: list[_Batch] = []
        position: list[int] = []
        sent: list[_Batch] = []
        refused: list[Refused] = []
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], _Batch] = {}
        for index, event in enumerate(events):
            try:
                topic, key, value, headers = validate(event)
            except SeleneError as exc:
                refused.append(Refused(index, exc.reason_code, exc.detail))
                continue
            available = partitions.get(topic)
            if available is None:
                available = partitions[topic] = sorted(await producer.partitions_for(topic))
            where = (topic, partitioner(key, available, available))
            if len(key) + len(value) > batch_bytes:
                # Bigger than a batch: ``send`` gives it a batch of its own, or refuses it over
                # max_request_size, as it always did; what the partition had before goes first.
                pending = batches.pop(where, None)
                if pending is not None and pending.count:
                    await self._send_batch(where, pending, sent)
                alone = _Batch(None)
                alone.future, alone.count = await producer.send(topic, value, key=key, headers=headers), 1
                sent.append(alone)
                accepted.append(event)
                batch_of.append(alone)
                position.append(0)
                continue
            batch = batches.get(where)
            if batch is None:
                batch = batches[where] = _Batch(producer.create_batch())
            appended = batch.builder.append(key=key, value=value, timestamp=None, headers=headers)
            if appended is None:
                await self._send_batch(where, batch, sent)  # full: send it, start the partition's next one
                batch = batches[where] = _Batch(producer.create_batch())
                appended = batch.builder.append(key=key, value=value, timestamp=None, headers=headers)
                assert appended is not None  # a batch always takes its first record
            accepted.append(event)
            batch_of.append(batch)
            position.append(batch.count)
            batch.count += 1
            batch.size += appended.size
            if batch.size >= flush_bytes:
                await self._send_batch(where, batch, sent)
                del batches[where]
                await asyncio.sleep(0)  # the sender ships it while the rest is validated
        for where, batch in batches.items():
            if batch.count:
                await self._send_batch(where, batch, sent)
        for batch in sent:
            assert batch.future is not None
            batch.md = await batch.future
        published = [
            Published(event, batch.md.topic, batch.md.partition, batch.md.offset + at)
            for event, batch, at in zip(accepted, batch_of, position, strict=True)
        ]
        return published, refused

    async def _send_batch(self, where: tuple[str, int], batch: _Batch, sent: list[_Batch]) -> None:
        batch.builder.close()  # complete: nothing else joins it, and it need not linger
        batch.future = await self._producer.send_batch(batch.builder, where[0], partition=where[1])
        sent.append(batch)

    async def publish_raw(self, lines: Sequence[bytes]) -> tuple[list[Published], list[Refused]]:
        """Parse JSON documents and publish the valid ones; the rest are refused with their reasons."""
        events: list[LedgerEvent] = []
        positions: list[int] = []
        refused: list[Refused] = []
        for index, line in enumerate(lines):
            try:
                events.append(self.parse(line))
                positions.append(index)
            except ContractViolation as exc:
                refused.append(Refused(index, exc.reason_code, exc.detail))
        published, late = await self.publish_many(events)
        refused.extend(Refused(positions[r.index], r.reason_code, r.detail) for r in late)
        return published, sorted(refused, key=lambda r: r.index)

    async def send_unchecked(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> Published | None:
        """Send bytes as they are, bypassing validation: for tests and fault drills that need bad input
        on the topic. Engines must never use this."""
        md = await self._producer.send_and_wait(topic, value, key=key, headers=list(headers))
        del md
        return None
