"""Creating and listing the ledger topics: retention forever, the configured partitions and replicas."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from contracts.kafka_clients import transport_options
from contracts.registry import LEDGERS
from contracts.settings import Settings

# A ledger topic is the replayable source of truth: nothing may age out of it.
LEDGER_TOPIC_CONFIG = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "max.message.bytes": "1048588",
}


@dataclass(frozen=True)
class TopicInfo:
    ledger: str
    topic: str
    partitions: int | None


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**transport_options(settings))


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing ledger topics; returns the names created (existing ones are left as they are)."""
    admin = _admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        config = dict(LEDGER_TOPIC_CONFIG)
        config["min.insync.replicas"] = str(max(1, min(2, settings.replication_factor - 1)))
        missing = [
            NewTopic(
                spec.topic(settings.topic_prefix),
                settings.topic_partitions,
                settings.replication_factor,
                topic_configs=config,
            )
            for spec in LEDGERS.values()
            if spec.topic(settings.topic_prefix) not in existing
        ]
        created = []
        for topic in missing:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


async def list_topics(settings: Settings) -> list[TopicInfo]:
    admin = _admin(settings)
    await admin.start()
    try:
        names = {spec.topic(settings.topic_prefix): spec.name for spec in LEDGERS.values()}
        described = await admin.describe_topics(list(names))
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
        return [
            TopicInfo(ledger, topic, counts.get(topic)) for topic, ledger in sorted(names.items(), key=lambda x: x[1])
        ]
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> list[str]:
    """Delete every topic whose name starts with the settings' prefix (a non-empty one only: never a
    deployment's unprefixed ledger topics); returns the names deleted. For throwaway prefixes: tests,
    benchmarks, rehearsals."""
    if not settings.topic_prefix:
        raise ValueError("delete_topics needs a topic prefix; it never deletes the unprefixed ledger topics")
    admin = _admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
