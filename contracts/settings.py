"""Settings shared by the publisher, the writer, the replay and the CLI, read from the environment.

Every setting has a default that points at the local services started by ``selene-ledger services up``
(loopback only), so a fresh checkout works without configuration; a deployment overrides them with
``SELENE_*`` variables. Only the standard library is used: contracts/ depends on nothing of ours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit, urlunsplit

# Fixed local ports lie below Linux's ephemeral range (32768-60999): a port inside it can be held at any
# moment by some outgoing connection's source port, and the service then fails to start.
LOCAL_KAFKA_PORT = 19092
LOCAL_KAFKA_CONTROLLER_PORT = 19093
LOCAL_POSTGRES_PORT = 15432
LOCAL_DATABASE = "selene"

# Local development passwords. They guard only loopback services started by this project; a deployment
# supplies its own URLs through the environment.
ROLE_PASSWORDS: Mapping[str, str] = {
    "selene_owner": "selene_owner_local",
    "selene_writer": "selene_writer_local",
    "selene_reader": "selene_reader_local",
    "selene_operator": "selene_operator_local",
}
LOCAL_ADMIN_USER = "postgres"
LOCAL_ADMIN_PASSWORD = "selene_admin_local"


def role_url(base_url: str, role: str, password: str) -> str:
    """The same server and database as ``base_url``, logged in as ``role``."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role)}:{quote(password)}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def local_database_url(role: str, port: int = LOCAL_POSTGRES_PORT) -> str:
    """URL of the local PostgreSQL as one of the project's roles (or the admin)."""
    password = LOCAL_ADMIN_PASSWORD if role == LOCAL_ADMIN_USER else ROLE_PASSWORDS[role]
    return f"postgresql://{role}:{quote(password)}@127.0.0.1:{port}/{LOCAL_DATABASE}"


@dataclass(frozen=True)
class KafkaSecurity:
    """Transport security for Kafka clients; PLAINTEXT on loopback by default."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for aiokafka clients."""
        kwargs: dict[str, object] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            import ssl

            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@dataclass(frozen=True)
class Settings:
    """Where the services are and how the pipeline is tuned."""

    kafka_bootstrap_servers: str = f"127.0.0.1:{LOCAL_KAFKA_PORT}"
    database_url: str = field(default_factory=lambda: local_database_url("selene_writer"), repr=False)
    database_owner_url: str = field(default_factory=lambda: local_database_url("selene_owner"), repr=False)
    database_reader_url: str = field(default_factory=lambda: local_database_url("selene_reader"), repr=False)
    database_operator_url: str = field(default_factory=lambda: local_database_url("selene_operator"), repr=False)
    database_admin_url: str | None = field(default_factory=lambda: local_database_url(LOCAL_ADMIN_USER), repr=False)
    topic_prefix: str = "selene."
    topic_partitions: int = 3
    replication_factor: int = 1
    consumer_group: str = "selene-ledger-writer"
    max_event_bytes: int = 65536
    batch_max_records: int = 2000
    # Group membership timing of the writer (aiokafka's defaults); fault drills shorten them.
    consumer_session_timeout_ms: int = 10000
    consumer_heartbeat_interval_ms: int = 3000
    consumer_max_poll_interval_ms: int = 300000
    # Static group membership (KIP-345): a writer restarted under the same id by its supervisor takes its
    # partitions back at once instead of after the session timeout. None: dynamic membership.
    consumer_instance_id: str | None = None
    # A writer paused inside a transaction (SIGSTOP, a frozen VM) must not hold its offset-row locks for
    # ever: PostgreSQL ends its session after this long idle in a transaction, and the new owner proceeds.
    writer_idle_in_transaction_timeout_ms: int = 30000
    # A batch that fails this many times in a row with the same failure its data may cause (not an outage:
    # those are retried without limit) is written event by event, so the event behind it becomes a dead letter
    # and the rest land (``LedgerWriter._process``). Enough attempts for a race with another writer to be over.
    writer_max_batch_retries: int = 5
    # Processes that decode for replay (validation, canonical payload, content hash: replay's bottleneck);
    # 0 decodes in the replaying process, None (env ``auto``) one per core, at most 4 (none on one core).
    replay_decode_workers: int | None = None
    # Compression of what the publisher sends (none, gzip, snappy, lz4, zstd). Readers decode every codec
    # whatever this says; the default is measured in BENCHMARKS.md ("Publisher compression").
    kafka_compression: str = "lz4"
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``SELENE_*`` variables; anything unset keeps its local default.

        When only ``SELENE_DATABASE_URL`` is given, the other role URLs are derived from it (same server
        and database, the project's role names and local passwords) unless they are set too.
        """
        env = os.environ if environ is None else environ
        base = cls()
        db = env.get("SELENE_DATABASE_URL")
        derived: dict[str, str | None] = {}
        if db:
            derived = {
                "database_url": db,
                "database_owner_url": role_url(db, "selene_owner", ROLE_PASSWORDS["selene_owner"]),
                "database_reader_url": role_url(db, "selene_reader", ROLE_PASSWORDS["selene_reader"]),
                "database_operator_url": role_url(db, "selene_operator", ROLE_PASSWORDS["selene_operator"]),
                "database_admin_url": None,
            }
        explicit = {
            "database_owner_url": env.get("SELENE_DATABASE_OWNER_URL"),
            "database_reader_url": env.get("SELENE_DATABASE_READER_URL"),
            "database_operator_url": env.get("SELENE_DATABASE_OPERATOR_URL"),
            "database_admin_url": env.get("SELENE_DATABASE_ADMIN_URL"),
        }
        derived.update({k: v for k, v in explicit.items() if v})
        security = KafkaSecurity(
            protocol=env.get("SELENE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("SELENE_KAFKA_SASL_MECHANISM") or None,
            sasl_username=env.get("SELENE_KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("SELENE_KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=env.get("SELENE_KAFKA_SSL_CAFILE") or None,
        )
        return replace(
            base,
            kafka_bootstrap_servers=env.get("SELENE_KAFKA_BOOTSTRAP_SERVERS", base.kafka_bootstrap_servers),
            topic_prefix=env.get("SELENE_TOPIC_PREFIX", base.topic_prefix),
            topic_partitions=int(env.get("SELENE_TOPIC_PARTITIONS", base.topic_partitions)),
            replication_factor=int(env.get("SELENE_TOPIC_REPLICATION_FACTOR", base.replication_factor)),
            consumer_group=env.get("SELENE_CONSUMER_GROUP", base.consumer_group),
            max_event_bytes=int(env.get("SELENE_MAX_EVENT_BYTES", base.max_event_bytes)),
            batch_max_records=int(env.get("SELENE_BATCH_MAX_RECORDS", base.batch_max_records)),
            consumer_session_timeout_ms=int(
                env.get("SELENE_CONSUMER_SESSION_TIMEOUT_MS", base.consumer_session_timeout_ms)
            ),
            consumer_heartbeat_interval_ms=int(
                env.get("SELENE_CONSUMER_HEARTBEAT_INTERVAL_MS", base.consumer_heartbeat_interval_ms)
            ),
            consumer_instance_id=env.get("SELENE_CONSUMER_INSTANCE_ID") or None,
            writer_idle_in_transaction_timeout_ms=int(
                env.get("SELENE_WRITER_IDLE_IN_TRANSACTION_TIMEOUT_MS", base.writer_idle_in_transaction_timeout_ms)
            ),
            writer_max_batch_retries=max(
                1, int(env.get("SELENE_WRITER_MAX_BATCH_RETRIES", base.writer_max_batch_retries))
            ),
            consumer_max_poll_interval_ms=int(
                env.get("SELENE_CONSUMER_MAX_POLL_INTERVAL_MS", base.consumer_max_poll_interval_ms)
            ),
            replay_decode_workers=_optional_int(env.get("SELENE_REPLAY_DECODE_WORKERS"), base.replay_decode_workers),
            kafka_compression=_codec(env.get("SELENE_KAFKA_COMPRESSION", base.kafka_compression)),
            kafka_security=security,
            **derived,  # type: ignore[arg-type]
        )


def _optional_int(text: str | None, default: int | None) -> int | None:
    """An integer setting where ``auto`` (or empty) means None: let the code decide."""
    if text is None:
        return default
    return None if text.strip().lower() in ("", "auto") else int(text)


KAFKA_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def _codec(text: str) -> str:
    """A Kafka compression codec name, refused at start-up rather than at the first send."""
    codec = text.strip().lower() or "none"
    if codec not in KAFKA_CODECS:
        raise ValueError(f"SELENE_KAFKA_COMPRESSION={text!r}: expected one of {', '.join(KAFKA_CODECS)}")
    return codec
