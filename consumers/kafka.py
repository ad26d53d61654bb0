"""How every reader of the ledger topics talks to Kafka: read committed, with the deployment's transport.

A ledger is append-only: a record that its producer's transaction aborted must never reach it. So the
writer, replay, status and the benchmarks' readers all read with ``isolation_level=read_committed``: aborted
records are skipped by the fetcher, and end offsets are the last stable offset (LSO), so "caught up" and
lag mean "nothing committed is left to read". Transaction markers (control batches) still occupy offsets;
readers follow the consumer's fetch position over them, not only the offsets of the records they saw.
"""

from __future__ import annotations

from contracts.settings import Settings

#: Kafka's isolation level for every reader of a ledger topic (see the module docstring).
LEDGER_ISOLATION_LEVEL = "read_committed"


def reader_options(settings: Settings, **overrides: object) -> dict[str, object]:
    """Keyword arguments for an ``AIOKafkaConsumer`` that reads ledger topics."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "enable_auto_commit": False,
        "isolation_level": LEDGER_ISOLATION_LEVEL,
        **settings.kafka_security.client_kwargs(),
        **overrides,
    }
