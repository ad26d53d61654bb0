"""How every Kafka client of this project is configured, in one place: the deployment's side of the wire
contract (docs/WIRE_FORMAT.md).

- Readers of ledger topics (writer, replay, status, the benchmark's readers) read ``read_committed``: a
  record its producer's transaction aborted must never reach an append-only ledger, and end offsets are the
  last stable offset, so "caught up" and lag mean "nothing committed is left to read". Auto-commit is off:
  the writer keeps its offsets in PostgreSQL, in the transaction that writes the rows.
- The writer's fetch sizes (``writer_fetch_options``) are shared with the benchmark's consumer modes, so the
  modes measure what the writer would read.
- Producers (the publisher, the benchmark's raw producers) are idempotent with ``acks=all``, batch for
  5 ms, and compress with ``SELENE_KAFKA_COMPRESSION``; the publisher adds its murmur2 partitioner.
- Every client takes the deployment's transport (``SELENE_KAFKA_*`` TLS and SASL).

Plain keyword dictionaries, so contracts stays free of client code and each caller builds its own client.
"""

from __future__ import annotations

from contracts.settings import Settings

#: Kafka's isolation level for every reader of a ledger topic (see the module docstring).
LEDGER_ISOLATION_LEVEL = "read_committed"
#: The publisher's batch bound; it also sizes its own flushes.
PRODUCER_MAX_BATCH_BYTES = 1024 * 1024


def transport_options(settings: Settings) -> dict[str, object]:
    """Bootstrap servers and transport security: what an admin client needs, and every other client too."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **settings.kafka_security.client_kwargs()}


def reader_options(settings: Settings, **overrides: object) -> dict[str, object]:
    """Keyword arguments for an ``AIOKafkaConsumer`` that reads ledger topics."""
    return {
        **transport_options(settings),
        "enable_auto_commit": False,
        "isolation_level": LEDGER_ISOLATION_LEVEL,
        **overrides,
    }


def writer_fetch_options(settings: Settings) -> dict[str, object]:
    """How much the writer fetches at once (a batch's records, the fetch's byte bounds)."""
    return {
        "max_poll_records": settings.batch_max_records,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


def producer_options(settings: Settings, **overrides: object) -> dict[str, object]:
    """Keyword arguments for an ``AIOKafkaProducer`` of ledger events."""
    return {
        **transport_options(settings),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": PRODUCER_MAX_BATCH_BYTES,
        "request_timeout_ms": 30000,
        "compression_type": None if settings.kafka_compression == "none" else settings.kafka_compression,
        **overrides,
    }
