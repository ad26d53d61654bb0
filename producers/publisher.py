"""What engines call to publish ledger events: validated first, keyed by aggregate, acknowledged by all.

The producer is idempotent (``enable_idempotence=True``, ``acks='all'``), so a retried send after a lost
acknowledgement does not duplicate the record, and one partition's records keep their order. An event is
validated exactly as the writer will validate it (same codec, same transport checks) before it is sent:
an invalid event is refused here with its reason code and never reaches Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

from aiokafka import AIOKafkaProducer

import contracts.registry  # noqa: F401 - registers every slice's event types
from contracts.codec import Decoder, encode
from contracts.envelope import LedgerEvent
from contracts.reasons import ContractViolation, ReasonCode, RetriableError, SeleneError
from contracts.settings import Settings


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


class Publisher:
    """An idempotent, validating Kafka producer for ledger events. Use as ``async with Publisher(s) as p``."""

    def __init__(self, settings: Settings, **producer_options: object) -> None:
        self.settings = settings
        self.decoder = Decoder(settings.max_event_bytes)
        options: dict[str, object] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": 5,
            "max_batch_size": 1024 * 1024,
            "request_timeout_ms": 30000,
            **settings.kafka_security.client_kwargs(),
            **producer_options,
        }
        self._producer = AIOKafkaProducer(**options)

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            await self._producer.start()
        except Exception as exc:
            raise RetriableError(f"cannot reach Kafka: {exc}", ReasonCode.BROKER_UNAVAILABLE) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    def validate(self, event: LedgerEvent) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
        """What the writer will check, checked now: returns topic, key, value and headers."""
        encoded = encode(event)
        decoded = self.decoder.decode(encoded.value)
        topic = event.spec.topic(self.settings.topic_prefix)
        self.decoder.check_transport(decoded, topic, encoded.key, encoded.headers, self.settings.topic_prefix)
        return topic, encoded.key, encoded.value, encoded.headers

    def parse(self, raw: bytes | str) -> LedgerEvent:
        """An event from its JSON (e.g. a line of ``selene-ledger publish``); raises ``ContractViolation``."""
        return self.decoder.decode(raw.encode() if isinstance(raw, str) else raw)

    async def publish(self, event: LedgerEvent) -> Published:
        """Send one event; returns once every in-sync replica has it."""
        topic, key, value, headers = self.validate(event)
        md = await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        return Published(event, md.topic, md.partition, md.offset)

    async def publish_many(self, events: Iterable[LedgerEvent]) -> tuple[list[Published], list[Refused]]:
        """Validate all, send the valid ones pipelined, return once Kafka acknowledged each of them."""
        futures: list[tuple[LedgerEvent, asyncio.Future[object]]] = []
        refused: list[Refused] = []
        for index, event in enumerate(events):
            try:
                topic, key, value, headers = self.validate(event)
            except SeleneError as exc:
                refused.append(Refused(index, exc.reason_code, exc.detail))
                continue
            futures.append((event, await self._producer.send(topic, value, key=key, headers=headers)))
        published = []
        for event, future in futures:
            md = await future
            published.append(Published(event, md.topic, md.partition, md.offset))  # type: ignore[attr-defined]
        return published, refused

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
