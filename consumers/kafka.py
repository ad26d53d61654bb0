"""How every reader of the ledger topics talks to Kafka: read committed, with the deployment's transport.

A ledger is append-only: a record that its producer's transaction aborted must never reach it. So the
writer, replay, status and the benchmarks' readers all read with ``isolation_level=read_committed``: aborted
records are skipped by the fetcher, and end offsets are the last stable offset (LSO), so "caught up" and
lag mean "nothing committed is left to read". Transaction markers (control batches) still occupy offsets;
readers follow the consumer's fetch position over them, not only the offsets of the records they saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from contracts.kafka_clients import reader_options
from contracts.reasons import ReasonCode, SeleneError
from contracts.settings import Settings


class UnreadableRecords(SeleneError):
    """Kafka hands over bytes no client can get past (a corrupt batch, a CRC mismatch, a codec no library
    decodes, a header key that is not UTF-8, which Kafka's protocol defines as a string and aiokafka's
    record reader refuses before any of the batch's records reach us): not one record's content, which
    becomes a dead letter, but bytes the client library cannot parse.

    The writer stops with this (one line naming topic, partition and offset; the CLI exits non-zero)
    rather than skip: skipping would lose every committed record in the batch, and retrying would spin.
    PostgreSQL keeps the offset to resume from once the log is repaired or the partition is moved past.
    """

    def __init__(self, topic: str | None, partition: int | None, offset: int | None, cause: BaseException) -> None:
        where = "an assigned partition" if topic is None else f"{topic}[{partition}]"
        at = "" if offset is None else f" at offset {offset}"
        super().__init__(
            f"cannot read {where}{at}: {type(cause).__name__}: {cause}".replace("\n", " "),
            ReasonCode.EVENT_UNDECODABLE,
        )
        self.topic, self.partition, self.offset = topic, partition, offset


async def locate_unreadable(
    settings: Settings, starts: Mapping[tuple[str, int], int], cause: BaseException, *, budget_s: float = 60.0
) -> UnreadableRecords:
    """Find which partition and offset a failed fetch could not get past, for the writer's last line.

    aiokafka's error does not say where it struck, and its consumer cannot be asked again (the failed
    partition's iterator is spent and would silently skip ahead), so a fresh consumer with no group reads
    each candidate partition one record at a time from where the writer stands, until one raises. Bounded
    by ``budget_s``; past it, the report names no offset rather than guess.
    """
    deadline = time.monotonic() + budget_s
    if not starts:
        return UnreadableRecords(None, None, None, cause)
    consumer = AIOKafkaConsumer(**reader_options(settings, group_id=None, auto_offset_reset="earliest"))
    await consumer.start()
    try:
        for (topic, partition), start in sorted(starts.items()):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            end = (await consumer.end_offsets([tp]))[tp]
            while time.monotonic() < deadline:
                at = await consumer.position(tp)
                if at >= end:
                    break
                try:
                    await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                except (KafkaError, UnicodeDecodeError) as exc:
                    return UnreadableRecords(topic, partition, at, exc)
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka's group-less coordinator re-raises the cancellation of its own helper task when it is
            # stopped right after an assignment; only a cancellation of this task itself goes on
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
    return UnreadableRecords(None, None, None, cause)


class MissingTopics(SeleneError):
    """Ledger topics the writer is to read do not exist on the cluster (``selene-ledger topics ensure``
    creates them)."""

    def __init__(self, topics: set[str], waited_s: float) -> None:
        super().__init__(
            f"the topics {', '.join(sorted(topics))} do not exist (waited {waited_s:.0f}s); create them with "
            "`selene-ledger topics ensure`",
            ReasonCode.BROKER_UNAVAILABLE,
        )
        self.topics = topics


#: How long a reader waits for its topics to appear before it gives up.
TOPICS_WAIT_S = 60.0


async def await_topics(
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    *,
    timeout_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Return once the cluster describes every one of ``topics`` with its partitions.

    A consumer that subscribes before the broker's metadata has a just-created topic is assigned none of its
    partitions until its next metadata refresh (``metadata.max.age.ms``, five minutes), and meanwhile finds
    itself "caught up" with the topic's records unread: measured, a writer started right after
    ``topics ensure`` returned caught up in 0.6 s having appended none of the events published to the last
    topic created. So readers wait here first (``tests/e2e/test_new_topics.py``); ``stop`` ends the wait.
    """
    wanted = set(topics)
    limit = TOPICS_WAIT_S if timeout_s is None else timeout_s
    started = time.monotonic()
    while True:
        missing = wanted - await consumer.topics()
        if not missing or (stop is not None and stop.is_set()):
            return
        if time.monotonic() - started > limit:
            raise MissingTopics(missing, time.monotonic() - started)
        await asyncio.sleep(0.2)
